package memtune

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// limits stands in for the runtime's memory limit.
type limits struct {
	mu  sync.Mutex
	cur int64
	set int
}

func (l *limits) setLimit(v int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cur
	l.cur, l.set = v, l.set+1
	return old
}

func (l *limits) get() (int64, int) { l.mu.Lock(); defer l.mu.Unlock(); return l.cur, l.set }

func TestFloorRaisesTheLimitOverALargeLiveHeap(t *testing.T) {
	lg := logrus.New()
	lg.SetOutput(io.Discard)
	const mib = 1 << 20
	var live atomic.Uint64
	live.Store(10 * mib)
	rec := &limits{}
	f := &Floor{Limit: 80 * mib, Ratio: 2, Check: 2 * time.Millisecond, Log: logrus.NewEntry(lg), setLimit: rec.setLimit, live: live.Load}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, func() bool { cur, n := rec.get(); return cur == 80*mib && n >= 1 }, testutil.Msg("limit set at start"))

	// Live heap past half the limit: the limit follows it at twice its size.
	live.Store(60 * mib)
	testutil.Eventually(t, 5*time.Second, func() bool { cur, _ := rec.get(); return cur == 120*mib }, testutil.Msg("limit raised to 2× the live heap"))
	// Back under half: the configured limit again.
	live.Store(20 * mib)
	testutil.Eventually(t, 5*time.Second, func() bool { cur, _ := rec.get(); return cur == 80*mib }, testutil.Msg("limit back to the configured one"))

	live.Store(70 * mib)
	testutil.Eventually(t, 5*time.Second, func() bool { cur, _ := rec.get(); return cur == 140*mib }, testutil.Msg("raised again"))
	cancel()
	<-done
	if cur, _ := rec.get(); cur != 80*mib {
		t.Fatalf("after Run: limit %d, want the configured %d", cur, 80*mib)
	}
}

func TestFloorNext(t *testing.T) {
	const mib = 1 << 20
	f := &Floor{Limit: 80 * mib, Ratio: 2}
	for _, c := range []struct {
		cur, live, want int64
		change          bool
	}{
		{80 * mib, 10 * mib, 80 * mib, false},   // small heap: the limit
		{80 * mib, 40 * mib, 80 * mib, false},   // exactly half
		{80 * mib, 41 * mib, 82 * mib, true},    // past half: 2× live
		{120 * mib, 61 * mib, 122 * mib, true},  // grows: at once
		{120 * mib, 58 * mib, 120 * mib, false}, // shrinks a little: kept
		{120 * mib, 52 * mib, 104 * mib, true},  // shrinks by more than an eighth
		{84 * mib, 41 * mib, 84 * mib, false},   // a little above the limit: kept
		{84 * mib, 20 * mib, 80 * mib, true},    // back under half: the limit
	} {
		got, change := f.next(c.cur, uint64(c.live))
		if got != c.want || change != c.change {
			t.Errorf("next(%d MiB, live %d MiB) = %d MiB, %v; want %d MiB, %v", c.cur/mib, c.live/mib, got/mib, change, c.want/mib, c.change)
		}
	}
}
