package tailer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/contract/record"
)

const (
	// fpMax is how many leading bytes identify a file generation.
	fpMax = 1024
	// maxChunk bounds one read. A read is sized to what the file has, so
	// a line written alone pins only its own bytes until it is acked.
	maxChunk = 256 << 10
)

// reader reads one open file generation: it splits lines, cuts long ones,
// joins multiline events and hands events to the sink. It is not safe for
// concurrent use; the tailer owns it, then possibly a drainer.
type reader struct {
	t    *Tailer
	f    *os.File
	key  registry.Key
	h    *registry.Handle
	inst record.Instance
	pos  int64 // file offset of the next byte to read
	// carry is the partial line read before pos; it starts at
	// pos-len(carry). carrySplit says earlier pieces of it were sent.
	carry      []byte
	carrySplit bool
	ml         *joiner
	// batch collects events until the end of a read (or maxBatch), then
	// goes to the sink in one Send.
	batch    *event.Batch
	ends     []int64 // end offset of every span read since the last flush
	dones    []bool  // whether the span has no event (blank line)
	batchCap int     // estimated events in the current read
	fpBuf    []byte  // for unchanged
	// pinned is the memory held by the events since the last flush: the
	// read chunks they point into, or the joined values of multiline
	// events (copies). It is what the batch costs against buffer_bytes.
	pinned int
	// lastRead is when the file last had something to read.
	lastRead time.Time
	// ctx, if set, is what sends wait on instead of the tailer's (a
	// drainer's, which may outlive it).
	ctx context.Context
	// since is when this generation was last known to be read in full
	// up to where reading resumes: siblings modified later and unknown
	// to the registry were rotated away unseen.
	since time.Time
}

// maxBatch bounds the events handed to the sink at once.
const maxBatch = 1024

// fileKey returns the identity of an open file.
func fileKey(fi os.FileInfo, topic string) (registry.Key, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return registry.Key{}, false
	}
	return registry.Key{Dev: uint64(st.Dev), Ino: st.Ino, Topic: topic}, true
}

// fingerprint hashes the first n bytes of f.
func fingerprint(f *os.File, n int) (uint64, error) {
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF)) {
		return 0, err
	} else if err != nil {
		return 0, errShort
	}
	h := fnv.New64a()
	h.Write(buf)
	return h.Sum64(), nil
}

var errShort = errors.New("file shorter than its fingerprint")

// sameGeneration reports whether the file still starts with the bytes the
// registry fingerprinted, and extends the fingerprint if the file has grown
// past it.
func (r *reader) sameGeneration(size int64) (bool, error) {
	n, fp := r.h.Fingerprint()
	if int64(n) > size {
		return false, nil
	}
	if n > 0 {
		got, err := fingerprint(r.f, n)
		if errors.Is(err, errShort) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if got != fp {
			return false, nil
		}
	}
	if n < fpMax && size > int64(n) {
		m := int(min(size, fpMax))
		got, err := fingerprint(r.f, m)
		if err == nil {
			r.h.SetFingerprint(m, got)
		}
	}
	return true, nil
}

// unchanged reports whether the file still starts with the fingerprinted
// bytes (without extending the fingerprint, unlike sameGeneration).
func (r *reader) unchanged() (bool, error) {
	n, fp := r.h.Fingerprint()
	if n == 0 {
		return true, nil
	}
	if cap(r.fpBuf) < n {
		r.fpBuf = make([]byte, fpMax)
	}
	buf := r.fpBuf[:n]
	m, err := r.f.ReadAt(buf, 0)
	if m < n {
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("reading %s: %w", r.t.cfg.Path, err)
		}
		return false, nil
	}
	h := fnv.New64a()
	h.Write(buf)
	return h.Sum64() == fp, nil
}

