// Package acktrack turns out-of-order acknowledgements into a contiguous
// acknowledged prefix. The agent uses it per file (byte offsets acked by
// Kafka), the transfer per partition (message offsets acked by
// Elasticsearch): a position is only ever recorded as done when everything
// before it is, so a crash can re-send but never skip.
package acktrack

import "sync"

// Acker is told when the item with a given sequence number is done: an
// agent's event durably in Kafka, a transfer's document in
// Elasticsearch (or dead-lettered). A Tracker is one.
type Acker interface {
	Ack(seq uint64)
}

// Tracker tracks one ordered stream. Events are registered in stream order
// with the position just past them; Acked only moves when every event
// before a point is acknowledged. It is safe for concurrent use.
type Tracker struct {
	mu    sync.Mutex
	acked int64 // every byte before acked is in Kafka (or carried no event)
	read  int64 // end of the last registered event: where reading resumes
	head  uint64
	n     int
	ring  []pending // len is a power of two; seq s lives at ring[s&mask]
	dead  bool      // the stream was replaced; late acks are ignored
}

type pending struct {
	end  int64
	done bool
}

// New returns a tracker whose acked prefix starts at offset.
func New(offset int64) *Tracker {
	return &Tracker{acked: offset, read: offset}
}

// minRing is the ring a tracker allocates at its first event. A tracker
// with nothing in flight may have none (a new one, or one given back by
// Shrink): an agent tailing a thousand idle files keeps no ring for them.
const minRing = 64

// Shrink gives back the ring once nothing is in flight: a file that was
// busy once and is idle now holds no more than a new one.
func (t *Tracker) Shrink() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.ring = nil // no entry lives: the next Emit allocates
	}
}

// Emit registers an event that ends at end and returns its sequence
// number. done marks a span that produces no event (it counts as acked as
// soon as everything before it is).
func (t *Tracker) Emit(end int64, done bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == len(t.ring) {
		t.grow()
	}
	seq := t.head + uint64(t.n)
	t.ring[seq&uint64(len(t.ring)-1)] = pending{end: end, done: done}
	t.n++
	t.read = end
	if done {
		t.advance()
	}
	return seq
}

// EmitBatch registers several spans at once (one lock) and returns the
// sequence number of the first; span i gets first+i. done[i] marks a span
// without an event, as in Emit.
func (t *Tracker) EmitBatch(ends []int64, done []bool) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	first := t.head + uint64(t.n)
	for i, end := range ends {
		if t.n == len(t.ring) {
			t.grow()
		}
		seq := t.head + uint64(t.n)
		t.ring[seq&uint64(len(t.ring)-1)] = pending{end: end, done: done[i]}
		t.n++
		t.read = end
	}
	t.advance()
	return first
}

// AckBatch is Ack for several sequence numbers under one lock.
func (t *Tracker) AckBatch(seqs []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead {
		return
	}
	mask := uint64(len(t.ring) - 1)
	for _, seq := range seqs {
		if seq >= t.head && seq < t.head+uint64(t.n) {
			t.ring[seq&mask].done = true
		}
	}
	t.advance()
}

// grow doubles the ring (or allocates the first). Caller holds mu.
func (t *Tracker) grow() {
	nr := make([]pending, max(2*len(t.ring), minRing))
	om, nm := uint64(len(t.ring)-1), uint64(len(nr)-1)
	for i := 0; i < t.n; i++ {
		s := t.head + uint64(i)
		nr[s&nm] = t.ring[s&om]
	}
	t.ring = nr
}

// Ack marks event seq as durable. Duplicate and stale acks are ignored.
func (t *Tracker) Ack(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dead || seq < t.head || seq >= t.head+uint64(t.n) {
		return
	}
	t.ring[seq&uint64(len(t.ring)-1)].done = true
	if seq == t.head {
		t.advance()
	}
}

// advance pops acknowledged events from the head. Caller holds mu.
func (t *Tracker) advance() {
	mask := uint64(len(t.ring) - 1)
	for t.n > 0 && t.ring[t.head&mask].done {
		t.acked = t.ring[t.head&mask].end
		t.head++
		t.n--
	}
	// Give memory back after a burst (e.g. a long Kafka outage).
	if t.n == 0 && len(t.ring) > 4096 {
		t.ring = nil
	}
}

// State returns the acked prefix, the end of the last registered event
// (where reading resumes) and the number of events in flight.
func (t *Tracker) State() (acked, read int64, inflight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked, t.read, t.n
}

// Kill makes the tracker ignore further acks (its stream was replaced,
// e.g. a truncated file).
func (t *Tracker) Kill() {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
}

// Retract removes event seq and every event registered after it: they
// could not be handed on (the sender was stopping), so the resume position
// must not skip them. A seq already popped (a batch that began with blank
// lines, which count as done at once) drops every pending event, all of
// which came after it; a seq not yet issued is ignored.
func (t *Tracker) Retract(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || seq >= t.head+uint64(t.n) {
		return
	}
	seq = max(seq, t.head)
	t.n = int(seq - t.head)
	if t.n == 0 {
		t.read = t.acked
	} else {
		t.read = t.ring[(seq-1)&uint64(len(t.ring)-1)].end
	}
}
