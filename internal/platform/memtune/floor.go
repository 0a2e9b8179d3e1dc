package memtune

import (
	"context"
	"runtime/debug"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/logging"
)

// Floor keeps the runtime's soft memory limit at Limit, raised to Ratio ×
// the live heap while that is more.
//
// A daemon that runs with a high GC percentage (GOGC 400) under a soft
// limit collects rarely while its live heap is small, and the limit bounds
// its memory. But the runtime collects whenever the heap reaches the limit,
// so a live heap close to it (more partitions, a slow Elasticsearch holding
// more documents in flight) would make it collect over and over, burning
// up to half the CPU. Under the floor it never collects more often than at
// the pace of Ratio (2: the default GOGC of 100); memory then goes past
// Limit, and a warning says to raise it.
type Floor struct {
	Limit int64 // bytes
	Ratio int64
	// Check is how often the live heap is read (the runtime updates it at
	// the end of each collection).
	Check time.Duration
	Log   *logrus.Entry

	// setLimit and live are the runtime's, replaced in tests.
	setLimit func(int64) int64
	live     func() uint64
}

// next is the limit to set for a live heap of live bytes while cur is set,
// and whether it differs: up at once, down only by an eighth or more (or
// back to Limit), so that a heap that breathes does not reset it every
// Check.
func (f *Floor) next(cur int64, live uint64) (int64, bool) {
	w := max(f.Limit, int64(live)*f.Ratio)
	if w == cur || (w < cur && w != f.Limit && w > cur-cur/8) {
		return cur, false
	}
	return w, true
}

// Run sets the limit and follows the live heap until ctx ends; it leaves
// the limit at Limit.
func (f *Floor) Run(ctx context.Context) error {
	setLimit, live := f.setLimit, f.live
	if setLimit == nil {
		setLimit, live = debug.SetMemoryLimit, liveHeap
	}
	cur := f.Limit
	setLimit(cur)
	defer func() { setLimit(f.Limit) }()
	tick := time.NewTicker(f.Check)
	defer tick.Stop()
	// A heap that hovers around the threshold would otherwise log every
	// Check.
	thr := logging.NewThrottle(10 * time.Minute)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			l := live()
			w, change := f.next(cur, l)
			if !change {
				continue
			}
			if cur == f.Limit && w > cur {
				thr.Log("over", f.Log.WithFields(logrus.Fields{"live_heap": l, "memory_limit": f.Limit}), logrus.WarnLevel,
					"live heap too large for the memory limit: collecting at the default pace, above the limit; raise memory_limit")
			}
			if w == f.Limit && cur > f.Limit {
				thr.Log("back", f.Log.WithField("live_heap", l), logrus.InfoLevel, "live heap back within the memory limit")
			}
			cur = w
			setLimit(cur)
		}
	}
}

// liveHeap is the heap the last collection found live.
func liveHeap() uint64 { return runtimeMetric("/gc/heap/live:bytes") }
