package tailer

import (
	"context"
	"time"
)

// idlePollMax bounds how far the safety-net poll of a quiet file backs
// off, as a multiple of IdlePoll.
const idlePollMax = 6

// idlePollFor is the safety-net poll interval of a file with a notifier
// that last had something to read at last (zero: not since the tailer
// started): IdlePoll while it was recently busy, backing off to
// idlePollMax × IdlePoll (30 s by default) as it stays quiet. Any change
// the kernel reports still wakes it at once; only a file system that
// reports none (NFS) sees the longer wait, and only for a file that had
// been quiet for minutes. A thousand idle files are checked about 33
// times a second instead of 200.
func idlePollFor(base time.Duration, last, now time.Time) time.Duration {
	if last.IsZero() {
		return idlePollMax * base
	}
	return min(max(base, now.Sub(last)/2), idlePollMax*base)
}

// coalesce stretches a safety-net poll of d (if a second or more) to end
// on the next whole second, so the polls of a thousand quiet files fall
// due together and the runtime wakes a thread once a second for all that
// are due rather than once per file: each wake-up of a sleeping process
// costs more CPU than the poll it runs (the idle bench: 0.4 against 0.7 %
// of a core when tailers that started a few at a time polled each on its
// own clock).
func coalesce(now time.Time, d time.Duration) time.Duration {
	if d < time.Second {
		return d
	}
	return now.Add(d).Truncate(time.Second).Add(time.Second).Sub(now)
}

// idle waits for a file system event, the poll interval, or the flush
// time of a pending multiline event, whichever comes first. It reports
// false when ctx ended.
func (t *Tailer) idle(ctx context.Context, r *reader) bool {
	t.idleTm.Reset(t.idleFor(r))
	select {
	case <-ctx.Done():
		return false
	case <-t.wake:
		return true
	case <-t.idleTm.C:
		t.rested(r)
		return true
	}
}

// idleFor is how long idle waits at most.
//
//go:noinline
func (t *Tailer) idleFor(r *reader) time.Duration {
	if t.wake == nil && t.cfg.Notifier != nil {
		// (Re)try: the directory may not have existed before.
		if wake, unsub, ok := t.cfg.Notifier.Subscribe(t.cfg.Path); ok {
			t.wake, t.unsub = wake, unsub
		}
	}
	d := t.cfg.PollInterval
	if t.wake != nil {
		var last time.Time
		if r != nil {
			last = r.lastRead
		}
		// The backoff on the tailer's clock, the alignment on the
		// timer's.
		d = coalesce(time.Now(), idlePollFor(t.cfg.IdlePoll, last, t.now()))
	}
	if r != nil && r.ml != nil && r.ml.pending() {
		d = min(d, max(time.Until(r.ml.last.Add(r.ml.timeout)), 0)+time.Millisecond)
	}
	return d
}

// rested lets go of r's read buffer once nothing was read for a whole
// idle poll.
//
//go:noinline
func (t *Tailer) rested(r *reader) {
	if r != nil && t.now().Sub(r.lastRead) >= t.cfg.IdlePoll {
		r.rest()
	}
}
