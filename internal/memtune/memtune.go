// Package memtune hands memory back when the agent has nothing to do.
//
// While lines flow the agent lets its heap grow several times its live
// size before collecting (GOGC 400 under a soft limit, see cmd/logagent):
// collecting short-lived events at the default pace costs a quarter of its
// CPU. On a quiet host that headroom is only resident memory. Once no event
// has been sent for IdleAfter, the governor lowers the GC percentage and
// returns freed memory to the OS; the first event sent restores the busy
// setting.
package memtune

import (
	"context"
	"runtime"
	"runtime/debug"
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
	// IdleAfter is how long without activity counts as idle.
	IdleAfter time.Duration
	// Check is how often Activity is read.
	Check time.Duration
	Log   *logrus.Entry

	// setGC and free are the runtime's, replaced in tests.
	setGC func(int) int
	free  func()
}

// Run governs until ctx ends, leaving the busy setting in place.
func (g *Governor) Run(ctx context.Context) error {
	setGC, free := g.setGC, g.free
	if setGC == nil {
		setGC, free = debug.SetGCPercent, release
	}
	tick := time.NewTicker(g.Check)
	defer tick.Stop()
	last, quietSince := g.Activity(), time.Now()
	idle, busyGC := false, 0
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
					busyGC = setGC(g.IdleGCPercent)
				}
				free()
				idle = true
				g.Log.Debug("idle: memory returned to the OS")
			}
		}
	}
}

// maxShrinks bounds the collections release runs to shrink stacks.
const maxShrinks = 4

// release hands what the agent no longer uses back to the OS. A collection
// halves a parked goroutine's stack at most once, and each tailer of an
// idle file is a goroutine parked with the stack it grew while reading (16
// KiB after a burst); one collection would leave a thousand idle files
// holding 8 MiB of stacks. So it collects until the stacks stop shrinking
// (a few milliseconds for a small heap, once per quiet spell), then returns
// the freed memory.
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
}
