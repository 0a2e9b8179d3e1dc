package agentsim

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/producer"
	"github.com/logpipe/logpipe/internal/contract/acktrack"
)

// meter stands between the tailers and the producer and measures, from
// outside the producer's own accounting, what the batches it admitted pin
// until their last acknowledgement: the memory behind their values (every
// read buffer or joined copy once, found by where its memory ends) and
// their events. The bound is buffer_bytes and chan_max_size; a batch
// larger than a bound on its own is admitted when nothing else is in
// flight, so the bound holds whenever more than one batch is.
type meter struct {
	prod              *producer.Producer
	maxBytes, maxEvts int64

	mu      sync.Mutex
	flights map[*event.Batch]*flight
	// arrays are the backing arrays the admitted batches' values are in,
	// by where they end: one read buffer can be behind several batches.
	arrays        map[uintptr]*array
	bytes, events int64
	n             int   // batches admitted and not done
	peak          int64 // most bytes seen in flight with more than one batch
	errs          []string
	stopping      bool
}

type flight struct {
	ends           map[uintptr]int // backing arrays: end -> bytes seen
	events         int64
	admitted, done bool
	landed         bool // out of flight: every event acknowledged, or done
	orig           func(*event.Batch)
	// acked counts the batch's events acknowledged (their Ackers are
	// wrapped): Done before all of them is a batch handed back for reuse
	// while a re-send may still read it.
	acked  []bool
	nAcked int
	ackers []acktrack.Acker
}

// evAck stands for one of a batch's Ackers (one per stream) as the meter
// hands it to the producer: it counts the events acknowledged, by their
// sequence numbers, and passes the acknowledgements on as they came (one
// by one or several at once).
type evAck struct {
	m    *meter
	f    *flight
	orig acktrack.Acker
	idx  map[uint64]int // seq -> event
}

func (a *evAck) Ack(seq uint64) {
	a.count(seq)
	a.orig.Ack(seq)
}

// AckBatch is the producer's batchAcker, passed on as such if the
// stream's own Acker is one.
func (a *evAck) AckBatch(seqs []uint64) {
	for _, s := range seqs {
		a.count(s)
	}
	if b, ok := a.orig.(interface{ AckBatch([]uint64) }); ok {
		b.AckBatch(seqs)
		return
	}
	for _, s := range seqs {
		a.orig.Ack(s)
	}
}

func (a *evAck) count(seq uint64) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	if i, ok := a.idx[seq]; ok && !a.f.acked[i] {
		a.f.acked[i] = true
		if a.f.nAcked++; a.f.nAcked == len(a.f.acked) {
			a.m.land(a.f)
		}
	}
}

type array struct{ size, refs int }

func newMeter(p *producer.Producer, maxBytes, maxEvents int64) *meter {
	return &meter{prod: p, maxBytes: maxBytes, maxEvts: maxEvents, flights: map[*event.Batch]*flight{}, arrays: map[uintptr]*array{}}
}

// Send hands b to the producer and, once the producer took it, counts it
// in flight until its Done.
func (m *meter) Send(ctx context.Context, b *event.Batch) error {
	f := &flight{ends: pinned(b), events: int64(len(b.Events)), orig: b.Done,
		acked: make([]bool, len(b.Events)), ackers: make([]acktrack.Acker, len(b.Events))}
	m.mu.Lock()
	m.flights[b] = f
	b.Done = m.done
	wraps := map[acktrack.Acker]*evAck{}
	for i := range b.Events {
		orig := b.Events[i].Acker
		f.ackers[i] = orig
		if orig == nil {
			f.acked[i] = true
			f.nAcked++
			continue
		}
		a := wraps[orig]
		if a == nil {
			a = &evAck{m: m, f: f, orig: orig, idx: map[uint64]int{}}
			wraps[orig] = a
		}
		a.idx[b.Events[i].Seq] = i
		b.Events[i].Acker = a
	}
	m.mu.Unlock()
	err := m.prod.Send(ctx, b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.flights, b)
		m.unwrap(b, f)
		return err
	}
	if f.done || f.landed {
		return nil // acknowledged before Send returned
	}
	f.admitted = true
	m.n++
	for end, size := range f.ends {
		a := m.arrays[end]
		if a == nil {
			a = &array{}
			m.arrays[end] = a
		}
		if size > a.size {
			m.bytes += int64(size - a.size)
			a.size = size
		}
		a.refs++
	}
	m.events += f.events
	if m.n > 1 {
		m.peak = max(m.peak, m.bytes)
		if m.bytes > m.maxBytes || m.events > m.maxEvts {
			m.failf("%d batches in flight pin %d bytes of values in %d events: more than buffer_bytes (%d) or chan_max_size (%d)",
				m.n, m.bytes, m.events, m.maxBytes, m.maxEvts)
		}
	}
	return nil
}

func (m *meter) done(b *event.Batch) {
	m.mu.Lock()
	f := m.flights[b]
	delete(m.flights, b)
	if f == nil {
		m.failf("a batch was acknowledged twice, or never sent")
		m.mu.Unlock()
		return
	}
	f.done = true
	if f.nAcked < len(f.acked) && !m.stopping {
		m.failf("a batch was handed back for reuse with %d of its %d events not acknowledged by Kafka (a re-send would read reused memory)", len(f.acked)-f.nAcked, len(f.acked))
	}
	m.land(f)
	m.unwrap(b, f)
	m.mu.Unlock()
	if f.orig != nil {
		f.orig(b)
	}
}

// land takes f out of flight, at its last acknowledgement (the producer
// releases its budget then, just before it calls Done) or at its Done;
// m.mu is held.
func (m *meter) land(f *flight) {
	if f.landed {
		return
	}
	f.landed = true
	if !f.admitted {
		return
	}
	m.n--
	for end := range f.ends {
		a := m.arrays[end]
		if a.refs--; a.refs == 0 {
			m.bytes -= int64(a.size)
			delete(m.arrays, end)
		}
	}
	m.events -= f.events
}

// unwrap gives b back its own Done and Ackers; m.mu is held.
func (m *meter) unwrap(b *event.Batch, f *flight) {
	b.Done = f.orig
	for i := range b.Events {
		if i < len(f.ackers) {
			b.Events[i].Acker = f.ackers[i]
		}
	}
}

// stop tells the meter the agent is stopping: batches handed back from
// then on need not be acknowledged (the process ends; nothing re-sends).
func (m *meter) stop() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
}

// pinned is the memory b's values keep reachable: each distinct backing
// array (values into one read buffer share where it ends), as much of it
// as the value that reaches furthest back shows.
func pinned(b *event.Batch) map[uintptr]int {
	ends := map[uintptr]int{}
	for i := range b.Events {
		v := b.Events[i].Value
		if cap(v) == 0 {
			continue
		}
		end := uintptr(unsafe.Pointer(unsafe.SliceData(v))) + uintptr(cap(v))
		ends[end] = max(ends[end], cap(v))
	}
	return ends
}

// failf records a broken bound; the caller holds m.mu.
func (m *meter) failf(format string, a ...any) {
	if len(m.errs) < 3 {
		m.errs = append(m.errs, fmt.Sprintf(format, a...))
	}
}

// result is what the meter found, once nothing sends any more.
func (m *meter) result() (errs []string, peak int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.errs, m.peak
}
