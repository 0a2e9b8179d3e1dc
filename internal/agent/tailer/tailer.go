// Package tailer follows one file path: it reads lines from the file the
// path names, survives rename+create rotation (the old file is read to its
// end), copytruncate (the unread rest is taken from the rotated copy and
// reading restarts at 0) and deletion, and hands every line to a Sink. It
// knows nothing of Kafka or etcd; where to resume comes from the registry.
//
// Why not nxadm/tail: its events carry no byte offset of their own line
// start and no device+inode, so the registry could not key or resume
// exactly; its reopen-on-rename selects between "modified" and "deleted"
// notifications at random, so lines written just before a rotation can be
// skipped; it detects truncation only by size, so a file truncated and
// refilled past the old offset is silently read from the middle; and it
// splits long lines without marking them. This reader polls with fstat and
// pread, which is also what lets it batch reads of 256 KiB.
package tailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// Sink takes batches of events; Send blocks while the pipeline is full
// (that is the backpressure that pauses reading) and fails only when ctx
// ends.
type Sink interface {
	Send(ctx context.Context, b *event.Batch) error
}

// Config is one tailer's job.
type Config struct {
	Path   string
	Source *event.Source
	// FromEnd starts a file the registry has never seen at its last
	// complete line, on the first open only; it is set only for an entry
	// that never read anything, so no file was rotated past it and none
	// next to the path is recovered.
	FromEnd      bool
	Multiline    *collectconf.Multiline
	MaxLineBytes int
	PollInterval time.Duration
	// RotateWait is how long a rotated-away or deleted file is still
	// read after it stopped growing, for writers that reopen late.
	RotateWait time.Duration
	// RotatedRescan is how often files rotated away from the path and
	// let go of are checked for late writes (default a minute).
	RotatedRescan time.Duration
	// GlobMember makes the tailer stop once its file is gone (the glob
	// scan starts a new tailer if the path matches again).
	GlobMember bool
	// Notifier, if set, wakes the tailer on file system events; it then
	// polls an idle file only every IdlePoll.
	Notifier *Notifier
	IdlePoll time.Duration
	// Guard, if set, refuses files that resolve outside the allowlist.
	Guard *pathguard.Guard
	// Drains, if set, keeps reading deleted files after the tailer
	// stops (see Drains).
	Drains *Drains
	// Opens, if set, is shared by the tailers of an agent and bounds how
	// many of them open a file at once (a slot is taken by sending, for
	// the open). A thousand files found at start (or rotated at
	// midnight) otherwise put hundreds of goroutines in open(2) at the
	// same moment, the runtime starts a thread for each, and it keeps
	// every thread it ever started: 48 KiB of stacks each for good.
	Opens chan struct{}
	// Clock, if set, is the time lines are read at (tests); time.Now
	// otherwise.
	Clock func() time.Time
	// Keep, if set, is the collect entry's line filter: events it refuses
	// are read past and counted, not sent.
	Keep func([]byte) bool
}

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

// Status is what the tailer is doing, for inventories and logs.
type Status struct {
	Path   string    `json:"path"`
	State  string    `json:"state"` // one of the State constants
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
	// Filtered is how many events the entry's line filters dropped.
	Filtered uint64 `json:"filtered,omitempty"`
}

// Tailer states.
const (
	StateStarting = "starting"
	StateRunning  = "running"
	StateWaiting  = "waiting for file"
	StateError    = "error"
)

// Tailer follows one path.
type Tailer struct {
	cfg  Config
	reg  *registry.Registry
	sink Sink
	// base is the logger New was given; logger adds the file's fields
	// when there is something to say (rarely: kept as fields, they were
	// a copied map of every parent field per file, for good).
	base *logrus.Entry
	m    *Metrics
	thr  *logging.Throttle

	ctx      context.Context
	wg       sync.WaitGroup // drainers
	status   atomic.Pointer[Status]
	filtered atomic.Uint64

	wake   <-chan struct{} // file system events (nil: poll only)
	unsub  func()
	idleTm *time.Timer

	// rescan is set while files rotated away from the path are kept by
	// the registry unread by anyone: they are checked for late writes
	// every RotatedRescan.
	rescan     atomic.Bool
	lastRescan time.Time

	// Run's state between turns (see Run).
	first        bool
	opened       time.Time       // when the file being followed was opened
	rotatedSince time.Time       // set after a rotation: look for files rotated past us
	bo           backoff.Backoff // open and read errors

	// batches holds full-size batches (maxBatch events) back from the
	// producer once acknowledged, for reuse (see reader.emit).
	batches sync.Pool
}

