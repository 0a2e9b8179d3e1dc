package transfer

// The claim loop's waits for held records, on a fake clock (testing/synctest):
// what sarama's feeder delivers, when, and what the high-water mark says
// are generated; the guarantee is that a chunk that is in the log whole is
// judged whole, however its records are spread over time, and that
// records no chunk completes are judged alone, every one.

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/IBM/sarama"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

// oneKey is a Verifier that knows one key: a chunk whose signature it
// verifies is indexed, everything else quarantined (the keyring's rules
// are tested in keyring and by TestGateIndexesWhatTheClaimedHostSignedWhole;
// here only what the gate hands it matters).
type oneKey struct{ k *record.SigningKey }

func (v oneKey) Check(_ context.Context, msgs []*sarama.ConsumerMessage, views []record.View, _ time.Time, ch *record.Chunk, out []record.Verdict) bool {
	last := len(msgs) - 1
	ok := false
	if views[last].Sigs == 1 {
		if _, n, cx, _, err := record.ParseSig(views[last].Sig); err == nil && n == len(msgs) {
			ch.Reset(v.k, msgs[0].Topic, cx)
			for _, m := range msgs {
				ch.Add(m.Key, m.Value, kafka.Headers(m.Headers))
			}
			ok = ch.Verify(views[last].Sig) == nil
		}
	}
	for i := range out {
		out[i] = record.Verdict{Signed: ok}
		if !ok {
			out[i].Quarantine = "not in a chunk that verifies"
		}
	}
	return true
}

// feedClaim is sarama's claim as the loop sees it: a channel the feeder
// fills and a high-water mark it moves.
type feedClaim struct {
	msgs chan *sarama.ConsumerMessage
	hwm  atomic.Int64
}

