// Package memtune hands memory back when the agent has nothing to do.
//
// While lines flow the agent lets its heap grow several times its live
// size before collecting (GOGC 400 under a soft limit, see cmd/logagent):
// collecting short-lived events at the default pace costs a quarter of its
// CPU. On a quiet host that headroom is only resident memory. Once no event
// has been sent for IdleAfter, the governor lowers the GC percentage and
// returns freed memory to the OS; the first event sent restores the busy
// setting. While idle it watches the goroutine stacks: an idle file's
// safety-net poll can grow its tailer's stack again, and nothing shrinks
// it back until the runtime's next collection, so stacks that grew well
// past what the last release left are released again (at most once per
// RegrowEvery).
package memtune

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/sirupsen/logrus"
)

// Governor switches between the busy and the idle memory settings.
type Governor struct {
	// Activity grows while there is work (events sent).
	Activity func() uint64
	// IdleGCPercent is the GC percentage while idle; 0 leaves it alone
	// (GOGC set by the operator), memory is still returned.
	IdleGCPercent int
	// Scheduled, if set, reports whether a job of the daemon's own runs on
	// a schedule (host metrics). Each run's garbage would force a
	// collection of the small idle heap at IdleGCPercent, a few
	// milliseconds of CPU every time; while it reports true the idle
	// percentage is ScheduledGCPercent, which gives a run's garbage room.
	Scheduled          func() bool
	ScheduledGCPercent int
	// IdleAfter is how long without activity counts as idle.
	IdleAfter time.Duration
	// Check is how often Activity is read.
	Check time.Duration
	// RegrowEvery is the shortest time between two releases in one idle
	// spell (default 30s).
	RegrowEvery time.Duration
	Log         *logrus.Entry

	// setGC, free and stacks are the runtime's, replaced in tests.
	setGC  func(int) int
	free   func()
	stacks func() uint64
}

// regrown tells whether the stacks, now bytes, grew far enough past the
// after bytes the last release left to be released again: by enough that
// a release (a few collections) is worth it, and in proportion, so that a
// host with many busy-once files does not collect for a few goroutines.
func regrown(now, after uint64) bool {
	return now > after+1<<20 && now > after+after/4
}

// Run governs until ctx ends, leaving the busy setting in place.
func (g *Governor) Run(ctx context.Context) error {
	setGC, free, stacks := g.setGC, g.free, g.stacks
	if setGC == nil {
		setGC, free = debug.SetGCPercent, release
	}
	if stacks == nil {
		stacks = stackBytes
	}
	regrowEvery := g.RegrowEvery
	if regrowEvery <= 0 {
		regrowEvery = 30 * time.Second
	}
	tick := time.NewTicker(g.Check)
	defer tick.Stop()
	last, quietSince := g.Activity(), time.Now()
	idle, busyGC, idleGC := false, 0, 0
	var released time.Time // of the last release in this idle spell
	var left uint64        // stack bytes that release left
	wake := func() {
		if idle && g.IdleGCPercent > 0 {
			setGC(busyGC)
		}
		idle = false
	}
	defer wake()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			a := g.Activity()
			switch {
			case a != last:
				last, quietSince = a, now
				if idle {
					wake()
					g.Log.Debug("busy again: memory headroom restored")
				}
			case !idle && now.Sub(quietSince) >= g.IdleAfter:
				if g.IdleGCPercent > 0 {
					idleGC = g.idlePercent()
					busyGC = setGC(idleGC)
				}
				free()
				idle, released, left = true, now, stacks()
				g.Log.Debug("idle: memory returned to the OS")
			case idle && g.IdleGCPercent > 0 && g.idlePercent() != idleGC:
				idleGC = g.idlePercent()
				setGC(idleGC)
			case idle && now.Sub(released) >= regrowEvery:
				if st := stacks(); regrown(st, left) {
					free()
					released, left = now, stacks()
					g.Log.WithFields(logrus.Fields{"stacks_before": st, "stacks_after": left}).Debug("idle: stacks grew again; released")
				}
			}
		}
	}
}

// idlePercent is the GC percentage for an idle spell now.
func (g *Governor) idlePercent() int {
	if g.Scheduled != nil && g.ScheduledGCPercent > 0 && g.Scheduled() {
		return g.ScheduledGCPercent
	}
	return g.IdleGCPercent
}

// stackBytes is the memory in goroutine stacks, read without stopping the
// world (runtime.ReadMemStats would, every Check).
func stackBytes() uint64 { return runtimeMetric("/memory/classes/heap/stacks:bytes") }

// runtimeMetric reads one of the runtime's uint64 metrics (0 if it has
// no such one).
func runtimeMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// maxShrinks bounds the collections release runs to shrink stacks.
const maxShrinks = 4

// release hands what the agent no longer uses back to the OS. A collection
// halves a parked goroutine's stack at most once, and each tailer of an
// idle file is a goroutine parked with the stack it grew while reading (16
// KiB after a burst); one collection would leave a thousand idle files
// holding 8 MiB of stacks. So it collects until the stacks stop shrinking
// (a few milliseconds for a small heap, once per quiet spell), then returns
// the freed memory, and the pages of its own executable that nothing
// runs (see dropBinaryPages).
func release() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	for i := 0; i < maxShrinks; i++ {
		before := ms.StackInuse
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.StackInuse >= before {
			break
		}
	}
	debug.FreeOSMemory()
	_, _ = dropBinaryPages() // best effort: an old kernel keeps them
}