// New returns a tailer; call Run.
func New(cfg Config, reg *registry.Registry, sink Sink, log *logrus.Entry, m *Metrics) *Tailer {
	if cfg.RotateWait == 0 {
		cfg.RotateWait = 5 * time.Second
	}
	if cfg.IdlePoll == 0 {
		cfg.IdlePoll = 5 * time.Second
	}
	if cfg.RotatedRescan == 0 {
		cfg.RotatedRescan = time.Minute
	}
	t := &Tailer{cfg: cfg, reg: reg, sink: sink, m: m, thr: logging.NewThrottle(time.Minute),
		base: log}
	t.setStatus(StateStarting, "")
	return t
}

// Status returns the current status.
func (t *Tailer) Status() Status {
	s := *t.status.Load()
	s.Filtered = t.filtered.Load()
	return s
}

func (t *Tailer) setStatus(state, reason string) {
	if s := t.status.Load(); s != nil && s.State == state && s.Reason == reason {
		return
	}
	t.status.Store(&Status{Path: t.cfg.Path, State: state, Reason: reason, Since: time.Now()})
}

// logger is the tailer's logger, with the file's path and topic.
func (t *Tailer) logger() *logrus.Entry {
	return t.base.WithFields(logrus.Fields{"path": t.cfg.Path, "topic": t.cfg.Source.Topic})
}

// Run follows the path until ctx ends. Files handed to drainers are
// released before Run returns.
//
// A tailer of an idle file is a goroutine parked in idle for as long as
// the file stays quiet: a thousand of them are most of an idle agent's
// stacks. The runtime shrinks a parked stack only while what it uses
// (plus 800 bytes) is under a quarter of it, so Run, follow and idle keep
// their own frames small and leave the work of each turn to functions
// that have returned by the time the goroutine parks (next, step,
// followed): parked in idle, a tailer keeps a 4 KiB stack instead of the
// 8-16 KiB a burst grew (TestIdleTailerStacksShrink).
func (t *Tailer) Run(ctx context.Context) error {
	t.ctx = ctx
	t.idleTm = time.NewTimer(time.Hour)
	defer t.stopped()
	t.first = true
	t.bo = backoff.Backoff{Min: t.cfg.PollInterval, Max: 30 * time.Second}
	for ctx.Err() == nil {
		r, act := t.next()
		switch act {
		case nextStop:
			return nil
		case nextRetry:
			continue
		case nextWait:
			t.idle(ctx, nil)
			continue
		}
		gone, rotated, err := t.follow(r)
		if t.followed(r, gone, rotated, err) {
			return nil
		}
	}
	return nil
}

// What Run does after next.
const (
	nextFollow = iota // follow the reader returned
	nextRetry         // try again (next waited out a backoff)
	nextWait          // no file yet: idle, then try again
	nextStop          // a glob member whose file is gone: Run returns
)

// stopped cleans up when Run returns: drainers first, then the
// subscription and the timer.
//
//go:noinline
func (t *Tailer) stopped() {
	t.wg.Wait()
	if t.unsub != nil {
		t.unsub()
	}
	t.idleTm.Stop()
}

// next opens the path for Run's next turn.
//
//go:noinline
func (t *Tailer) next() (*reader, int) {
	ctx := t.ctx
	t.opened = time.Now()
	if o := t.cfg.Opens; o != nil {
		select {
		case o <- struct{}{}:
		case <-ctx.Done():
			return nil, nextRetry // Run sees ctx ended
		}
	}
	r, err := t.open(t.first)
	if o := t.cfg.Opens; o != nil {
		<-o
	}
	if err != nil {
		t.setStatus(StateError, err.Error())
		t.m.OpenErrors.Inc()
		t.thr.Log("open", t.logger().WithError(err), logrus.WarnLevel, "cannot read file; retrying")
		backoff.Sleep(ctx, t.bo.Next())
		return nil, nextRetry
	}
	if r == nil {
		if t.cfg.GlobMember && !t.first {
			return nil, nextStop
		}
		if t.first {
			// Renamed away while the agent was stopped and not
			// replaced: its unread rest is still to be sent.
			t.recoverRotated(registry.Key{})
			t.recoverSkipped(t.reg.Written(), registry.Key{})
		}
		t.first = false
		t.setStatus(StateWaiting, "")
		return nil, nextWait
	}
	t.first = false
	t.bo.Reset()
	if !t.rotatedSince.IsZero() {
		t.recoverSkipped(t.rotatedSince, r.key)
	}
	t.setStatus(StateRunning, "")
	t.m.Files.Inc()
	return r, nextFollow
}