func (c *feedClaim) Topic() string                            { return "app" }
func (c *feedClaim) Partition() int32                         { return 0 }
func (c *feedClaim) InitialOffset() int64                     { return 0 }
func (c *feedClaim) HighWaterMarkOffset() int64               { return c.hwm.Load() }
func (c *feedClaim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

// fetch is what one fetch response brings: whole record batches (a chunk
// is one), the high-water mark it reports, and the pauses of the feeder
// before each record it hands on.
type fetch struct {
	recs   []*sarama.ConsumerMessage
	hwm    int64
	pauses []time.Duration
	before time.Duration // before the fetch
}

// slowOut acknowledges every document, after holding each submission for
// the time drawn for it (a slow writer stalls the claim loop).
type slowOut struct {
	mu    sync.Mutex
	docs  []*eswriter.Doc
	stall []time.Duration
	got   chan struct{}
}

func (o *slowOut) Submit(ctx context.Context, docs []*eswriter.Doc) error {
	o.mu.Lock()
	var d time.Duration
	if len(o.stall) > 0 {
		d, o.stall = o.stall[0], o.stall[1:]
	}
	o.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	o.mu.Lock()
	o.docs = append(o.docs, docs...)
	o.mu.Unlock()
	for _, doc := range docs {
		doc.Acker.Ack(doc.Seq)
	}
	select {
	case o.got <- struct{}{}:
	default:
	}
	return nil
}

func TestHeldRecordsWaitForTheirChunkWhateverTheTiming(t *testing.T) {
	key, err := record.NewSigningKey(record.KeyID{1, 2, 3, 4}, bytes.Repeat([]byte{7}, record.SecretLen))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := index.Parse("%{topic}-%{+2006.01.02}")
	if err != nil {
		t.Fatal(err)
	}
	// Pauses of the feeder inside a fetch: in a real process, the time
	// between the feeder's turns to run; drawn up to just under heldMax,
	// with the waits' own boundaries among them.
	inside := []time.Duration{0, 0, 0, time.Millisecond, heldWait - time.Millisecond, heldWait, heldWait + time.Millisecond,
		2 * heldWait, heldMax / 2, heldMax - heldWait, heldMax - time.Millisecond}
	between := []time.Duration{0, time.Millisecond, heldWait, heldMax, 3 * heldMax}
	stalls := []time.Duration{0, 0, heldWait, heldMax, 2 * heldMax}
	rapid.Check(t, func(rt *rapid.T) {
		var all []*sarama.ConsumerMessage
		var signed []bool
		var fetches []fetch
		off := int64(0)
		line := 0
		for f, nf := 0, rapid.IntRange(1, 5).Draw(rt, "fetches"); f < nf; f++ {
			var fe fetch
			fe.before = between[rapid.IntRange(0, len(between)-1).Draw(rt, "before")]
			for b, nb := 0, rapid.IntRange(1, 4).Draw(rt, "batches"); b < nb; b++ {
				if rapid.IntRange(0, 4).Draw(rt, "marker") == 0 {
					off++ // a transaction marker: an offset never delivered
				}
				n := rapid.IntRange(1, 6).Draw(rt, "records")
				chunk := rapid.Bool().Draw(rt, "chunk")
				batch := make([]*sarama.ConsumerMessage, n)
				for i := range batch {
					line++
					batch[i] = &sarama.ConsumerMessage{Topic: "app", Partition: 0, Offset: off, Key: []byte("/var/log/app.log"),
						Value: []byte(fmt.Sprintf("line %d", line)), Timestamp: time.Now()}
					off++
					signed = append(signed, chunk)
				}
				if chunk {
					testutil.SignChunk(key, 0, batch)
				}
				fe.recs = append(fe.recs, batch...)
			}
			fe.hwm = off
			if rapid.IntRange(0, 3).Draw(rt, "trailing marker") == 0 {
				off++
				fe.hwm = off
			}
			for range fe.recs {
				fe.pauses = append(fe.pauses, inside[rapid.IntRange(0, len(inside)-1).Draw(rt, "pause")])
			}
			all = append(all, fe.recs...)
			fetches = append(fetches, fe)
		}
		var stall []time.Duration
		for i, n := 0, rapid.IntRange(0, 4).Draw(rt, "stalls"); i < n; i++ {
			stall = append(stall, stalls[rapid.IntRange(0, len(stalls)-1).Draw(rt, "stall")])
		}
		buffer := rapid.IntRange(0, 3).Draw(rt, "channel buffer")

		var docs []*eswriter.Doc
		var failure string
		synctest.Test(t, func(t *testing.T) {
			cl := &feedClaim{msgs: make(chan *sarama.ConsumerMessage, buffer)}
			out := &slowOut{stall: stall, got: make(chan struct{}, 1)}
			c := NewConsumer(Options{Index: idx, Out: out, Verify: oneKey{key}, DrainTimeout: time.Second}, quietEntry(), nil)
			ctx, cancel := context.WithCancel(context.Background())
			sess := &session{ctx: ctx}
			done := make(chan struct{})
			go func() { defer close(done); _ = c.ConsumeClaim(sess, cl) }()
			go func() { // the feeder
				for _, fe := range fetches {
					time.Sleep(fe.before)
					if fe.hwm > cl.hwm.Load() {
						cl.hwm.Store(fe.hwm)
					}
					for i, m := range fe.recs {
						time.Sleep(fe.pauses[i])
						select {
						case cl.msgs <- m:
						case <-ctx.Done():
							return
						}
					}
				}
			}()
			// Everything judged, or held for good (an hour of fake time
			// is far past every wait).
			deadline := time.After(time.Hour + 10*heldMax*time.Duration(len(fetches)+len(stall)))
		wait:
			for {
				out.mu.Lock()
				n := len(out.docs)
				out.mu.Unlock()
				if n >= len(all) {
					break
				}
				select {
				case <-out.got:
				case <-deadline:
					failure = fmt.Sprintf("%d of %d records judged, the rest held for good", n, len(all))
					break wait
				}
			}
			cancel()
			<-done
			out.mu.Lock()
			docs = out.docs
			out.mu.Unlock()
		})
		if failure != "" {
			rt.Fatal(failure)
		}
		if len(docs) != len(all) {
			rt.Fatalf("%d records, %d documents", len(all), len(docs))
		}
		for i, d := range docs {
			m := d.Origin.Record()
			if m.Offset != all[i].Offset || string(m.Value) != string(all[i].Value) {
				rt.Fatalf("document %d is of the record at offset %d, want %d", i, m.Offset, all[i].Offset)
			}
			if indexed := !d.Quarantine; indexed != signed[i] {
				rt.Fatalf("record at offset %d (in a signed chunk: %v): indexed=%v (%s)", m.Offset, signed[i], indexed, d.Reject)
			}
		}
	})
}

// The clock's own rules, where a fake clock cannot reach: a wait that
// ends late (this process stalled: the feeder may hold the rest of a
// chunk, runnable) never lets held records go alone, however long the
// stall; on-time waits do after heldMax of them since the last record,
// not before; and everything below the mark taken lets them go at once.
func TestHeldClockCountsOnlyWaitsThisProcessRan(t *testing.T) {
	// Stalls alone, however many, never let held records go.
	var h heldClock
	now := time.Unix(1e9, 0)
	for i := 0; i < 3*int(heldMax/heldWait); i++ {
		h.arm(now)
		now = now.Add(heldWait + heldLate + time.Millisecond)
		if h.expired(now, false) {
			t.Fatalf("released after %d waits that each ended late", i+1)
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		var h heldClock
		now := time.Unix(1e9, 0)
		quiet := time.Duration(0) // on-time waits since the last record
		for i, n := 0, rapid.IntRange(1, 60).Draw(rt, "events"); i < n; i++ {
			if rapid.IntRange(0, 15).Draw(rt, "record") == 0 {
				h.reset()
				quiet = 0
				continue
			}
			h.arm(now)
			late := rapid.Bool().Draw(rt, "late")
			d := heldWait + time.Duration(rapid.Int64Range(0, int64(heldLate)).Draw(rt, "lateness"))
			if late {
				d = heldWait + heldLate + time.Duration(rapid.Int64Range(1, int64(time.Hour)).Draw(rt, "stall"))
			}
			now = now.Add(d)
			mark := rapid.IntRange(0, 15).Draw(rt, "mark reached") == 0
			got := h.expired(now, mark)
			switch {
			case mark && !got:
				rt.Fatalf("event %d: every record below the mark taken, still held", i)
			case mark:
				quiet = 0 // released: what follows is held afresh
				h.reset()
			case late && got:
				rt.Fatalf("event %d: a wait that ended %v late let held records go alone", i, d-heldWait)
			case late:
			case quiet+heldWait < heldMax && got:
				rt.Fatalf("event %d: released after %v of on-time waits, before heldMax", i, quiet+heldWait)
			case quiet+heldWait >= heldMax && !got:
				rt.Fatalf("event %d: %v of on-time waits with nothing come, still held", i, quiet+heldWait)
			case got:
				quiet = 0
				h.reset()
			default:
				quiet += heldWait
			}
		}
	})
}
