package transfer

import (
	"context"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// An agent signs chunks, not records (see record.HeaderSig): the last
// record of a chunk carries the signature of the chunk's N records, which
// sit at consecutive offsets of one partition because a Kafka record batch
// is written whole. The gate holds a partition's unsigned records until
// it can tell which chunk they belong to, then has the Verifier judge each
// chunk, and each record no chunk covers on its own.
//
// What ends a wait is in the records, not the clock, but for one case:
//   - a signature covers the N-1 records held just before it;
//   - a record that is not the next offset ends every chunk held (a
//     chunk's offsets are consecutive);
//   - a record held MaxChunk-1 places back, or with more than
//     MaxChunkBytes of records after it, can be in no chunk to come;
//   - once the claim has taken every record below the high-water mark,
//     what it holds is all there is (the signature of a chunk is in the
//     same batch, so it is below the mark as soon as the chunk's first
//     record is);
//   - records nothing else resolves (the mark stays ahead: transaction
//     markers, which take offsets and are never delivered) are judged
//     alone once nothing came for heldMax (see heldClock).
//
// A judged chunk's records are registered with the tracker so that a
// commit never falls inside the chunk: every record but the last ends at
// the chunk's first offset. The next owner of the partition starts at a
// chunk's first record and sees the chunk whole.
type gate struct {
	held  []gated
	ready []gated
	// scratch for the Verifier
	msgs  []*sarama.ConsumerMessage
	views []record.View
	verd  []record.Verdict
	chunk record.Chunk
	// first is the offset of the claim's first record (-1: none yet);
	// bytes is what the held records count against record.MaxChunkBytes.
	first int64
	bytes int
	clock heldClock
}

// gated is a record on its way through the gate: its parsed headers, and
// once judged, the verdict and the offset a commit after it resumes from.
type gated struct {
	msg     *sarama.ConsumerMessage
	view    record.View
	verdict record.Verdict
	end     int64
}

// heldWait is how often a claim holding records with nothing else
// arriving looks again at the high-water mark; heldMax is how long held
// records wait at most when the mark stays ahead of what was delivered
// (transaction markers), counted in waits that ended on time (heldLate).
// The rest of a chunk arrives in the same fetch as its first record, so
// both are a last resort.
const (
	heldWait = 5 * time.Second
	heldMax  = time.Minute
	heldLate = heldWait / 2
)

// heldClock says when held records have waited for nothing long enough.
// Once a chunk's first record is delivered, the rest is already in this
// process (sarama's feeder has the whole fetch), so only a stall of the
// process can keep it: when the process runs again, the timer and the
// feeder are both ready, and the timer may be seen first. A wait that
// ended late is therefore not counted, and every record that comes
// starts the count again: held records are judged alone only after
// heldMax of waits in which this process ran and nothing came.
type heldClock struct {
	armed time.Time
	quiet time.Duration
}

// arm is called when a wait for held records starts at now.
func (h *heldClock) arm(now time.Time) { h.armed = now }

// reset is called when a record comes.
func (h *heldClock) reset() { h.quiet = 0 }

// expired is called when the wait armed last ended at now with nothing
// come: whether the held records are judged alone now. They are once the
// claim has every record below the high-water mark (markReached: what it
// holds is all there is, however late the wait), or after heldMax of
// waits that ended on time.
func (h *heldClock) expired(now time.Time, markReached bool) bool {
	if markReached {
		return true
	}
	if now.Sub(h.armed) > heldWait+heldLate {
		return false // this process stalled: the feeder may not have run yet
	}
	h.quiet += heldWait
	return h.quiet >= heldMax
}

// take passes msg through the gate: what it resolves is appended to
// st.gate.ready in offset order. False if ctx ended while a verdict
// waited.
func (c *Consumer) take(ctx context.Context, msg *sarama.ConsumerMessage, st *claimState) bool {
	g := &st.gate
	if g.first < 0 {
		g.first = msg.Offset
	}
	v := record.ParseRecord(msg.Key, kafka.Headers(msg.Headers))
	if c.opt.Verify == nil {
		g.ready = append(g.ready, gated{msg: msg, view: v, end: msg.Offset + 1})
		return true
	}
	if len(g.held) > 0 && msg.Offset != g.held[len(g.held)-1].msg.Offset+1 {
		c.releasing(st, "gap", len(g.held), logrus.Fields{"next": msg.Offset})
		if !c.release(ctx, st, len(g.held)) {
			return false
		}
	}
	if v.Sigs == 0 {
		g.held = append(g.held, gated{msg: msg, view: v})
		g.bytes += record.HeldSize(msg.Key, msg.Value, kafka.Headers(msg.Headers))
		// The oldest records held can be in no chunk still to come once
		// there are more than a chunk holds before its signed record.
		k := 0
		for n, b := len(g.held), g.bytes; n >= record.MaxChunk || b > record.MaxChunkBytes && n > 1; n-- {
			b -= record.HeldSize(g.held[k].msg.Key, g.held[k].msg.Value, kafka.Headers(g.held[k].msg.Headers))
			k++
		}
		if k > 0 {
			c.releasing(st, "more than a chunk", k, logrus.Fields{"held_bytes": g.bytes})
			return c.release(ctx, st, k)
		}
		return true
	}
	n := 1 // what the signature covers; a malformed one covers its record
	if v.Sigs == 1 {
		if _, k, _, _, err := record.ParseSig(v.Sig); err == nil {
			n = k
		}
	}
	// The claim started inside this chunk (a commit another transfer
	// made, or offsets an operator reset): its beginning is read again.
	if start := msg.Offset - int64(n-1); start < g.first && len(g.held) == int(msg.Offset-g.first) {
		b, ok := c.beginning(ctx, msg, start, g.first)
		if !ok {
			return false // not judged from part of its beginning: the chunk comes again
		}
		g.held = append(b, g.held...)
	}
	// The held records before the chunk's are judged alone. A chunk whose
	// beginning is not held (this claim started inside it, or a gap cut
	// it) is judged as far as it is here, and fails.
	if k := len(g.held) - (n - 1); k > 0 {
		c.releasing(st, "before a chunk", k, logrus.Fields{"signature": msg.Offset, "covers": n})
		if !c.release(ctx, st, k) {
			return false
		}
	}
	g.held = append(g.held, gated{msg: msg, view: v})
	ok := c.judge(ctx, st, g.held, true)
	clear(g.held)
	g.held, g.bytes = g.held[:0], 0
	return ok
}

// releasing logs, at debug level, that the first k held records are
// about to be judged alone, and why: what to look at when an agent's
// lines are quarantined as unsigned.
func (c *Consumer) releasing(st *claimState, rule string, k int, f logrus.Fields) {
	if !c.log.Logger.IsLevelEnabled(logrus.DebugLevel) {
		return
	}
	g := &st.gate
	first, last := g.held[0].msg, g.held[k-1].msg
	c.log.WithFields(f).WithFields(logrus.Fields{"rule": rule, "topic": first.Topic, "partition": first.Partition,
		"from": first.Offset, "to": last.Offset, "held": len(g.held)}).Debug("held records judged alone")
}

// release judges the first k held records alone.
func (c *Consumer) release(ctx context.Context, st *claimState, k int) bool {
	g := &st.gate
	for i := range g.held[:k] {
		if !c.judge(ctx, st, g.held[i:i+1], false) {
			return false
		}
	}
	for i := range g.held[:k] {
		g.bytes -= record.HeldSize(g.held[i].msg.Key, g.held[i].msg.Value, kafka.Headers(g.held[i].msg.Headers))
	}
	n := copy(g.held, g.held[k:])
	clear(g.held[n:])
	g.held = g.held[:n]
	return true
}

// judge has the Verifier judge recs (a chunk, its signature on the last,
// or one record alone) and appends them to st.gate.ready.
func (c *Consumer) judge(ctx context.Context, st *claimState, recs []gated, chunk bool) bool {
	g := &st.gate
	g.msgs, g.views, g.verd = g.msgs[:0], g.views[:0], g.verd[:0]
	for i := range recs {
		g.msgs = append(g.msgs, recs[i].msg)
		g.views = append(g.views, recs[i].view)
		g.verd = append(g.verd, record.Verdict{})
	}
	if !c.opt.Verify.Check(ctx, g.msgs, g.views, st.round, &g.chunk, g.verd) {
		return false
	}
	first := recs[0].msg.Offset
	for i := range recs {
		r := recs[i]
		r.verdict = g.verd[i]
		r.end = r.msg.Offset + 1
		if chunk && i < len(recs)-1 {
			r.end = first // a commit inside the chunk resumes at its start
		}
		g.ready = append(g.ready, r)
	}
	clear(g.msgs)
	return true
}

// beginning reads the records of msg's partition in [from, to), the part
// of a chunk before the claim's first record, with a partition consumer of
// its own; on failure, or when they are not consecutive, what it has (the
// chunk then fails, and its records are judged as unsigned). False if ctx
// ended first: the claim is over, and the chunk is judged by whoever reads
// it next, whole.
func (c *Consumer) beginning(ctx context.Context, msg *sarama.ConsumerMessage, from, to int64) ([]gated, bool) {
	if ctx.Err() != nil {
		return nil, false
	}
	c.mu.Lock()
	client := c.client
	c.mu.Unlock()
	if client == nil {
		return nil, true
	}
	log := c.log.WithFields(logrus.Fields{"topic": msg.Topic, "partition": msg.Partition, "from": from, "to": to})
	cons, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		c.thr.Log("beginning", log.WithError(err), logrus.WarnLevel, "cannot read the beginning of a chunk the claim started inside; its records are judged as unsigned")
		return nil, true
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(msg.Topic, msg.Partition, from)
	if err != nil {
		c.thr.Log("beginning", log.WithError(err), logrus.WarnLevel, "cannot read the beginning of a chunk the claim started inside; its records are judged as unsigned")
		return nil, true
	}
	defer pc.Close()
	timeout := time.NewTimer(beginningTimeout)
	defer timeout.Stop()
	var out []gated
	for {
		select {
		case m := <-pc.Messages():
			if m.Offset >= to {
				return out, true
			}
			if len(out) > 0 && m.Offset != out[len(out)-1].msg.Offset+1 {
				out = out[:0] // not consecutive: only what follows the gap can be the chunk's
			}
			out = append(out, gated{msg: m, view: record.ParseRecord(m.Key, kafka.Headers(m.Headers))})
			if m.Offset == to-1 {
				return out, true
			}
		case err := <-pc.Errors():
			c.thr.Log("beginning", log.WithError(err), logrus.WarnLevel, "cannot read the beginning of a chunk the claim started inside; its records are judged as unsigned")
			return out, true
		case <-timeout.C:
			c.thr.Log("beginning", log, logrus.WarnLevel, "reading the beginning of a chunk the claim started inside timed out; its records are judged as unsigned")
			return out, true
		case <-ctx.Done():
			return nil, false
		}
	}
}

// beginningTimeout bounds the read of a chunk's beginning.
const beginningTimeout = 30 * time.Second