// followed ends a turn of Run after follow returned; it reports whether
// Run returns.
//
//go:noinline
func (t *Tailer) followed(r *reader, gone, rotated bool, err error) bool {
	t.m.Files.Dec()
	if rotated {
		t.rotatedSince = t.opened
		t.recoverSkipped(t.rotatedSince, r.key)
	}
	if err != nil && t.ctx.Err() == nil {
		t.setStatus(StateError, err.Error())
		t.thr.Log("read", t.logger().WithError(err), logrus.WarnLevel, "reading file failed; reopening")
		backoff.Sleep(t.ctx, t.bo.Next())
	}
	return gone && t.cfg.GlobMember
}

// open opens the path and positions a reader on it. It returns nil, nil if
// there is no file (or another reader holds it).
func (t *Tailer) open(first bool) (*reader, error) {
	f, _, err := t.cfg.Guard.Open(t.cfg.Path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening: %w", err)
	}
	r, err := t.position(f, first)
	if r == nil {
		f.Close()
	}
	return r, err
}

func (t *Tailer) position(f *os.File, first bool) (r *reader, err error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", t.cfg.Path)
	}
	key, ok := fileKey(fi, t.cfg.Source.Topic)
	if !ok {
		return nil, errors.New("no device/inode for file")
	}
	h, ok := t.reg.Claim(key, t.cfg.Path)
	if !ok {
		return nil, nil // a drainer or another glob's tailer still reads it
	}
	if first {
		// Rotated while the agent was stopped: the files the registry
		// knows are read from where they were left, the ones rotated
		// past it unseen (twice or more while stopped) from their start
		// once the current file is positioned (a copytruncate copy of
		// its old generation is taken care of by then).
		// An entry that starts at the end has never read this path: nothing
		// was rotated past it, and only what is written from now on is its.
		t.recoverRotated(key)
		defer func() {
			if r != nil && !t.cfg.FromEnd {
				t.recoverSkipped(t.reg.Written(), key)
			}
		}()
	}
	r = t.newReader(f, key, h)
	r.inst = h.Instance()
	if rel := h.Released(); !rel.IsZero() {
		r.since = rel
	}
	size := fi.Size()
	if h.Known() {
		same, err := r.sameGeneration(size)
		if err != nil {
			h.Release()
			return nil, err
		}
		if same && size >= h.Resume() {
			r.pos = h.Resume()
			t.logger().WithFields(logrus.Fields{"offset": r.pos, "size": size}).Info("resuming file")
			return r, nil
		}
		// Truncated or replaced (inode reuse) while we were not reading.
		if err := t.truncated(r); err != nil {
			h.Release()
			return nil, err
		}
		return r, nil
	}
	off := int64(0)
	if first && t.cfg.FromEnd {
		off = lastLineStart(f, size, t.cfg.MaxLineBytes)
	}
	if err := t.startGeneration(r, off); err != nil {
		h.Release()
		return nil, err
	}
	t.logger().WithFields(logrus.Fields{"offset": off, "size": size}).Info("reading new file")
	return r, nil
}

// now is the time lines are read at.
func (t *Tailer) now() time.Time {
	if t.cfg.Clock != nil {
		return t.cfg.Clock()
	}
	return time.Now()
}

func (t *Tailer) newReader(f *os.File, key registry.Key, h *registry.Handle) *reader {
	r := &reader{t: t, f: f, key: key, h: h, since: time.Now()}
	if m := t.cfg.Multiline; m != nil {
		maxBytes := m.MaxBytes
		if maxBytes == 0 || maxBytes > t.cfg.MaxLineBytes {
			maxBytes = t.cfg.MaxLineBytes
		}
		r.ml = &joiner{re: m.Regexp(), maxLines: m.MaxLines, maxBytes: maxBytes, timeout: time.Duration(m.Timeout)}
	}
	return r
}

