package acktrack

import (
	"math/rand"
	"sync"
	"testing"
)

// checkState fails t unless tr reports the wanted acked, read and in-flight
// values.
func checkState(t *testing.T, tr *Tracker, acked, read int64, inflight int) {
	t.Helper()
	a, r, n := tr.State()
	if a != acked || r != read || n != inflight {
		t.Fatalf("state = (acked %d, read %d, inflight %d), want (%d, %d, %d)", a, r, n, acked, read, inflight)
	}
}

func TestTrackerInOrder(t *testing.T) {
	tr := New(100)
	checkState(t, tr, 100, 100, 0)
	var seqs []uint64
	for _, end := range []int64{110, 125, 130} {
		seqs = append(seqs, tr.Emit(end, false))
	}
	for i, s := range seqs {
		if s != uint64(i) {
			t.Fatalf("seq %d = %d, want %d", i, s, i)
		}
	}
	checkState(t, tr, 100, 130, 3)
	tr.Ack(seqs[0])
	checkState(t, tr, 110, 130, 2)
	tr.Ack(seqs[1])
	checkState(t, tr, 125, 130, 1)
	tr.Ack(seqs[2])
	checkState(t, tr, 130, 130, 0)
}

func TestTrackerOutOfOrder(t *testing.T) {
	tr := New(0)
	s1 := tr.Emit(10, false)
	s2 := tr.Emit(20, false)
	s3 := tr.Emit(30, false)

	tr.Ack(s3)
	checkState(t, tr, 0, 30, 3) // 3 acked, but 1 and 2 are not: no progress
	tr.Ack(s1)
	checkState(t, tr, 10, 30, 2) // prefix is event 1 only
	tr.Ack(s2)
	checkState(t, tr, 30, 30, 0) // jumps over the already acked event 3
}

func TestTrackerDuplicateAndStaleAcks(t *testing.T) {
	tr := New(0)
	s1 := tr.Emit(10, false)
	s2 := tr.Emit(20, false)
	s3 := tr.Emit(30, false)

	tr.Ack(s1)
	tr.Ack(s1) // duplicate of an acked, already popped event
	checkState(t, tr, 10, 30, 2)

	tr.Ack(s3)
	tr.Ack(s3) // duplicate of an acked event still waiting for s2
	checkState(t, tr, 10, 30, 2)

	tr.Ack(s3 + 1)   // never emitted
	tr.Ack(s3 + 100) // far future
	tr.Ack(^uint64(0))
	checkState(t, tr, 10, 30, 2)

	// A seq that is not emitted yet must not be remembered as acked when
	// it later is emitted.
	s4 := tr.Emit(40, false)
	if s4 != s3+1 {
		t.Fatalf("s4 = %d, want %d", s4, s3+1)
	}
	tr.Ack(s2)
	checkState(t, tr, 30, 40, 1)
	tr.Ack(s4)
	checkState(t, tr, 40, 40, 0)

	// Everything is popped now: every old seq is stale.
	for _, s := range []uint64{s1, s2, s3, s4} {
		tr.Ack(s)
	}
	checkState(t, tr, 40, 40, 0)

	// A future seq that shares a ring slot with a pending event must not
	// mark that event acked.
	tr = New(0)
	p0 := tr.Emit(10, false)
	tr.Emit(20, false)
	tr.Ack(p0 + uint64(len(tr.ring)))
	tr.Emit(21, true) // a skip runs advance
	checkState(t, tr, 0, 21, 3)
}

func TestTrackerSkip(t *testing.T) {
	t.Run("empty tracker advances at once", func(t *testing.T) {
		tr := New(5)
		tr.Emit(6, true)
		checkState(t, tr, 6, 6, 0)
	})
	t.Run("waits for earlier events", func(t *testing.T) {
		tr := New(0)
		s1 := tr.Emit(10, false)
		tr.Emit(11, true) // blank line
		s3 := tr.Emit(20, false)
		tr.Emit(21, true)
		tr.Emit(22, true)
		checkState(t, tr, 0, 22, 5)

		tr.Ack(s3)
		checkState(t, tr, 0, 22, 5)
		tr.Ack(s1) // pops s1, the skip, s3 and both trailing skips
		checkState(t, tr, 22, 22, 0)
	})
	t.Run("stops at an unacked event", func(t *testing.T) {
		tr := New(0)
		s1 := tr.Emit(10, false)
		tr.Emit(11, true)
		s3 := tr.Emit(20, false)
		tr.Emit(21, true)

		tr.Ack(s1)
		checkState(t, tr, 11, 21, 2) // through the skip, not past s3
		tr.Ack(s3)
		checkState(t, tr, 21, 21, 0)
	})
	t.Run("skip after everything acked", func(t *testing.T) {
		tr := New(0)
		s1 := tr.Emit(10, false)
		tr.Ack(s1)
		tr.Emit(12, true)
		checkState(t, tr, 12, 12, 0)
	})
}

