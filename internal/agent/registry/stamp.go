package registry

// Index-time stamps.
//
// The transfer picks a line's index (e.g. topic-2026.12.01) from a time.
// The read time will not do: a line re-sent after a restart is read again,
// later, and across midnight it would land in a second index, where its
// _id does not collide with the first copy. So every event also carries a
// stamp, the time that picks its index, and the registry makes stamps
// reproducible: whatever is re-read after a crash gets the stamp it was
// first sent with.
//
// A stream's stamps are epochs: epoch i gives every event starting at or
// after from_i (and before from_i+1) the time t_i. The registry also
// records a limit: no event starting at or beyond it has been sent. Both
// are written with the registry, and an event is only sent once the epoch
// that stamps it and a limit above it are on disk. After a crash the
// events below the saved limit are stamped from the saved epochs, exactly
// as before; beyond the limit nothing was sent, so anything goes.
//
// In steady state nothing waits: each save (every second) raises an active
// stream's limit to two seconds of its traffic (at its rate since the last
// save) past what it has read and starts a fresh epoch at the old limit,
// which the stream reaches about a second later, so stamps trail read
// times by one to two seconds. A slow stream (its limit more than four
// seconds of its traffic ahead) gets
// its fresh epoch where its unsent events begin instead; a line it reads
// while that save is being written waits for it. A stream that outruns its
// limit, or wakes up after being idle (its epoch is older than
// stampMaxLag), asks for a save and waits for it; such saves are at least
// stampSaveGap apart, so many waking streams share one.
// When the registry cannot be written the events are sent anyway, stamped
// as well as memory allows, and counted (logagent_stamps_unsaved_total):
// a crash then may re-stamp them.

import (
	"context"
	"time"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/acktrack"
)

const (
	// stampMaxLag is how old an epoch may be to stamp events nobody has
	// sent yet (events already sent keep theirs, however old).
	stampMaxLag = 5 * time.Second
	// stampMinAhead is the least a limit is raised by.
	stampMinAhead = 64 << 10
	// unsnapshotted marks a pending epoch or limit no save has taken yet.
	unsnapshotted = ^uint64(0)
	// stampDegradedFor is how long after a failed save events are sent
	// without waiting for the registry.
	stampDegradedFor = time.Second
	// stampSaveGap is the least time between saves streams ask for.
	stampSaveGap = 50 * time.Millisecond
	// stampAheadFor is how much of an active stream's traffic a save
	// raises its limit by: two periodic saves' worth, so that one a little
	// late does not make the stream wait.
	stampAheadFor = 2 * time.Second
)

type epoch struct {
	from int64
	t    time.Time
	// gen is 0 once the epoch is on disk; before, the generation of the
	// snapshot that carries it (unsnapshotted until one does).
	gen uint64
}

// stamps is one stream's stamping state; guarded by Registry.mu.
type stamps struct {
	epochs []epoch // ascending from
	limit  int64   // on disk: nothing starting at or beyond it was sent
	// plimit is a higher limit not yet on disk (0: none), carried by the
	// snapshot pgen.
	plimit int64
	pgen   uint64
	// limitSnap is the limit snapshot limitGen wrote.
	limitSnap int64
	limitGen  uint64
	// floor is the limit loaded from disk: events below it may have been
	// sent by an earlier run, so their epochs are never replaced.
	floor  int64
	hw     int64     // highest end of the events stamped in this process
	snapHW int64     // hw when the last snapshot was taken
	snapAt time.Time // when that snapshot found the stream active
}

// cover returns the epoch covering offset o (nil if none). With durable,
// pending epochs are skipped.
func (st *stamps) cover(o int64, durable bool) *epoch {
	for i := len(st.epochs) - 1; i >= 0; i-- {
		e := &st.epochs[i]
		if e.from <= o && (!durable || e.gen == 0) {
			return e
		}
	}
	return nil
}

// ground is where events nobody has sent begin.
func (st *stamps) ground() int64 { return max(st.hw, st.floor) }

// assign stamps evs from epochs on disk; it reports false (and where the
// first event it could not stamp starts) when one needs a save first.
// degraded stamps every event from memory instead.
func (st *stamps) assign(evs []event.Event, now time.Time, degraded bool) (bool, int64) {
	ground := st.ground()
	for i := range evs {
		o := evs[i].Offset
		if degraded {
			if e := st.cover(o, true); e != nil {
				evs[i].Stamp = e.t
			} else {
				evs[i].Stamp = now
			}
			continue
		}
		e := st.cover(o, false)
		switch {
		case o >= st.limit, e == nil, e.gen != 0:
			return false, o
		case o >= ground && now.Sub(e.t) > stampMaxLag:
			return false, o // idle for a while: a fresh epoch
		}
		evs[i].Stamp = e.t
	}
	return true, 0
}