// readAvailable reads until pos reaches size (or ctx ends). The caller has
// just checked that the file is still this generation; every later chunk
// is checked again after it is read, because handing the previous one on
// may have blocked (Kafka down, backlog) long enough for a copytruncate:
// a chunk read after the file was truncated and refilled is new content at
// old offsets, so it is dropped unread and the caller handles the
// truncation from the current position.
func (r *reader) readAvailable(ctx context.Context, size int64) error {
	for first := true; r.pos < size; first = false {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		want := min(size-r.pos, maxChunk)
		chunk := make([]byte, len(r.carry)+int(want))
		copy(chunk, r.carry)
		n, err := r.f.ReadAt(chunk[len(r.carry):], r.pos)
		if n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("reading %s: %w", r.t.cfg.Path, err)
			}
			return nil // shrank under us; the caller re-checks
		}
		if !first {
			same, err := r.unchanged()
			if err != nil {
				return err
			}
			if !same {
				return nil // rewritten under us; the caller re-checks
			}
		}
		r.t.m.BytesRead.Add(float64(n))
		if r.ml == nil {
			r.pinned += len(chunk) // events point into it until acked
		}
		r.batchCap = min(maxBatch, n/r.avgLine()+1)
		data := chunk[:len(r.carry)+n]
		base := r.pos - int64(len(r.carry))
		r.pos += int64(n)
		r.lastRead = r.t.now()
		if err := r.process(data, base, r.lastRead); err != nil {
			return err
		}
		if err := r.flush(); err != nil {
			return err
		}
	}
	return nil
}

// avgLine guesses the line length of this file for sizing batches.
func (r *reader) avgLine() int {
	if r.ml != nil {
		return 256
	}
	return 128
}

// process splits data (file bytes from base) into lines; the unterminated
// tail becomes the carry.
func (r *reader) process(data []byte, base int64, now time.Time) error {
	i := 0
	for {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			break
		}
		if err := r.line(data[i:i+j], base+int64(i), base+int64(i+j+1), now); err != nil {
			return err // the reader is abandoned; its successor resumes at the registry's offset
		}
		r.carrySplit = false
		i += j + 1
	}
	rest := data[i:]
	max := r.t.cfg.MaxLineBytes
	for len(rest) > max {
		cut := runeCut(rest, max)
		if err := r.piece(rest[:cut], base+int64(i), base+int64(i+cut), now); err != nil {
			return err
		}
		r.carrySplit = true
		i += cut
		rest = rest[cut:]
	}
	// The carry must not point into the chunk: a slice of it, even an
	// empty one, keeps the whole chunk (up to maxChunk) alive for as long
	// as the file stays idle, long after its lines were acknowledged.
	if len(rest) == 0 {
		r.carry = nil
	} else {
		r.carry = append([]byte(nil), rest...)
	}
	return nil
}

// line handles one complete line [start, end) where end includes "\n".
func (r *reader) line(b []byte, start, end int64, now time.Time) error {
	r.t.m.Lines.Inc()
	max := r.t.cfg.MaxLineBytes
	if len(b) > max || r.carrySplit {
		// Long line: pieces of at most max bytes, each marked.
		for len(b) > max {
			cut := runeCut(b, max)
			if err := r.piece(b[:cut], start, start+int64(cut), now); err != nil {
				return err
			}
			r.carrySplit = true
			b = b[cut:]
			start += int64(cut)
		}
		return r.piece(trimCR(b), start, end, now)
	}
	b = trimCR(b)
	if r.ml != nil {
		return r.ml.add(b, start, end, now, r.emitter(now))
	}
	return r.emit(b, start, end, 0, now)
}

// piece sends one piece of a split line, after any pending multiline event.
func (r *reader) piece(b []byte, start, end int64, now time.Time) error {
	r.t.m.Split.Inc()
	if r.ml != nil {
		if err := r.ml.flush(r.emitter(now)); err != nil {
			return err
		}
	}
	return r.emit(b, start, end, record.Split, now)
}

// emitter is the joiner's way out; its values are its own buffers.
func (r *reader) emitter(now time.Time) emitFunc {
	return func(val []byte, start, end int64, f record.Flags) error {
		r.pinned += cap(val)
		return r.emit(val, start, end, f, now)
	}
}