// model is the obvious reference implementation of the tracker: every
// registered entry with its end and whether it is done.
type model struct {
	start int64
	ends  []int64
	done  []bool
	pre   int // done[:pre] are all true; only a cache, state re-checks
}

func (m *model) emit(end int64, done bool) uint64 {
	m.ends = append(m.ends, end)
	m.done = append(m.done, done)
	return uint64(len(m.ends) - 1)
}

// state returns the end of the longest fully done prefix, the end of the
// last entry and the number of entries after that prefix.
func (m *model) state() (acked, read int64, inflight int) {
	acked, read = m.start, m.start
	for m.pre < len(m.done) && m.done[m.pre] {
		m.pre++
	}
	i := m.pre
	if i > 0 {
		acked = m.ends[i-1]
	}
	if len(m.ends) > 0 {
		read = m.ends[len(m.ends)-1]
	}
	return acked, read, len(m.ends) - i
}

func (m *model) check(t *testing.T, tr *Tracker, what string) {
	t.Helper()
	wa, wr, wn := m.state()
	a, r, n := tr.State()
	if a != wa || r != wr || n != wn {
		t.Fatalf("%s: state = (acked %d, read %d, inflight %d), model says (%d, %d, %d)", what, a, r, n, wa, wr, wn)
	}
}

func TestTrackerRandomAckOrder(t *testing.T) {
	for _, total := range []int{1, 63, 64, 65, 129, 1000, 5000} {
		rng := rand.New(rand.NewSource(int64(total)))
		tr := New(1000)
		m := &model{start: 1000}
		end := int64(1000)
		var events []uint64
		for i := 0; i < total; i++ {
			end += 1 + rng.Int63n(200)
			skip := rng.Intn(10) == 0 // a blank line now and then
			s := tr.Emit(end, skip)
			if ms := m.emit(end, skip); s != ms {
				t.Fatalf("total %d: emit %d returned seq %d, want %d", total, i, s, ms)
			}
			if !skip {
				events = append(events, s)
			}
		}
		m.check(t, tr, "after emitting")
		if _, _, n := tr.State(); len(tr.ring) < n {
			t.Fatalf("total %d: ring of %d slots holds %d pending entries", total, len(tr.ring), n)
		}
		rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		for i, s := range events {
			tr.Ack(s)
			m.done[s] = true
			m.check(t, tr, "ack")
			if i%7 == 0 { // duplicates change nothing
				tr.Ack(s)
				m.check(t, tr, "duplicate ack")
			}
		}
		checkState(t, tr, end, end, 0)
		if len(tr.ring) > 4096 {
			t.Errorf("total %d: ring still has %d slots after everything was acked", total, len(tr.ring))
		}
	}
}

// TestTrackerInterleaved mixes emits, skips and acks so the ring wraps
// around and grows while its head is not at slot 0.
func TestTrackerInterleaved(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	tr := New(0)
	m := &model{}
	var pending []uint64 // emitted, not yet acked
	end := int64(0)
	maxRing := 0
	for step := 0; step < 60000; step++ {
		// Alternate phases that favour emitting (pending grows past the
		// ring size) and acking (pending drains, head moves on).
		emitBias := 3
		if (step/3000)%2 == 1 {
			emitBias = 7
		}
		switch r := rng.Intn(10); {
		case r < emitBias || len(pending) == 0:
			end += 1 + rng.Int63n(100)
			skip := rng.Intn(8) == 0
			s := tr.Emit(end, skip)
			if ms := m.emit(end, skip); s != ms {
				t.Fatalf("step %d: seq %d, want %d", step, s, ms)
			}
			if !skip {
				pending = append(pending, s)
			}
		default:
			i := rng.Intn(len(pending))
			if rng.Intn(4) == 0 {
				i = 0 // the oldest, so the prefix moves often
			}
			s := pending[i]
			pending[i] = pending[len(pending)-1]
			pending = pending[:len(pending)-1]
			tr.Ack(s)
			m.done[s] = true
		}
		m.check(t, tr, "interleaved")
		maxRing = max(maxRing, len(tr.ring))
	}
	if maxRing < 512 {
		t.Fatalf("ring never grew past %d slots: the test does not exercise growth", maxRing)
	}
	for _, s := range pending {
		tr.Ack(s)
		m.done[s] = true
		m.check(t, tr, "drain")
	}
	checkState(t, tr, end, end, 0)
}

