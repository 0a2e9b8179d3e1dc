package collector

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// ackSink acknowledges every event at once and counts them.
type ackSink struct{ n atomic.Int64 }

func (s *ackSink) Send(_ context.Context, b *event.Batch) error {
	for i := range b.Events {
		b.Events[i].Acker.Ack(b.Events[i].Seq)
	}
	s.n.Add(int64(len(b.Events)))
	return nil
}

// An idle agent's memory is mostly its tailers' stacks: one goroutine per
// file, parked while the file is quiet. Parked, a tailer of a glob must
// let the runtime shrink the stack its reading grew to 4 KiB (the runtime
// shrinks only a stack whose used part, plus 800 bytes, is under a
// quarter of it); frames kept on the parked stack by mistake double it.
//
// The race detector's instrumentation changes frame sizes, so this runs
// without it (make test runs it on its own).
func TestIdleTailerStacksShrink(t *testing.T) {
	if raceEnabled {
		t.Skip("frame sizes differ under the race detector; make test runs this without it")
	}
	const n = 200
	dir := oneLineFiles(t, n)
	reg, log := quietRegistry(t)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.StackInuse

	snk := &ackSink{}
	c := New(Config{Host: "h", IP: "127.0.0.1", MaxLineBytes: 64 << 10, PollInterval: time.Second, ScanInterval: time.Hour, RotateWait: time.Second}, reg, snk, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	c.Apply([]collectconf.Entry{{Path: filepath.Join(dir, "*.log"), Topic: "t"}})
	testutil.Eventually(t, 20*time.Second, func() bool { return snk.n.Load() == n }, func() string { return fmt.Sprintf("%d of %d lines", snk.n.Load(), n) })
	// Every tailer parks once it found nothing more to read.
	testutil.Eventually(t, 20*time.Second, func() bool { return parkedTailers() >= n }, func() string { return fmt.Sprintf("%d of %d tailers parked", parkedTailers(), n) })
	for i := 0; i < 4; i++ { // each collection halves a stack at most once
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	per := (int64(ms.StackInuse) - int64(base)) / n
	if per > 6<<10 {
		t.Fatalf("parked tailers keep %d B of stack each; want 4 KiB (at most 6 KiB with the collector's own goroutines)", per)
	}
	t.Logf("%d B of stack per parked tailer", per)
}

// parkedTailers counts goroutines waiting in Tailer.idle.
func parkedTailers() int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return countIdle(buf)
}

func countIdle(dump []byte) int {
	n := 0
	for _, g := range strings.Split(string(dump), "\n\n") {
		if strings.Contains(g, "[select") && strings.Contains(g, "tailer.(*Tailer).idle(") {
			n++
		}
	}
	return n
}

// oneLineFiles is a directory of n files of one line each.
func oneLineFiles(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), []byte("one line\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// quietRegistry is a fresh registry and a logger that discards.
func quietRegistry(t *testing.T) (*registry.Registry, *logrus.Entry) {
	t.Helper()
	l := logrus.New()
	l.SetOutput(io.Discard)
	log := logrus.NewEntry(l)
	reg, err := registry.Open(t.TempDir(), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg, log
}

// threads is how many OS threads the process has (Linux).
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	t.Skip("no Threads line in /proc/self/status")
	return 0
}

// A thousand files found at once are opened a few at a time: the runtime
// starts a thread for every goroutine blocked in open(2) while others wait
// to run, and keeps each for good (48 KiB of stacks apiece, 5-7 MB of an
// idle agent's memory when every tailer opened at once).
func TestManyFilesAtStartStartFewThreads(t *testing.T) {
	const n = 1000
	dir := oneLineFiles(t, n)
	reg, log := quietRegistry(t)
	guard, err := pathguard.New([]string{dir + "/**"})
	if err != nil {
		t.Fatal(err)
	}
	before := threads(t)
	snk := &ackSink{}
	c := New(Config{Host: "h", IP: "127.0.0.1", MaxLineBytes: 64 << 10, PollInterval: time.Second, ScanInterval: time.Hour, RotateWait: time.Second, Guard: guard}, reg, snk, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Whether open(2) calls pile up depends on timing: five rounds, each
	// opening every file again for a new line (threads are never given
	// back, so the count is the worst round's).
	for round := 1; round <= 5; round++ {
		if round > 1 {
			c.Apply(nil)
			for i := 0; i < n; i++ {
				f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), os.O_APPEND|os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(f, "line %d\n", round)
				f.Close()
			}
		}
		c.Apply([]collectconf.Entry{{Path: filepath.Join(dir, "*.log"), Topic: "t"}})
		testutil.Eventually(t, 60*time.Second, func() bool { return snk.n.Load() == int64(round*n) }, func() string { return fmt.Sprintf("round %d: %d of %d lines", round, snk.n.Load(), round*n) })
	}
	grown := threads(t) - before
	if grown > 3*runtime.GOMAXPROCS(0)+8 {
		t.Fatalf("starting %d tailers (five times) grew the process by %d threads; want a few", n, grown)
	}
	t.Logf("%d threads more", grown)
}
