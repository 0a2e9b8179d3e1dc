package memtune

import (
	"context"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// recorder stands in for the runtime's GC setting.
type recorder struct {
	mu    sync.Mutex
	gc    int
	frees int
	sets  []int // every setting, in order
}

func (r *recorder) setGC(p int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.gc
	r.gc = p
	r.sets = append(r.sets, p)
	return old
}

func (r *recorder) free() { r.mu.Lock(); r.frees++; r.mu.Unlock() }

func (r *recorder) state() (int, int) { r.mu.Lock(); defer r.mu.Unlock(); return r.gc, r.frees }

func TestIdleReturnsMemoryAndWorkRestoresHeadroom(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	var activity atomic.Uint64
	rec := &recorder{gc: 400}
	g := &Governor{Activity: activity.Load, IdleGCPercent: 100, IdleAfter: 50 * time.Millisecond, Check: 5 * time.Millisecond,
		Log: logrus.NewEntry(l), setGC: rec.setGC, free: rec.free}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()

	// Busy: activity keeps moving, nothing changes.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		activity.Add(1)
		time.Sleep(time.Millisecond) // the work being simulated, not synchronisation
	}
	if gc, frees := rec.state(); gc != 400 || frees != 0 {
		t.Fatalf("while busy: GC %d, %d frees; want 400 and none", gc, frees)
	}
	// Quiet: idle setting, memory returned once.
	testutil.Eventually(t, 5*time.Second, func() bool { gc, frees := rec.state(); return gc == 100 && frees == 1 }, testutil.Msg("idle setting"))
	// Work again: busy setting back.
	activity.Add(1)
	testutil.Eventually(t, 5*time.Second, func() bool { gc, _ := rec.state(); return gc == 400 }, testutil.Msg("busy setting restored"))
	// Idle again, then stop while idle: the busy setting is left in place.
	testutil.Eventually(t, 5*time.Second, func() bool { gc, frees := rec.state(); return gc == 100 && frees == 2 }, testutil.Msg("idle again"))
	cancel()
	<-done
	if gc, _ := rec.state(); gc != 400 {
		t.Fatalf("stopped with GC %d, want the busy 400", gc)
	}
}

// A job on a schedule of the daemon's own (host metrics) gives the idle
// heap room for its garbage while it runs, and only while it runs; work
// still restores the busy setting.
func TestScheduledJobRaisesTheIdlePercentage(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	var activity atomic.Uint64
	var scheduled atomic.Bool
	rec := &recorder{gc: 400}
	g := &Governor{Activity: activity.Load, IdleGCPercent: 25, Scheduled: scheduled.Load, ScheduledGCPercent: 100,
		IdleAfter: 10 * time.Millisecond, Check: 2 * time.Millisecond, Log: logrus.NewEntry(l), setGC: rec.setGC, free: rec.free}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	gcIs := func(want int) func() bool { return func() bool { gc, _ := rec.state(); return gc == want } }
	testutil.Eventually(t, 5*time.Second, gcIs(25), testutil.Msg("the idle setting"))
	scheduled.Store(true)
	testutil.Eventually(t, 5*time.Second, gcIs(100), testutil.Msg("room for the scheduled job"))
	rec.mu.Lock()
	n := len(rec.sets)
	rec.mu.Unlock()
	activity.Add(1)
	// Busy for IdleAfter, then idle again: 400, then 100 (the job is on).
	testutil.Eventually(t, 5*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.sets) >= n+2
	}, testutil.Msg("busy, then idle again"))
	rec.mu.Lock()
	if got := rec.sets[n : n+2]; got[0] != 400 || got[1] != 100 {
		t.Errorf("after work: settings %v, want the busy 400 then the scheduled job's 100", got)
	}
	rec.mu.Unlock()
	scheduled.Store(false)
	testutil.Eventually(t, 5*time.Second, gcIs(25), testutil.Msg("the job stopped: the plain idle setting"))
	cancel()
	<-done
	if gc, _ := rec.state(); gc != 400 {
		t.Fatalf("stopped with GC %d, want the busy 400", gc)
	}
}

// An idle spell releases again when the stacks grow back well past what
// the last release left, and not while they stay put.
func TestIdleReleasesAgainWhenStacksRegrow(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	rec := &recorder{gc: 400}
	var stacks atomic.Uint64
	stacks.Store(4 << 20)
	var reads atomic.Int64
	g := &Governor{Activity: func() uint64 { return 7 }, IdleGCPercent: 25, IdleAfter: 10 * time.Millisecond, Check: 2 * time.Millisecond,
		RegrowEvery: 20 * time.Millisecond, Log: logrus.NewEntry(l), setGC: rec.setGC, free: rec.free,
		stacks: func() uint64 { reads.Add(1); return stacks.Load() }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 5*time.Second, func() bool { _, frees := rec.state(); return frees == 1 }, testutil.Msg("the first idle release"))
	// Unchanged stacks, and a growth too small to be worth collections:
	// many regrowth checks, no release.
	stacks.Store(4<<20 + 512<<10)
	r0 := reads.Load()
	testutil.Eventually(t, 5*time.Second, func() bool { return reads.Load() >= r0+5 }, testutil.Msg("regrowth checks"))
	if _, frees := rec.state(); frees != 1 {
		t.Fatalf("%d releases with stacks grown by 512 KiB; want only the first", frees)
	}
	// Stacks grown by half: released again, once.
	stacks.Store(6 << 20)
	testutil.Eventually(t, 5*time.Second, func() bool { _, frees := rec.state(); return frees == 2 }, testutil.Msg("a release for the regrown stacks"))
	r0 = reads.Load()
	testutil.Eventually(t, 5*time.Second, func() bool { return reads.Load() >= r0+5 }, testutil.Msg("regrowth checks"))
	if _, frees := rec.state(); frees != 2 {
		t.Fatalf("%d releases; after the regrown stacks were released (and stayed), want 2", frees)
	}
}

// grow recurses deep enough to grow the goroutine's stack to about 32 KiB
// and returns; its caller then parks with a shallow frame, the way a
// tailer parks after a burst.
func grow(depth int) byte {
	var pad [512]byte
	if depth > 0 {
		pad[depth%len(pad)] = grow(depth - 1)
		return pad[0]
	}
	return pad[1]
}

func TestReleaseShrinksParkedStacks(t *testing.T) {
	const n = 200
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.StackInuse
	ready, done := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grow(50) // ~28 KiB deep, then returns
			ready <- struct{}{}
			<-done
		}()
	}
	for i := 0; i < n; i++ {
		<-ready
	}
	defer func() { close(done); wg.Wait() }()
	runtime.ReadMemStats(&ms)
	grown := (ms.StackInuse - base) / n
	if grown < 16<<10 {
		t.Fatalf("the goroutines' stacks grew to %d B each; the test needs at least 16 KiB", grown)
	}
	release()
	runtime.ReadMemStats(&ms)
	// A parked goroutine with a shallow frame needs 2-4 KiB; one or two
	// collections would leave a half or a quarter of what it grew.
	if per := (int64(ms.StackInuse) - int64(base)) / n; per > 6<<10 {
		t.Fatalf("after release, parked goroutines keep %d B of stack each (grown to %d); want at most 6 KiB", per, grown)
	}
}