func TestTrackerRingShrinksAfterBurst(t *testing.T) {
	tr := New(0)
	var seqs []uint64
	for i := 1; i <= 10000; i++ {
		seqs = append(seqs, tr.Emit(int64(i), false))
	}
	if len(tr.ring) < 10000 {
		t.Fatalf("ring has %d slots for 10000 pending entries", len(tr.ring))
	}
	for _, s := range seqs {
		tr.Ack(s)
	}
	checkState(t, tr, 10000, 10000, 0)
	if tr.ring != nil {
		t.Fatalf("ring has %d slots after the burst, want none", len(tr.ring))
	}
	// The tracker keeps working with a new ring and the old head.
	s := tr.Emit(10010, false)
	if s != 10000 {
		t.Fatalf("seq after shrink = %d, want 10000", s)
	}
	tr.Ack(s)
	checkState(t, tr, 10010, 10010, 0)
}

// Smaller bursts keep their ring while the file is busy (no churn), and
// give it back on Shrink once nothing is in flight.
func TestTrackerShrinkWhenIdle(t *testing.T) {
	tr := New(0)
	var seqs []uint64
	for i := 1; i <= 1000; i++ {
		seqs = append(seqs, tr.Emit(int64(i), false))
	}
	tr.Shrink() // in flight: nothing to give back
	if len(tr.ring) < 1000 {
		t.Fatalf("ring shrank to %d slots with 1000 entries in flight", len(tr.ring))
	}
	for _, s := range seqs {
		tr.Ack(s)
	}
	if len(tr.ring) < 1000 {
		t.Fatalf("ring shrank to %d slots at the ack: a busy file would reallocate it every batch", len(tr.ring))
	}
	tr.Shrink()
	if tr.ring != nil {
		t.Fatalf("ring has %d slots after Shrink with nothing in flight, want none", len(tr.ring))
	}
	s := tr.Emit(1005, false)
	if s != 1000 {
		t.Fatalf("seq after shrink = %d, want 1000", s)
	}
	tr.Ack(s)
	checkState(t, tr, 1005, 1005, 0)
}

func TestTrackerRetract(t *testing.T) {
	t.Run("last of several", func(t *testing.T) {
		tr := New(0)
		s1 := tr.Emit(10, false)
		s2 := tr.Emit(20, false)
		s3 := tr.Emit(30, false)
		tr.Retract(s3)
		checkState(t, tr, 0, 20, 2)
		tr.Retract(s3) // already retracted: ignored
		checkState(t, tr, 0, 20, 2)

		// The seq is reused by the next event, and acks apply to it.
		s3b := tr.Emit(35, false)
		if s3b != s3 {
			t.Fatalf("seq after retract = %d, want %d", s3b, s3)
		}
		tr.Ack(s1)
		tr.Ack(s2)
		checkState(t, tr, 20, 35, 1)
		tr.Ack(s3b)
		checkState(t, tr, 35, 35, 0)
	})
	t.Run("from the middle drops the rest", func(t *testing.T) {
		tr := New(0)
		tr.Emit(10, false)
		s2 := tr.Emit(20, false)
		tr.Emit(21, true)
		tr.Emit(30, false)
		tr.Retract(s2)
		checkState(t, tr, 0, 10, 1)
		if s := tr.Emit(25, false); s != s2 {
			t.Fatalf("seq after retract = %d, want %d", s, s2)
		}
	})
	t.Run("only event restores acked", func(t *testing.T) {
		tr := New(0)
		s1 := tr.Emit(10, false)
		tr.Ack(s1)
		s2 := tr.Emit(20, false)
		tr.Retract(s2)
		checkState(t, tr, 10, 10, 0)
	})
	t.Run("restores end of a preceding skip", func(t *testing.T) {
		tr := New(0)
		tr.Emit(10, false)
		tr.Emit(11, true)
		s3 := tr.Emit(20, false)
		tr.Retract(s3)
		checkState(t, tr, 0, 11, 2)
	})
	t.Run("after ring growth and wrap", func(t *testing.T) {
		tr := New(0)
		for i := int64(1); i <= 50; i++ {
			tr.Ack(tr.Emit(i, false))
		}
		var last uint64
		for i := int64(51); i <= 200; i++ {
			last = tr.Emit(i*10, false)
		}
		tr.Retract(last)
		checkState(t, tr, 50, 1990, 149)
	})
	t.Run("batch starting with a blank line", func(t *testing.T) {
		// The blank line is done at once and popped; retracting the batch
		// by its first seq must still drop the events after it, or the
		// acked offset sticks and reading resumes past unsent lines.
		tr := New(0)
		first := tr.EmitBatch([]int64{1, 10, 20}, []bool{true, false, false})
		checkState(t, tr, 1, 20, 2)
		tr.Retract(first)
		checkState(t, tr, 1, 1, 0)
		if s := tr.Emit(10, false); s != first+1 {
			t.Fatalf("seq after retract = %d, want %d", s, first+1)
		}
	})
	t.Run("empty tracker", func(t *testing.T) {
		tr := New(7)
		tr.Retract(0)
		checkState(t, tr, 7, 7, 0)
	})
}