// startGeneration begins a new file generation at off and persists it.
func (t *Tailer) startGeneration(r *reader, off int64) error {
	fi, err := r.f.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	n := int(min(fi.Size(), fpMax))
	var fp uint64
	if n > 0 {
		if fp, err = fingerprint(r.f, n); err != nil {
			if !errors.Is(err, errShort) {
				return fmt.Errorf("fingerprinting: %w", err)
			}
			n = 0
		}
	}
	r.discard() // events of the old generation never sent (normally none)
	if err := r.h.Start(off, n, fp); err != nil {
		return err
	}
	r.inst = r.h.Instance()
	r.pos, r.carry, r.carrySplit = off, nil, false
	if r.ml != nil {
		r.ml.reset()
	}
	return nil
}

// follow reads r until its file is rotated away or deleted (then it hands
// r to a drainer, reports rotated, and gone when nothing replaced it) or
// ctx ends.
func (t *Tailer) follow(r *reader) (gone, rotated bool, err error) {
	handed := false
	defer t.letGo(r, &handed)
	for {
		act, err := t.step(r)
		switch act {
		case stepAgain:
			continue
		case stepFailed:
			return false, false, err
		case stepGone:
			handed = true
			return true, true, nil
		case stepRotated:
			handed = true
			return false, true, nil
		}
		if !t.idle(t.ctx, r) {
			return false, false, nil
		}
	}
}

// What follow does after a step.
const (
	stepIdle    = iota // everything read: wait for more
	stepAgain          // read something (or reopened a truncated file): look again
	stepFailed         // reading failed
	stepGone           // removed or renamed away, not replaced: handed to a drainer
	stepRotated        // replaced by a new file: handed to a drainer
)

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

// step is one look at the file: read what was appended, reopen it when
// truncated, flush a timed-out multiline event, notice a rotation.
//
//go:noinline
func (t *Tailer) step(r *reader) (int, error) {
	ctx := t.ctx
	fi, err := r.f.Stat()
	if err != nil {
		return stepFailed, fmt.Errorf("stat: %w", err)
	}
	size := fi.Size()
	if size < r.pos {
		if err := t.truncated(r); err != nil {
			return stepFailed, err
		}
		return stepAgain, nil
	}
	if size > r.pos {
		same, err := r.sameGeneration(size)
		if err != nil {
			return stepFailed, err
		}
		if !same {
			if err := t.truncated(r); err != nil {
				return stepFailed, err
			}
			return stepAgain, nil
		}
		if err := r.readAvailable(ctx, size); err != nil {
			return stepFailed, err
		}
		return stepAgain, nil
	}
	now := t.now()
	if r.ml != nil && r.ml.expired(now) {
		if err := r.ml.flush(r.emitter(now)); err != nil {
			return stepFailed, err
		}
		if err := r.flush(); err != nil {
			return stepFailed, err
		}
	}
	pfi, err := os.Stat(t.cfg.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		t.m.Rotations.Inc()
		t.logger().Info("file removed or renamed away; reading what is left")
		t.handOff(r)
		return stepGone, nil
	case err == nil && !os.SameFile(pfi, fi):
		t.m.Rotations.Inc()
		t.logger().Debug("file rotated; reading the old one to its end, then the new one from its start")
		t.handOff(r)
		return stepRotated, nil
	}
	if t.rescan.Load() && now.Sub(t.lastRescan) >= t.cfg.RotatedRescan {
		// A writer that kept its descriptor past RotateWait.
		t.lastRescan = now
		t.rescan.Store(t.recoverRotated(r.key) > 0)
	}
	return stepIdle, nil
}

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
		if err != nil || fi.Size() < r.pos {
			break // truncated after rotation: nothing sane left to read
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

// truncated handles a file that shrank or was rewritten in place
// (copytruncate). Lines of the old generation that were not yet sent are
// read from the rotated copy when one is found next to the file; then the
// new generation starts at 0 once every event of the old one is acked.
func (t *Tailer) truncated(r *reader) error {
	t.m.Truncations.Inc()
	resume := r.h.Resume()
	n, fp := r.h.Fingerprint()
	now := t.now()
	if c, size := t.findCopy(r, n, fp, resume); c != nil {
		cr := t.newReader(c, r.key, r.h)
		cr.inst, cr.pos = r.inst, resume
		err := cr.readAvailable(t.ctx, size)
		if err == nil {
			err = cr.finish(now)
		}
		if err == nil {
			// The copy is known from now on, as read to its end: a later
			// rotation must not take it for a file never seen.
			err = t.registerCopy(c, size)
		}
		c.Close()
		if err != nil {
			return err
		}
		t.logger().WithFields(logrus.Fields{"copy": c.Name(), "from": resume, "to": size}).Info("file truncated; read the rest of the old content from its rotated copy")
	} else {
		// The bytes in memory are all that is left of the old content.
		if err := r.finish(now); err != nil {
			return err
		}
		t.logger().WithField("offset", r.pos).Info("file truncated or replaced; reading it from the start")
	}
	for r.h.InFlight() > 0 {
		if !backoff.Sleep(t.ctx, 20*time.Millisecond) {
			return t.ctx.Err()
		}
	}
	since := r.since
	if err := t.startGeneration(r, 0); err != nil {
		return err
	}
	r.since = now
	// Truncated more than once while reading was held back (logrotate
	// with copytruncate and rotate N): the generations in between are
	// only in copies nobody has seen.
	t.recoverSkipped(since, r.key)
	return nil
}

// registerCopy records a copytruncate copy whose content was sent under
// the truncated file's generation: a stream of its own that starts at its
// end, so only what is appended to it later is read.
func (t *Tailer) registerCopy(c *os.File, size int64) error {
	fi, err := c.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", c.Name(), err)
	}
	k, ok := fileKey(fi, t.cfg.Source.Topic)
	if !ok {
		return nil
	}
	h, ok := t.reg.Claim(k, t.cfg.Path)
	if !ok {
		return nil // someone reads it already
	}
	defer h.Release()
	if h.Known() {
		return nil
	}
	n := int(min(size, fpMax))
	fp, err := fingerprint(c, n)
	if err != nil {
		return fmt.Errorf("fingerprinting %s: %w", c.Name(), err)
	}
	return h.Start(size, n, fp)
}

