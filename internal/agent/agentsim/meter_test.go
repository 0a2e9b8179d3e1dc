package agentsim

import (
	"context"
	"fmt"
	"sync"
	"unsafe"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/producer"
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
}

type flight struct {
	ends           map[uintptr]int // backing arrays: end -> bytes seen
	events         int64
	admitted, done bool
	orig           func(*event.Batch)
}

type array struct{ size, refs int }

func newMeter(p *producer.Producer, maxBytes, maxEvents int64) *meter {
	return &meter{prod: p, maxBytes: maxBytes, maxEvts: maxEvents, flights: map[*event.Batch]*flight{}, arrays: map[uintptr]*array{}}
}

// Send hands b to the producer and, once the producer took it, counts it
// in flight until its Done.
func (m *meter) Send(ctx context.Context, b *event.Batch) error {
	f := &flight{ends: pinned(b), events: int64(len(b.Events)), orig: b.Done}
	m.mu.Lock()
	m.flights[b] = f
	b.Done = m.done
	m.mu.Unlock()
	err := m.prod.Send(ctx, b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.flights, b)
		b.Done = f.orig
		return err
	}
	if f.done {
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
	if f.admitted {
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
	b.Done = f.orig
	m.mu.Unlock()
	if f.orig != nil {
		f.orig(b)
	}
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
