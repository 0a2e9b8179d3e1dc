package confwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func run(t *testing.T, w *Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func value(w *Watcher, key string) string {
	s := w.Latest()
	if s == nil {
		return "<none>"
	}
	kv, ok := s.KVs[key]
	if !ok {
		return "<absent>"
	}
	return string(kv.Value)
}

func TestKeyGetThenWatch(t *testing.T) {
	e := testutil.StartEtcd(t)
	e.Put("/a", "v1")
	w := New(e.Client(), "/a", false, 2*time.Second, quiet(), nil, "test")
	run(t, w)
	want := func(v string) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() bool { return value(w, "/a") == v },
			func() string { return fmt.Sprintf("value %q, have %q", v, value(w, "/a")) })
	}
	want("v1")
	e.Put("/a", "v2")
	want("v2")
	e.Put("/ab", "other key") // not watched: not a prefix watch
	e.Delete("/a")
	want("<absent>")
	if _, ok := w.Latest().KVs["/ab"]; ok {
		t.Fatal("a key watch must not see other keys")
	}
	e.Put("/a", "v3")
	want("v3")
	if w.Latest().KVs["/a"].ModRevision == 0 {
		t.Fatal("mod revision not recorded")
	}
}

func TestPrefix(t *testing.T) {
	e := testutil.StartEtcd(t)
	e.Put("/p/1", "a")
	w := New(e.Client(), "/p/", true, 2*time.Second, quiet(), nil, "test")
	run(t, w)
	e.Put("/p/2", "b")
	e.Put("/q", "outside")
	testutil.Eventually(t, 10*time.Second, func() bool { s := w.Latest(); return s != nil && len(s.KVs) == 2 },
		testutil.Msg("two keys under the prefix"))
	e.Delete("/p/1")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(w.Latest().KVs) == 1 && value(w, "/p/2") == "b" },
		testutil.Msg("one key left"))
}

func TestCompactedRevisionForcesReGet(t *testing.T) {
	e := testutil.StartEtcd(t)
	cli := e.Client()
	e.Put("/a", "v1")
	w := New(cli, "/a", false, 2*time.Second, quiet(), nil, "test")
	old, err := w.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e.Put("/a", "v2")
	resp, err := cli.Put(context.Background(), "/a", "v3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.watch(ctx, old); !errors.Is(err, errCompacted) {
		t.Fatalf("watch from a compacted revision: %v, want errCompacted", err)
	}
	// Run recovers by getting again.
	run(t, w)
	testutil.Eventually(t, 10*time.Second, func() bool { return value(w, "/a") == "v3" }, testutil.Msg("v3 after re-get"))
}

func TestEtcdDownAndBack(t *testing.T) {
	e := testutil.StartEtcd(t)
	e.Put("/a", "v1")
	w := New(e.Client(), "/a", false, time.Second, quiet(), nil, "test")
	run(t, w)
	testutil.Eventually(t, 10*time.Second, func() bool { return w.Up() && value(w, "/a") == "v1" }, testutil.Msg("up with v1"))
	e.Stop()
	testutil.Eventually(t, 15*time.Second, func() bool { return !w.Up() }, testutil.Msg("down noticed"))
	if value(w, "/a") != "v1" {
		t.Fatal("last known value must stay while etcd is down")
	}
	e.Start()
	e.Put("/a", "v2")
	testutil.Eventually(t, 20*time.Second, func() bool { return w.Up() && value(w, "/a") == "v2" }, testutil.Msg("up with v2"))
}

// A running watch whose connection breaks, while changes are made and
// compacted away, ends with what etcd holds: the watch resumed from its
// revision is refused as compacted, and the watcher gets everything again
// (a delete it never saw included).
func TestWatchBrokenWhileRunningCatchesUpAfterCompaction(t *testing.T) {
	e := testutil.StartEtcd(t)
	px := testutil.StartProxy(t, e.Endpoint())
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{px.Addr()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	e.Put("/p/1", "a")
	e.Put("/p/2", "b")
	e.Put("/p/3", "c")
	w := New(cli, "/p/", true, 2*time.Second, quiet(), nil, "test")
	run(t, w)
	testutil.Eventually(t, 10*time.Second, func() bool { s := w.Latest(); return w.Up() && s != nil && len(s.KVs) == 3 },
		testutil.Msg("three keys, watching"))
	restarts := promtest.ToFloat64(w.restarts)

	px.Break()
	e.Put("/p/2", "b2")
	e.Delete("/p/1")
	resp, err := e.Client().Put(context.Background(), "/p/3", "c3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client().Compact(context.Background(), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	px.Heal()

	testutil.Eventually(t, 20*time.Second, func() bool {
		s := w.Latest()
		return len(s.KVs) == 2 && value(w, "/p/1") == "<absent>" && value(w, "/p/2") == "b2" && value(w, "/p/3") == "c3"
	}, func() string { return fmt.Sprintf("etcd's keys after the break, have %v", w.Latest().KVs) })
	if got := promtest.ToFloat64(w.restarts); got <= restarts {
		t.Fatalf("restarts %v, was %v: the watch did not start over", got, restarts)
	}
	if s := w.Latest(); s.Revision < resp.Header.Revision {
		t.Fatalf("snapshot at revision %d, before the compaction at %d", s.Revision, resp.Header.Revision)
	}
}