// emit adds an event for file bytes [start, end) to the batch; a full
// batch goes to the sink. An empty line produces no event but its bytes
// still count as done.
func (r *reader) emit(val []byte, start, end int64, f record.Flags, now time.Time) error {
	if len(val) > 0 && r.t.cfg.Keep != nil && !r.t.cfg.Keep(val) {
		r.t.filtered.Add(1)
		r.t.m.Filtered.Inc()
		val = nil // read past like a blank line: done, never sent
	}
	if len(val) == 0 {
		r.ends = append(r.ends, end)
		r.dones = append(r.dones, true)
		return nil
	}
	if r.batch == nil {
		r.batch = r.t.newBatch(r.batchCap)
	}
	r.batch.Events = append(r.batch.Events, event.Event{
		Source:   r.t.cfg.Source,
		Value:    val,
		Offset:   start,
		Instance: r.inst,
		Flags:    f,
		Time:     now,
		Seq:      uint64(len(r.ends)), // position; made absolute at flush
	})
	r.ends = append(r.ends, end)
	r.dones = append(r.dones, false)
	if r.ml != nil && f&record.Multiline == 0 && f&record.Split != 0 {
		r.pinned += len(val) // a piece points into the chunk
	}
	if f&record.Multiline != 0 {
		r.t.m.Multiline.Inc()
	}
	if len(r.batch.Events) >= maxBatch {
		return r.flush()
	}
	return nil
}

// newBatch returns an empty batch for about n events. Full-size batches
// come back from the producer when acknowledged and are reused: at full
// speed their events are a large part of what the agent allocates.
func (t *Tailer) newBatch(n int) *event.Batch {
	if n < maxBatch {
		return &event.Batch{Events: make([]event.Event, 0, n)}
	}
	if b, ok := t.batches.Get().(*event.Batch); ok {
		return b
	}
	return &event.Batch{Events: make([]event.Event, 0, maxBatch), Done: t.recycle}
}

// recycle takes back an acknowledged full-size batch, clearing what its
// events point to so that the pool pins no read buffer.
func (t *Tailer) recycle(b *event.Batch) {
	clear(b.Events)
	b.Events, b.Bytes = b.Events[:0], 0
	t.batches.Put(b)
}

// flush registers what was read with the registry (in one call) and hands
// the batch to the sink. If the sink refuses (the tailer is stopping), the
// batch is retracted from the registry so that whoever resumes the file
// reads it again. Until flush, nothing read counts as read.
func (r *reader) flush() error {
	if len(r.ends) == 0 {
		return nil
	}
	ctx := r.t.ctx
	if r.ctx != nil {
		ctx = r.ctx // a drainer's
	}
	// Index-time stamps (reproducible after a crash; this may wait for a
	// registry save, an idle file waking up) and the spans read, in one
	// visit to the registry.
	var evs []event.Event
	var now time.Time
	if b := r.batch; b != nil {
		evs, now = b.Events, b.Events[len(b.Events)-1].Time
	}
	acker, first := r.h.Register(ctx, evs, r.ends, r.dones, now)
	r.ends, r.dones = r.ends[:0], r.dones[:0]
	b := r.batch
	r.batch = nil
	pinned := r.pinned
	r.pinned = 0
	if b == nil {
		return nil // only blank lines
	}
	b.Bytes = pinned
	for i := range b.Events {
		b.Events[i].Acker = acker
		b.Events[i].Seq += first
	}
	if err := r.t.sink.Send(ctx, b); err != nil {
		r.h.Retract(first)
		return err
	}
	return nil
}

// discard drops what was read but not flushed (the reader is being
// abandoned; it was never registered, so a successor reads it again).
func (r *reader) discard() {
	r.batch, r.pinned = nil, 0
	r.ends, r.dones = r.ends[:0], r.dones[:0]
}

// rest gives back what a burst grew, once the file has been idle a while:
// the span lists, and the ack tracker's ring.
func (r *reader) rest() {
	if len(r.ends) == 0 && cap(r.ends) > 64 {
		r.ends, r.dones = nil, nil
	}
	r.h.Shrink()
}

// finish sends what is left of a file that will not grow any more: the
// pending multiline event and an unterminated last line.
func (r *reader) finish(now time.Time) error {
	if len(r.carry) > 0 {
		start := r.pos - int64(len(r.carry))
		r.pinned += cap(r.carry) // the event points into the carry's own copy
		if err := r.line(r.carry, start, r.pos, now); err != nil {
			return err
		}
		r.carry = nil
	}
	if r.ml != nil {
		if err := r.ml.flush(r.emitter(now)); err != nil {
			return err
		}
	}
	return r.flush()
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// runeCut returns a cut point ≤ max that does not split a UTF-8 sequence
// (unless the bytes are not UTF-8 anyway). len(b) > max.
func runeCut(b []byte, max int) int {
	for cut := max; cut > max-utf8.UTFMax && cut > 0; cut-- {
		if utf8.RuneStart(b[cut]) {
			return cut
		}
	}
	return max
}
