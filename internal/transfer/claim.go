package transfer

import (
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// ConsumeClaim turns one partition's records into documents and marks the
// acknowledged prefix every 100ms (also while the writer is full) and at
// the end.
func (c *Consumer) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	topic, part := claim.Topic(), claim.Partition()
	key := topic + "/" + strconv.Itoa(int(part))
	c.mu.Lock()
	c.claims[key] = 1
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.claims, key)
		c.mu.Unlock()
	}()
	lag := c.lag.WithLabelValues(topic, strconv.Itoa(int(part)))
	tr := acktrack.New(claim.InitialOffset())
	var markMu sync.Mutex
	marked := int64(-1)
	mark := func() {
		markMu.Lock()
		defer markMu.Unlock()
		if acked, _, _ := tr.State(); acked > marked && acked >= 0 {
			s.MarkOffset(topic, part, acked, "")
			marked = acked
		}
	}
	// Marks run on their own clock, so that what Elasticsearch acknowledges
	// is marked even while Submit waits for a stalled writer.
	stopMarks := make(chan struct{})
	marksDone := make(chan struct{})
	go func() {
		defer close(marksDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				mark()
			case <-stopMarks:
				return
			}
		}
	}()
	ctx := s.Context()
	c.log.WithFields(logrus.Fields{"topic": topic, "partition": part, "offset": claim.InitialOffset(), "high_water_mark": claim.HighWaterMarkOffset()}).Debug("claim started")
	defer c.log.WithFields(logrus.Fields{"topic": topic, "partition": part}).Debug("claim ended")
	var st claimState
	st.gate.first = -1
	msgs := claim.Messages()
	var wait *time.Timer // while records are held (see gate)
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	last := (*sarama.ConsumerMessage)(nil)
loop:
	for {
		var msg *sarama.ConsumerMessage
		var ok bool
		if len(st.gate.held) == 0 {
			select {
			case msg, ok = <-msgs:
			case <-ctx.Done():
				break loop
			}
		} else {
			if wait == nil {
				wait = time.NewTimer(heldWait)
			} else {
				wait.Reset(heldWait)
			}
			st.gate.clock.arm(time.Now())
			select {
			case msg, ok = <-msgs:
			case <-ctx.Done():
				break loop
			case <-wait.C:
				// Nothing came for heldWait: a record that came meanwhile
				// goes first; else the held records are judged alone if
				// the gate's clock says so (see heldClock), and waited for
				// again if not.
				select {
				case msg, ok = <-msgs:
				default:
					msg, ok = nil, true
					if !st.gate.clock.expired(time.Now(), last.Offset+1 >= claim.HighWaterMarkOffset()) {
						wait.Stop()
						continue loop
					}
				}
			}
			wait.Stop()
		}
		if msg != nil {
			st.gate.clock.reset()
		}
		if !ok {
			break loop
		}
		// Take what else is buffered without blocking: one submission, one
		// counter update and one registration with the tracker (one lock)
		// per round instead of per record; the registration comes before
		// the submission, so no document can be acknowledged before it.
		var docs []*eswriter.Doc
		st.ends, st.done, st.pos = st.ends[:0], st.done[:0], st.pos[:0]
		st.gate.ready = st.gate.ready[:0]
		if c.opt.Verify != nil {
			st.round = time.Now()
		}
		n, closed := 0, false
		if msg == nil { // the wait for held records ran out
			c.releasing(&st, "waited", len(st.gate.held), logrus.Fields{"last": last.Offset, "high_water_mark": claim.HighWaterMarkOffset()})
			if !c.release(ctx, &st, len(st.gate.held)) {
				break loop
			}
		}
		for msg != nil {
			n++
			last = msg
			if !c.take(ctx, msg, &st) {
				break loop // ctx ended: this round's records are not registered, so they come again
			}
			if len(st.gate.ready) >= maxSubmit {
				break
			}
			select {
			case msg, ok = <-msgs:
				if ok {
					continue
				}
				closed = true
			default:
			}
			break
		}
		// Everything below the high-water mark taken: no record still to
		// come completes a held chunk (see gate).
		if len(st.gate.held) > 0 && !closed && last.Offset+1 >= claim.HighWaterMarkOffset() {
			c.releasing(&st, "high-water mark", len(st.gate.held), logrus.Fields{"last": last.Offset, "high_water_mark": claim.HighWaterMarkOffset()})
			if !c.release(ctx, &st, len(st.gate.held)) {
				break loop
			}
		}
		for i := range st.gate.ready {
			r := &st.gate.ready[i]
			d, ok := c.document(ctx, r, &st)
			if !ok {
				break loop // ctx ended: this round's records are not registered, so they come again
			}
			st.ends = append(st.ends, r.end)
			st.done = append(st.done, d == nil) // dropped by its pipeline: done at once
			if d != nil {
				if docs == nil {
					docs = make([]*eswriter.Doc, 0, min(len(st.gate.ready), maxSubmit))
				}
				d.Acker = tr
				docs = append(docs, d)
				st.pos = append(st.pos, uint64(i))
			}
		}
		clear(st.gate.ready)
		if len(st.ends) > 0 {
			first := tr.EmitBatch(st.ends, st.done)
			for i, d := range docs {
				d.Seq = first + st.pos[i]
			}
		}
		c.consumed.Add(float64(n))
		if last != nil {
			lag.Set(float64(claim.HighWaterMarkOffset() - last.Offset - 1))
		}
		// A judged chunk can make a round longer than maxSubmit: handed on
		// in pieces of at most maxSubmit.
		for len(docs) > 0 {
			piece := docs[:min(len(docs), maxSubmit):min(len(docs), maxSubmit)]
			docs = docs[len(piece):]
			if err := c.opt.Out.Submit(ctx, piece); err != nil {
				tr.Retract(piece[0].Seq)
				break loop
			}
		}
		if closed {
			break loop
		}
	}
	close(stopMarks)
	<-marksDone
	// Give in-flight documents a bounded time to be acknowledged, so the
	// commit at Cleanup covers them and the next owner does not index them
	// again.
	deadline := time.Now().Add(c.opt.DrainTimeout)
	for {
		mark()
		if _, _, n := tr.State(); n == 0 || time.Now().After(deadline) {
			if n > 0 {
				c.log.WithFields(logrus.Fields{"topic": topic, "partition": part, "inflight": n}).Warn("leaving partition with unacknowledged documents; they will be delivered again")
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.Kill()
	return nil
}

// claimState is per-partition scratch state for building documents.
type claimState struct {
	fields    fieldsCache
	indexKey  int64 // the Period indexName was computed for
	indexName string
	res       pipeline.Result
	slab      []eswriter.Doc // documents not yet handed out
	// ends, done and pos are a round's scratch for the tracker: each
	// record's end offset, whether it is done already (no document), and
	// each document's place among the records.
	ends []int64
	done []bool
	pos  []uint64
	ids  idArena
	// round is when this round's first record was taken in hand; gate
	// holds records until their chunk's signature is in (see gate).
	round time.Time
	gate  gate
	// piped caches the outcome counters of each pipeline met (names are
	// those that resolved to a pipeline: a bounded set).
	piped map[string]*pipeCounters
}
