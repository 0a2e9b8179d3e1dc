package registry

import "sync"

// tracker turns out-of-order acknowledgements into the contiguous acked
// prefix of one file generation. Events are registered in file order with
// the offset just past them; acked only moves when every event before a
// point is acknowledged, so a crash can only ever re-send, never skip.
type tracker struct {
	mu    sync.Mutex
	acked int64 // every byte before acked is in Kafka (or carried no event)
	read  int64 // end of the last registered event: where reading resumes
	head  uint64
	n     int
	ring  []pending // len is a power of two; seq s lives at ring[s&mask]
	dead  bool      // the generation was replaced; late acks are ignored
}

type pending struct {
	end  int64
	done bool
}

func newTracker(offset int64) *tracker {
	return &tracker{acked: offset, read: offset, ring: make([]pending, 64)}
}

// emit registers an event that ends at end and returns its sequence
// number. done marks bytes that produce no event (they count as acked as
// soon as everything before them is).
func (t *tracker) emit(end int64, done bool) uint64 {
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

// grow doubles the ring. Caller holds mu.
func (t *tracker) grow() {
	nr := make([]pending, 2*len(t.ring))
	om, nm := uint64(len(t.ring)-1), uint64(len(nr)-1)
	for i := 0; i < t.n; i++ {
		s := t.head + uint64(i)
		nr[s&nm] = t.ring[s&om]
	}
	t.ring = nr
}

// Ack marks event seq as durable. Duplicate and stale acks are ignored.
func (t *tracker) Ack(seq uint64) {
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
func (t *tracker) advance() {
	mask := uint64(len(t.ring) - 1)
	for t.n > 0 && t.ring[t.head&mask].done {
		t.acked = t.ring[t.head&mask].end
		t.head++
		t.n--
	}
	// Give memory back after a burst (e.g. a long Kafka outage).
	if t.n == 0 && len(t.ring) > 4096 {
		t.ring = make([]pending, 64)
	}
}

// state returns the acked offset, the resume offset and the number of
// events in flight.
func (t *tracker) state() (acked, read int64, inflight int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.acked, t.read, t.n
}

// kill detaches the tracker from its file after a truncation.
func (t *tracker) kill() {
	t.mu.Lock()
	t.dead = true
	t.mu.Unlock()
}

// retract removes the last registered event, which the tailer could not
// hand over (it was stopping), so the resume offset does not skip it.
func (t *tracker) retract(seq uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 || seq != t.head+uint64(t.n)-1 {
		return
	}
	t.n--
	if t.n == 0 {
		t.read = t.acked
	} else {
		t.read = t.ring[(seq-1)&uint64(len(t.ring)-1)].end
	}
}