func TestTrackerKill(t *testing.T) {
	tr := New(0)
	s1 := tr.Emit(10, false)
	s2 := tr.Emit(20, false)
	tr.Ack(s1)
	tr.Kill()
	tr.Ack(s2)
	checkState(t, tr, 10, 20, 1)
}

// TestTrackerConcurrent runs under -race: one goroutine emits, several ack
// in shuffled order, one watches that acked never goes backwards.
func TestTrackerConcurrent(t *testing.T) {
	const (
		n       = 20000
		ackers  = 4
		batchSz = 97
	)
	tr := New(0)
	work := make([]chan uint64, ackers)
	for i := range work {
		work[i] = make(chan uint64, 256)
	}
	var wg sync.WaitGroup
	for _, ch := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range ch {
				tr.Ack(s)
			}
		}()
	}

	stop := make(chan struct{})
	watchErr := make(chan string, 1)
	go func() {
		defer close(watchErr)
		var last int64
		for {
			select {
			case <-stop:
				return
			default:
			}
			a, r, _ := tr.State()
			if a < last || a > r {
				watchErr <- "acked went backwards or past read"
				return
			}
			last = a
		}
	}()

	emitted := make(chan int64, 1)
	go func() {
		rng := rand.New(rand.NewSource(7))
		var batch []uint64
		end := int64(0)
		flush := func() {
			rng.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
			for i, s := range batch {
				work[(i+rng.Intn(ackers))%ackers] <- s
			}
			batch = batch[:0]
		}
		for i := 0; i < n; i++ {
			end += 1 + rng.Int63n(300)
			if rng.Intn(20) == 0 {
				tr.Emit(end, true)
				continue
			}
			batch = append(batch, tr.Emit(end, false))
			if len(batch) == batchSz {
				flush()
			}
		}
		flush()
		for _, ch := range work {
			close(ch)
		}
		emitted <- end
	}()

	last := <-emitted
	wg.Wait()
	close(stop)
	if msg, ok := <-watchErr; ok {
		t.Fatal(msg)
	}
	checkState(t, tr, last, last, 0)
}

func TestEmitAndAckBatch(t *testing.T) {
	tr := New(100)
	first := tr.EmitBatch([]int64{110, 111, 120, 130}, []bool{false, true, false, false})
	if first != 0 {
		t.Fatalf("first seq %d", first)
	}
	checkState(t, tr, 100, 130, 4)
	tr.AckBatch([]uint64{first + 2, first + 3}) // out of order: prefix stays
	checkState(t, tr, 100, 130, 4)
	tr.AckBatch([]uint64{first, first + 99}) // unknown seq ignored
	checkState(t, tr, 130, 130, 0)
	next := tr.EmitBatch([]int64{140}, []bool{false})
	if next != first+4 {
		t.Fatalf("next seq %d", next)
	}
	// A batch of only spans without events advances at once.
	tr.Ack(next)
	tr.EmitBatch([]int64{141, 142}, []bool{true, true})
	checkState(t, tr, 142, 142, 0)
}

// BenchmarkEmitAckBatch registers and acknowledges batches of 1024 spans,
// as the agent does per read and per run of acks. One op is one line.
func BenchmarkEmitAckBatch(b *testing.B) {
	tr := New(0)
	const n = 1024
	ends := make([]int64, n)
	done := make([]bool, n)
	seqs := make([]uint64, n)
	var off int64
	b.ReportAllocs()
	for i := 0; i < b.N; i += n {
		for j := range ends {
			off += 200
			ends[j] = off
		}
		first := tr.EmitBatch(ends, done)
		for j := range seqs {
			seqs[j] = first + uint64(j)
		}
		tr.AckBatch(seqs)
	}
	if a, _, _ := tr.State(); a != off {
		b.Fatalf("acked %d, want %d", a, off)
	}
}
