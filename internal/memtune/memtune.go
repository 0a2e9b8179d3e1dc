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
		setGC, free = debug.SetGCPercent, debug.FreeOSMemory
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