// maxSiblings bounds how many directory entries a rotation search looks at.
const maxSiblings = 10000

// siblings opens the tailed path's directory and lists it; files in it
// are then opened relative to that descriptor (nil if it cannot be read).
func (t *Tailer) siblings() (*os.File, []os.DirEntry) {
	dir := filepath.Dir(t.cfg.Path)
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	d := os.NewFile(uintptr(fd), dir)
	ents, err := d.ReadDir(-1)
	if err != nil && len(ents) == 0 {
		d.Close()
		return nil, nil
	}
	return d, ents
}

// findCopy looks next to the file for a copy of the old generation (same
// leading bytes, at least resume bytes long), as left by copytruncate.
func (t *Tailer) findCopy(r *reader, n int, fp uint64, resume int64) (*os.File, int64) {
	if n == 0 || resume == 0 {
		return nil, 0
	}
	d, ents := t.siblings()
	if d == nil {
		return nil, 0
	}
	defer d.Close()
	var best *os.File
	var bestSize int64
	for i, e := range ents {
		if i > maxSiblings || !e.Type().IsRegular() {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, e.Name())
		if err != nil {
			continue
		}
		keep := false
		if fi.Size() >= resume && fi.Size() > bestSize {
			if k, ok := fileKey(fi, r.key.Topic); ok && k != r.key {
				if got, err := fingerprint(f, n); err == nil && got == fp {
					keep = true
				}
			}
		}
		if keep {
			if best != nil {
				best.Close()
			}
			best, bestSize = f, fi.Size()
		} else {
			f.Close()
		}
	}
	return best, bestSize
}

