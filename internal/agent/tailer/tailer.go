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
//
// By job: tailer.go is the run loop (open, position, follow, step);
// reader.go reads a file into batches; rotation.go finds what a rotation
// or a truncation left behind; drain.go reads files let go of to their
// end; idle.go spaces out the looks at a quiet file; multiline.go joins
// events; notify.go wakes tailers on file-system events.
package tailer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
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
			t.recoverSkipped(t.reg.FollowedSince(t.cfg.Path), registry.Key{})
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
	since := t.reg.FollowedSince(t.cfg.Path) // before this claim counts
	if t.staleEntry(key, f) {
		// Another path's stream, whose file was deleted and whose inode
		// number f took: f is new, and that path may still need the
		// stream (to find its copytruncate copy).
		if t.reg.SetAside(key, t.cfg.Path) {
			t.logger().WithField("was", key.String()).Info("this file took the inode number of another path's deleted file; reading it as new")
		}
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
				t.recoverSkipped(since, key)
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
	// Nothing new by size, but the file may have been truncated and
	// written again to exactly where reading is (the agentsim found a
	// long line written again after a truncation never read). Its
	// modification time cannot tell: it ticks at the kernel's coarse
	// clock, so a truncation soon after the last read keeps it. The
	// leading bytes tell, for one pread of at most a KiB per look.
	if same, err := r.unchanged(); err != nil {
		return stepFailed, err
	} else if !same {
		if err := t.truncated(r); err != nil {
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
