package producer

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// Every chunk prepare cuts from a signed batch carries, on its last record
// only, a signature that verifies over exactly its records; each chunk
// (with the signature) fits in the batch limit and the records are the
// batch's, in order.
func TestEveryChunkIsSignedWhole(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	signer := testSigner(t)
	rapid.Check(t, func(rt *rapid.T) {
		p := New(Config{Kafka: config.Kafka{ChanMaxSize: 10000, BufferBytes: 16 << 20}, Signer: signer}, logrus.NewEntry(l), nil)
		fields := map[string]string(nil)
		if rapid.Bool().Draw(rt, "fields") {
			fields = map[string]string{"service": "nginx"}
		}
		src := event.NewSource("web_log", "/var/log/nginx/access.log", "web-1", "10.0.0.1", fields)
		if rapid.Bool().Draw(rt, "pipeline") {
			src = src.WithPipeline("nginx")
		}
		n := rapid.IntRange(1, 300).Draw(rt, "events")
		b := &event.Batch{Events: make([]event.Event, n)}
		inst := record.NewInstance()
		for i := range b.Events {
			v := []byte(fmt.Sprintf("line %d %s", i, make([]byte, rapid.IntRange(0, 300).Draw(rt, "len"))))
			b.Events[i] = event.Event{Source: src, Value: v, Offset: int64(i * 400), Instance: inst, Time: time.Now(), Acker: nopAcker{}, Seq: uint64(i)}
			if rapid.Bool().Draw(rt, "stamp") {
				b.Events[i].Stamp = time.UnixMilli(1764000000000 + int64(i))
			}
			b.Bytes += len(v)
		}
		maxBatch := rapid.IntRange(600, 20000).Draw(rt, "maxBatch")
		st := p.prepare(b, maxBatch)
		chunks := append([]*chunk{&st.one}, st.more...)
		from := 0
		for _, c := range chunks {
			if c.from != from || c.to <= c.from {
				rt.Fatalf("chunk [%d,%d) after %d", c.from, c.to, from)
			}
			from = c.to
			if c.to-c.from > 1 && c.size > maxBatch {
				rt.Fatalf("chunk of %d records is %d bytes, limit %d", c.to-c.from, c.size, maxBatch)
			}
			recs := st.slab.recs[c.from:c.to]
			var sig []byte
			for i, r := range recs {
				v := record.ParseRecord(r.Key, kafka.Headers(r.Headers))
				if (v.Sigs > 0) != (i == len(recs)-1) {
					rt.Fatalf("record %d of a %d-record chunk has %d signatures", i, len(recs), v.Sigs)
				}
				sig = v.Sig
			}
			_, _, ctx, _, err := record.ParseSig(sig)
			if err != nil {
				rt.Fatal(err)
			}
			var ch record.Chunk
			ch.Reset(signer(), "web_log", ctx)
			for _, r := range recs {
				ch.Add(r.Key, r.Value, kafka.Headers(r.Headers))
			}
			if err := ch.Verify(sig); err != nil {
				rt.Fatalf("chunk [%d,%d): %v", c.from, c.to, err)
			}
			// The record's size as counted covers the signature header.
			var size int
			for _, r := range recs {
				size += recordOverhead + len(r.Key) + len(r.Value)
				for _, h := range r.Headers {
					size += len(h.Key) + len(h.Value) + headerOverhead
				}
			}
			if size > c.size {
				rt.Fatalf("chunk counted %d bytes, holds %d", c.size, size)
			}
		}
		if from != n {
			rt.Fatalf("chunks end at %d of %d", from, n)
		}
	})
}
