package tailer

import (
	"context"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// Drains reads deleted files past the stop of the tailer that had them: a
// deleted file cannot be found again, so when its tailer is stopped (its
// collect entry changed or was removed) its unread rest is still read to
// the end and sent. Only Ctx (the agent's shutdown) stops them.
type Drains struct {
	Ctx context.Context
	wg  sync.WaitGroup
}

// Wait waits for the detached drainers.
func (d *Drains) Wait() { d.wg.Wait() }

// unlinked reports whether f has been deleted (no name left).
func unlinked(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// letGo releases r when follow returns without having handed it off.
//
//go:noinline
func (t *Tailer) letGo(r *reader, handed *bool) {
	if *handed {
		return
	}
	if t.ctx.Err() != nil && t.cfg.Drains != nil && t.cfg.Drains.Ctx.Err() == nil && unlinked(r.f) {
		// Stopped while following a deleted file: nobody can open it
		// again, so a drainer reads what is left, from where the
		// registry says reading stopped.
		r.discard()
		r.pos, r.carry, r.carrySplit = r.h.Resume(), nil, false
		if r.ml != nil {
			r.ml.reset()
		}
		t.handOff(r)
		return
	}
	r.discard()
	r.f.Close()
	r.h.Release()
}

// handOff gives a rotated-away file to a drainer goroutine, which reads it
// to its end and keeps reading while it still grows (a writer that has not
// reopened yet), then releases it.
//
// Run waits for its drainers, except those of deleted files when Drains is
// set: once the tailer is stopped they detach, and only Drains.Ctx stops
// them.
func (t *Tailer) handOff(r *reader) {
	t.wg.Add(1)
	var mu sync.Mutex
	detached, finished := false, false
	detach := func() bool {
		d := t.cfg.Drains
		if d == nil || d.Ctx.Err() != nil {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if finished || !unlinked(r.f) {
			return false
		}
		d.wg.Add(1)
		detached = true
		t.wg.Done()
		return true
	}
	go func() {
		defer func() {
			mu.Lock()
			defer mu.Unlock()
			finished = true
			if detached {
				t.cfg.Drains.wg.Done()
			} else {
				t.wg.Done()
			}
		}()
		t.drain(r, detach)
	}()
}

func (t *Tailer) drain(r *reader, detach func() bool) {
	defer r.f.Close()
	base := t.ctx
	if d := t.cfg.Drains; d != nil {
		base = d.Ctx
	}
	ctx, cancel := context.WithCancel(base)
	defer cancel()
	// When the tailer stops, a file that still has a name is left to its
	// successor (through the registry); a deleted one is read on.
	stopWatch := context.AfterFunc(t.ctx, func() {
		if !detach() {
			cancel()
		}
	})
	defer stopWatch()
	r.ctx = ctx
	idle := time.Now()
	for ctx.Err() == nil {
		fi, err := r.f.Stat()
		if err != nil {
			break
		}
		same := fi.Size() >= r.pos
		if same {
			// Read on from pos only while the file still starts as this
			// generation: truncated and written again past pos (unseen:
			// its tailer stopped first), pos would fall anywhere in the
			// new content (the agentsim found a long line's pieces cut
			// at the old offset); written again to exactly pos, its new
			// content would never be read.
			if same, err = r.unchanged(); err != nil {
				break
			}
		}
		if !same {
			// Truncated after it was rotated or deleted (copytruncate
			// of a file its tailer had stopped following, or had
			// stopped with): the rest is in the copy, if there is one;
			// then what the file holds now is read from its start.
			if err := t.regenerate(ctx, r, t.now()); err != nil {
				t.thr.Log("drain-truncated", t.logger().WithError(err), logrus.WarnLevel, "a drained file was truncated; reading it again did not finish")
				break
			}
			idle = time.Now()
			continue
		}
		if fi.Size() > r.pos {
			if err := r.readAvailable(ctx, fi.Size()); err != nil {
				break
			}
			idle = time.Now()
			continue
		}
		if time.Since(idle) >= t.cfg.RotateWait {
			break
		}
		backoff.Sleep(ctx, t.cfg.PollInterval)
	}
	if ctx.Err() == nil {
		if err := r.finish(t.now()); err != nil {
			t.logger().WithError(err).Warn("sending the end of a rotated file")
		}
	}
	r.discard()
	if fi, err := r.f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
			r.h.Forget()
			return
		}
	}
	r.h.Release()
	t.rescan.Store(true) // still on disk: it may be written to later
}