// request asks for what assign lacked for a batch ending at end whose
// first unstamped event starts at o: a fresh epoch where unsent events
// begin (if o has none, or only a stale one), and a limit above the batch.
func (st *stamps) request(o, end int64, now time.Time) {
	ground := st.ground()
	if e := st.cover(o, false); e == nil || e.gen == 0 && o >= ground && now.Sub(e.t) > stampMaxLag {
		st.startEpoch(min(o, ground), now, unsnapshotted) // below ground only with no epoch at all
	}
	if want := end + st.ahead(now); o >= st.limit && want > st.plimit {
		st.plimit, st.pgen = want, unsnapshotted
	}
}

// startEpoch replaces the epochs at or after from (no event was stamped
// from them) with one starting there.
func (st *stamps) startEpoch(from int64, t time.Time, gen uint64) {
	keep := st.epochs[:0]
	for _, e := range st.epochs {
		if e.from < from {
			keep = append(keep, e)
		}
	}
	st.epochs = append(keep, epoch{from: from, t: t.Truncate(time.Millisecond), gen: gen})
}

// ahead is how far a limit is raised at now: stampAheadFor of the
// stream's bytes at the rate it sent them since the last snapshot that
// found it active, at least stampMinAhead. A rate, not the bytes since
// that snapshot: a periodic save just after one the stream asked for
// would otherwise raise the limit by only the bytes in between, and the
// stream would ask, and wait for an fsync, every stampSaveGap.
func (st *stamps) ahead(now time.Time) int64 { return max(stampMinAhead, st.traffic(now)) }

// traffic is stampAheadFor of the stream's bytes at the rate it sent them
// since the last snapshot that found it active (before any: what it sent).
func (st *stamps) traffic(now time.Time) int64 {
	sent := st.hw - st.snapHW
	if st.snapAt.IsZero() {
		return sent
	}
	el := max(now.Sub(st.snapAt), stampSaveGap)
	return int64(float64(sent) * float64(stampAheadFor) / float64(el))
}

// snapshotted is called for each stream as snapshot g takes it (with
// Registry.mu held): an active stream gets a higher limit and a fresh
// epoch at its old limit, and what is pending joins the snapshot. It
// returns the epochs and limit to write.
func (st *stamps) snapshotted(g uint64, now time.Time, acked int64) ([]diskStamp, int64) {
	if st.hw > st.snapHW {
		old := st.limit
		want := max(old, st.hw+st.ahead(now))
		if want > max(st.limit, st.plimit) || st.pgen == unsnapshotted {
			st.plimit, st.pgen = max(want, st.plimit), unsnapshotted
		}
		from := max(old, st.ground())
		if slow := old-st.ground() > 2*st.traffic(now); slow {
			from = st.ground() // its next lines would be stamped from an aging epoch
		}
		if now.Sub(st.tAt(from)) >= time.Second {
			st.startEpoch(from, now, unsnapshotted)
		}
		st.snapHW, st.snapAt = st.hw, now
	}
	if st.pgen == unsnapshotted {
		st.pgen = g
	}
	limit := max(st.limit, st.plimit)
	st.limitSnap, st.limitGen = limit, g
	// Epochs wholly below the acked offset stamp nothing that can be
	// re-read.
	for len(st.epochs) > 1 && st.epochs[1].from <= acked && st.epochs[1].gen == 0 {
		st.epochs = st.epochs[1:]
	}
	out := make([]diskStamp, len(st.epochs))
	for i := range st.epochs {
		if st.epochs[i].gen == unsnapshotted {
			st.epochs[i].gen = g
		}
		if st.epochs[i].t.IsZero() { // a new generation's: dated by its save
			st.epochs[i].t = now.Truncate(time.Millisecond)
		}
		out[i] = diskStamp{From: st.epochs[i].from, T: st.epochs[i].t.UnixMilli()}
	}
	return out, limit
}

// tAt is the time of the epoch covering o (zero if none).
func (st *stamps) tAt(o int64) time.Time {
	if e := st.cover(o, false); e != nil {
		return e.t
	}
	return time.Time{}
}