// recoverRotated finds files this path had before it was rotated, while
// the agent was not running or since a drainer let go of them (their
// registry entry still names this path), and drains what they have past
// their acked offset. It returns how many such streams the registry has.
func (t *Tailer) recoverRotated(current registry.Key) int {
	streams := t.reg.Rotated(t.cfg.Source.Topic, t.cfg.Path, current)
	if len(streams) == 0 {
		return 0
	}
	defer t.rescan.Store(true)
	want := map[registry.Key]registry.Stream{}
	for _, s := range streams {
		want[s.Key] = s
	}
	d, ents := t.siblings()
	if d == nil {
		return len(streams)
	}
	defer d.Close()
	for i, e := range ents {
		if i > maxSiblings || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(d.Name(), e.Name())
		info, err := e.Info() // lstat: cheap, and enough to skip most
		if err != nil {
			continue
		}
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || want[k].Key != k || info.Size() <= want[k].Offset {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, e.Name())
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		if s := want[k]; !ok || s.Key != k || fi.Size() <= s.Offset {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		if same, err := r.sameGeneration(fi.Size()); err != nil || !same {
			h.Release()
			f.Close()
			continue
		}
		r.inst, r.pos = h.Instance(), h.Resume()
		t.logger().WithFields(logrus.Fields{"rotated": p, "offset": r.pos, "size": fi.Size()}).Info("reading the rest of a file rotated while the agent was down")
		t.handOff(r)
	}
	return len(streams)
}

// recoverSkipped finds files that were rotated away from the path while
// the tailer was not looking (several rotations between two checks, or
// while reading was paused by backpressure): siblings named <base>.*,
// <base>-* or <base>_*, modified since the previous file was opened and
// unknown to the registry. Each is read from its start by a drainer.
func (t *Tailer) recoverSkipped(since time.Time, current registry.Key) {
	if since.IsZero() {
		return // no earlier reading to compare with (first run)
	}
	base := filepath.Base(t.cfg.Path)
	d, ents := t.siblings()
	if d == nil {
		return
	}
	defer d.Close()
	since = since.Add(-time.Second) // file times come from a coarse clock
	for i, e := range ents {
		name := e.Name()
		if i > maxSiblings || !rotatedName(base, name) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(d.Name(), name)
		info, err := e.Info()
		if err != nil || info.ModTime().Before(since) {
			continue
		}
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || k == current || t.reg.Has(k) {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, name)
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		if !ok || k == current || t.reg.Has(k) || fi.ModTime().Before(since) {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		if h.Known() {
			h.Release()
			f.Close()
			continue
		}
		if err := t.startGeneration(r, 0); err != nil {
			h.Release()
			f.Close()
			continue
		}
		t.logger().WithField("rotated", p).Info("reading a file that was rotated away before it was opened")
		t.handOff(r)
	}
}

// rotatedName reports whether name looks like a rotated copy of base
// (base.1, base-20260101, base_old) and is not compressed.
func rotatedName(base, name string) bool {
	if len(name) <= len(base)+1 || !strings.HasPrefix(name, base) {
		return false
	}
	switch name[len(base)] {
	case '.', '-', '_':
	default:
		return false
	}
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z", ".tmp"} {
		if strings.HasSuffix(name, ext) {
			return false
		}
	}
	return true
}

// lastLineStart returns the offset just after the last newline before
// size, looking back at most maxBack bytes; size if there is none.
func lastLineStart(f *os.File, size int64, maxBack int) int64 {
	const block = 64 << 10
	buf := make([]byte, block)
	end := size
	for end > 0 && size-end < int64(maxBack)+1 {
		start := max(end-block, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return size
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1
		}
		end = start
	}
	if end == 0 {
		return 0
	}
	return size
}

// Metrics are the tailers' shared counters.
type Metrics struct {
	Lines       prometheus.Counter
	BytesRead   prometheus.Counter
	Split       prometheus.Counter
	Multiline   prometheus.Counter
	Rotations   prometheus.Counter
	Truncations prometheus.Counter
	OpenErrors  prometheus.Counter
	Files       prometheus.Gauge
	Filtered    prometheus.Counter
}

// NewMetrics creates and registers the tailer metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Lines:       prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_lines_read_total", Help: "Complete lines read from files."}),
		BytesRead:   prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_bytes_read_total", Help: "Bytes read from files."}),
		Split:       prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_line_pieces_split_total", Help: "Pieces sent for lines longer than max_line_bytes."}),
		Multiline:   prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_multiline_events_total", Help: "Events joined from several lines."}),
		Rotations:   prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_rotations_total", Help: "Files rotated away (renamed or removed) while tailed."}),
		Truncations: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_truncations_total", Help: "Files truncated or replaced in place."}),
		OpenErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_file_errors_total", Help: "Failures to open or read a file."}),
		Files:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_files_open", Help: "Files being followed (not counting drains of rotated files)."}),
		Filtered: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_filtered_total",
			Help: "Events dropped by include_lines/exclude_lines (read past, never sent; per file in /status)."}),
	}
	if reg != nil {
		reg.MustRegister(m.Lines, m.BytesRead, m.Split, m.Multiline, m.Rotations, m.Truncations, m.OpenErrors, m.Files, m.Filtered)
	}
	return m
}
