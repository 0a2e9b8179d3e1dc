package inventory

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func TestPublishUpdateAndRevoke(t *testing.T) {
	e := testutil.StartEtcd(t)
	cli := e.Client()
	var mu sync.Mutex
	state := "running"
	var calls atomic.Int64
	report := func() Report {
		calls.Add(1)
		mu.Lock()
		defer mu.Unlock()
		return Report{Host: "h1", IP: "10.0.0.1", Version: "v1", Tasks: []Task{{Path: "/var/log/a.log", Topic: "t", State: state, AckedOffset: 10, BytesBehind: 5}}}
	}
	p := New(cli, Options{Key: "/logagent/agents/10.0.0.1", TTL: 2 * time.Second, Interval: 50 * time.Millisecond}, report, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	get := func() []Report {
		rs, err := List(context.Background(), cli, "/logagent/agents/")
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	testutil.Eventually(t, 10*time.Second, func() bool { rs := get(); return len(rs) == 1 && rs[0].Tasks[0].State == "running" },
		testutil.Msg("report published"))
	first := get()[0].Updated
	// Unchanged reports are not rewritten: Updated stays.
	n := calls.Load()
	testutil.Eventually(t, 10*time.Second, func() bool { return calls.Load() > n+5 }, testutil.Msg("several report rounds"))
	if got := get()[0].Updated; !got.Equal(first) {
		t.Fatalf("unchanged report rewritten: %v -> %v", first, got)
	}
	mu.Lock()
	state = "error"
	mu.Unlock()
	testutil.Eventually(t, 10*time.Second, func() bool { return get()[0].Tasks[0].State == "error" }, testutil.Msg("change published"))
	if !get()[0].Updated.After(first) {
		t.Fatal("Updated did not move with the change")
	}
	// A clean stop revokes the lease: the entry disappears at once.
	cancel()
	<-done
	if rs := get(); len(rs) != 0 {
		t.Fatalf("entry left after stop: %+v", rs)
	}
}

func TestDeadAgentExpires(t *testing.T) {
	e := testutil.StartEtcd(t)
	cli := e.Client()
	// A lease that is never kept alive stands for an agent killed with
	// SIGKILL: its entry goes away after the TTL by itself.
	lease, err := cli.Grant(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), "/logagent/agents/10.9.9.9", `{"ip":"10.9.9.9"}`, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		rs, _ := List(context.Background(), cli, "/logagent/agents/")
		return len(rs) == 0
	}, testutil.Msg("expired entry removed"))
}

// Progress moves with every line; it is written with the entry but does
// not cause a write by itself (and is not computed on rounds that do not
// write): an idle or busy agent rewrites its entry when its files, states
// or errors change, or every RefreshEvery.
func TestProgressDoesNotCauseWrites(t *testing.T) {
	e := testutil.StartEtcd(t)
	cli := e.Client()
	var rounds, progressCalls atomic.Int64
	report := func() Report {
		rounds.Add(1)
		return Report{Host: "h1", IP: "10.0.0.2", Tasks: []Task{{Path: "/var/log/a.log", Topic: "t", State: "running"}}}
	}
	progress := func(r *Report) {
		n := progressCalls.Add(1)
		r.Tasks[0].AckedOffset, r.Tasks[0].BytesBehind = 100*n, n
	}
	p := New(cli, Options{Key: "/logagent/agents/10.0.0.2", TTL: 2 * time.Second, Interval: 20 * time.Millisecond, RefreshEvery: time.Hour, Progress: progress}, report, quiet())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var got []Report
	testutil.Eventually(t, 10*time.Second, func() bool {
		var err error
		got, err = List(context.Background(), cli, "/logagent/agents/")
		return err == nil && len(got) == 1
	}, testutil.Msg("report published"))
	if got[0].Tasks[0].AckedOffset != 100 || got[0].Tasks[0].BytesBehind != 1 {
		t.Fatalf("written without its progress: %+v", got[0].Tasks[0])
	}
	resp, err := cli.Get(context.Background(), "/logagent/agents/10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	rev := resp.Kvs[0].ModRevision
	n := rounds.Load()
	testutil.Eventually(t, 10*time.Second, func() bool { return rounds.Load() > n+20 }, testutil.Msg("twenty more rounds"))
	resp, err = cli.Get(context.Background(), "/logagent/agents/10.0.0.2")
	if err != nil {
		t.Fatal(err)
	}
	if resp.Kvs[0].ModRevision != rev || progressCalls.Load() != 1 {
		t.Fatalf("entry rewritten (revision %d -> %d) or progress computed %d times over unchanged rounds", rev, resp.Kvs[0].ModRevision, progressCalls.Load())
	}
}