// saved applies the outcome of snapshot g: on success what it carried is
// on disk; on failure it is dropped (no event was stamped from it).
func (st *stamps) saved(g uint64, ok bool) {
	keep := st.epochs[:0]
	for _, e := range st.epochs {
		switch {
		case e.gen == 0 || e.gen == unsnapshotted || e.gen > g:
		case ok:
			e.gen = 0
		default:
			continue
		}
		keep = append(keep, e)
	}
	st.epochs = keep
	if ok && st.limitGen == g {
		st.limit = max(st.limit, st.limitSnap)
	}
	if st.pgen != unsnapshotted && st.pgen <= g {
		st.plimit, st.pgen = 0, 0
	}
}

// sum hashes what snapshot writes of the stamps, and whether the stream
// was active since the last snapshot (a snapshot then raises its limit).
func (st *stamps) sum() uint64 {
	h := uint64(st.limit)*31 + uint64(st.plimit)*17 + uint64(len(st.epochs))
	if n := len(st.epochs); n > 0 {
		e := st.epochs[n-1]
		h = h*31 + uint64(e.from)*7 + uint64(e.t.UnixMilli())
	}
	if st.hw > st.snapHW {
		h++
	}
	return h
}

// clone copies st (its epochs are shared otherwise).
func (st stamps) clone() stamps {
	st.epochs = append([]epoch(nil), st.epochs...)
	return st
}

// diskStamp is an epoch as the registry file holds it (t in Unix ms).
type diskStamp struct {
	From int64 `json:"from"`
	T    int64 `json:"t"`
}

// restore loads a stream's stamps from disk.
func restoreStamps(ds []diskStamp, limit int64) stamps {
	st := stamps{limit: limit, floor: limit}
	for _, d := range ds {
		st.epochs = append(st.epochs, epoch{from: d.From, t: time.UnixMilli(d.T).UTC()})
	}
	return st
}

// Stamp gives each event of a batch (ascending offsets, the last ending at
// end) its index time, read at now. It returns once the epochs stamping
// them and a limit above them are on disk, saving the registry itself if
// they are not (an idle stream waking up, or a burst past the limit). If
// the registry cannot be written, or ctx ends, the events are stamped from
// memory and counted.
func (h *Handle) Stamp(ctx context.Context, evs []event.Event, end int64, now time.Time) {
	r, s := h.r, h.s
	for attempt := 0; ; attempt++ {
		r.mu.Lock()
		stopping := ctx.Err() != nil // the batch will be refused: no need to wait
		degraded := attempt >= 3 || stopping || time.Now().Before(r.stampDegradedUntil)
		ok, o := s.st.assign(evs, now, false)
		if !ok && degraded {
			s.st.assign(evs, now, true)
			if !stopping {
				r.stampsUnsaved.Add(float64(len(evs)))
			}
			ok = true
		}
		if ok {
			s.st.hw = max(s.st.hw, end)
			r.mu.Unlock()
			return
		}
		s.st.request(o, end, now)
		r.mu.Unlock()
		r.saveStamps()
	}
}

// Register is what a reader does with a batch it read, in one visit:
// Stamp its events (if any; the last of ends is where they end) and
// register its spans with the stream's tracker (see EmitBatch). It
// returns the acker and the first sequence number.
func (h *Handle) Register(ctx context.Context, evs []event.Event, ends []int64, done []bool, now time.Time) (acktrack.Acker, uint64) {
	if len(evs) > 0 {
		h.Stamp(ctx, evs, ends[len(ends)-1], now)
	}
	return h.EmitBatch(ends, done)
}

// SetClock sets the clock new stamp epochs are taken from (tests: the
// tailers' clock); time.Now by default.
func (r *Registry) SetClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
}

// saveStamps saves the registry if a stream waits for stamps no save has
// taken yet (a save that finished while this one waited may have).
func (r *Registry) saveStamps() {
	if r.onStampWait != nil {
		r.onStampWait()
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	want := false
	for _, s := range r.files {
		if s.st.pgen == unsnapshotted || len(s.st.epochs) > 0 && s.st.epochs[len(s.st.epochs)-1].gen == unsnapshotted {
			want = true
			break
		}
	}
	r.mu.Unlock()
	if want {
		if d := stampSaveGap - time.Since(r.lastStampSave); d > 0 {
			time.Sleep(d) // holding saveMu: streams asking meanwhile share this save
		}
		r.lastStampSave = time.Now()
		r.hasSaved, r.lastSum = false, 0
		if err := r.saveLocked(); err != nil {
			r.log.WithError(err).Warn("saving registry for index-time stamps; sending without waiting for a while")
		}
	}
}
