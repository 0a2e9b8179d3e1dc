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

	"github.com/logpipe/logpipe/internal/testutil"
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
