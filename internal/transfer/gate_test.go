package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/keyring"
)

// gateHost is an agent (or a host without one) in the generated streams.
type gateHost struct {
	name, ip string
	keys     []*record.SigningKey // nil: no key document
}

// provision puts h's key document in etcd.
func (h *gateHost) provision(t *testing.T, etcd *testutil.Etcd, n int) {
	t.Helper()
	doc := keyring.KeyDoc{IP: h.ip, Host: h.name}
	for i := 0; i < n; i++ {
		k, err := keyring.NewKey(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		doc.Keys = append(doc.Keys, k)
	}
	raw, _ := json.Marshal(doc)
	p, err := keyring.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	h.keys = p.Keys
	etcd.Put("/logagent/keys/"+h.ip, string(raw))
}

func startGateRing(t *testing.T, etcd *testutil.Etcd, accept bool) *keyring.Ring {
	t.Helper()
	r := keyring.NewRing(etcd.Client(), keyring.RingOptions{Prefix: "/logagent/keys/", Timeout: 5 * time.Second, AcceptUnsigned: accept}, quietEntry(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testutil.Eventually(t, 30*time.Second, func() bool { return r.Ready() == nil }, testutil.Msg("keys loaded"))
	return r
}

// genRec is a generated record and what the model says of it.
type genRec struct {
	msg *sarama.ConsumerMessage
	// signed: in an intact chunk, signed by a key of the host it claims;
	// unsigned: covered by no signature that verifies (judged as an
	// unsigned record claiming ip).
	signed bool
	ip     string
	// quarantine: a record whose signature fails (itself never indexed).
	quarantine bool
}

// genRecord is line i as host h's agent sends it (claiming h).
func genRecord(h *gateHost, i int, value string) *sarama.ConsumerMessage {
	hs := []*sarama.RecordHeader{{Key: []byte(record.HeaderHostName), Value: []byte(h.name)}, {Key: []byte(record.HeaderHostIP), Value: []byte(h.ip)},
		{Key: []byte(record.HeaderEventID), Value: []byte(fmt.Sprintf("inst-%d", i))}}
	return &sarama.ConsumerMessage{Topic: "app", Key: []byte("/var/log/app.log"), Value: []byte(value), Headers: hs}
}

// The guarantee, over generated partitions: a record is indexed if and
// only if it is in a chunk that the agent of the host it claims signed and
// that arrives whole, or no signature covers it, accept_unsigned is on and
// its IP is no signing agent's. The partitions interleave whole chunks
// from two agents (with their current and older keys) with everything a
// producer can add: unsigned records, chunks signed with a key nobody has
// or with another agent's key, chunks changed after signing, chunks cut
// (their first records, or a middle record, missing: offsets skip),
// signatures lifted onto forged records, signatures doubled or cut, floods
// of large records (held no further than a chunk can reach). Every
// record comes out once, in order; a commit never falls inside a chunk
// that verified; and a transfer that restarts from any commit judges every
// record from there as the first one did.
func TestGateIndexesWhatTheClaimedHostSignedWhole(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	web := &gateHost{name: "web-1", ip: "10.0.0.1"}
	db := &gateHost{name: "db-1", ip: "10.0.0.2"}
	laptop := &gateHost{name: "laptop", ip: "10.0.0.3"}
	web.provision(t, etcd, 2)
	db.provision(t, etcd, 1)
	stranger, err := record.NewSigningKey(record.KeyID{9, 9, 9, 9}, bytes.Repeat([]byte{9}, record.SecretLen))
	if err != nil {
		t.Fatal(err)
	}
	rings := map[bool]*keyring.Ring{false: startGateRing(t, etcd, false), true: startGateRing(t, etcd, true)}
	signers := map[string]bool{web.ip: true, db.ip: true}
	hosts := []*gateHost{web, db, laptop}

	rapid.Check(t, func(rt *rapid.T) {
		var recs []genRec
		offset := int64(100)
		line := 0
		next := func() int { line++; return line }
		add := func(g genRec) {
			g.msg.Offset = offset
			offset++
			recs = append(recs, g)
		}
		for p, pieces := 0, rapid.IntRange(1, 8).Draw(rt, "pieces"); p < pieces; p++ {
			if rapid.IntRange(0, 5).Draw(rt, "gap") == 0 {
				offset += int64(rapid.IntRange(1, 3).Draw(rt, "skip")) // a transaction marker, a record compacted away
			}
			n := rapid.IntRange(1, 5).Draw(rt, "n")
			agent := []*gateHost{web, db}[rapid.IntRange(0, 1).Draw(rt, "agent")]
			chunk := make([]*sarama.ConsumerMessage, n)
			for i := range chunk {
				chunk[i] = genRecord(agent, next(), fmt.Sprintf("line %d", line))
			}
			switch kind := rapid.IntRange(0, 9).Draw(rt, "kind"); kind {
			case 0, 1: // genuine, whole
				testutil.SignChunk(agent.keys[rapid.IntRange(0, len(agent.keys)-1).Draw(rt, "key")], 2, chunk)
				for _, m := range chunk {
					add(genRec{msg: m, signed: true, ip: agent.ip})
				}
			case 2: // forged, unsigned, claiming any host
				h := hosts[rapid.IntRange(0, len(hosts)-1).Draw(rt, "claims")]
				for range chunk {
					add(genRec{msg: genRecord(h, next(), "FORGED"), ip: h.ip})
				}
			case 3, 4: // signed by a key nobody has, or by db's key claiming web
				k, claim := stranger, agent
				if kind == 4 {
					k, claim = db.keys[0], web
				}
				for i := range chunk {
					chunk[i] = genRecord(claim, next(), "FORGED")
				}
				testutil.SignChunk(k, 2, chunk)
				for i, m := range chunk {
					add(genRec{msg: m, ip: claim.ip, quarantine: i == n-1 && kind == 3})
				}
			case 5: // changed after signing
				testutil.SignChunk(agent.keys[0], 2, chunk)
				chunk[rapid.IntRange(0, n-1).Draw(rt, "changed")].Value = []byte("FORGED")
				for i, m := range chunk {
					add(genRec{msg: m, ip: agent.ip, quarantine: i == n-1})
				}
			case 6: // cut: its first records, or one in the middle, missing
				testutil.SignChunk(agent.keys[0], 2, chunk)
				if n == 1 {
					add(genRec{msg: chunk[0], signed: true, ip: agent.ip})
					break
				}
				drop := rapid.IntRange(0, n-2).Draw(rt, "dropped")
				for i, m := range chunk {
					if i == drop {
						offset++ // an offset nobody delivers
						continue
					}
					add(genRec{msg: m, ip: agent.ip, quarantine: i == n-1})
				}
			case 7: // a genuine signature lifted onto forged records before it
				testutil.SignChunk(agent.keys[0], 2, chunk)
				for i := range chunk[:n-1] {
					add(genRec{msg: genRecord(agent, i, "FORGED"), ip: agent.ip})
				}
				add(genRec{msg: chunk[n-1], ip: agent.ip, signed: n == 1, quarantine: n > 1})
			case 8: // the signature doubled, or cut short
				testutil.SignChunk(agent.keys[0], 2, chunk)
				last := chunk[n-1]
				sig := last.Headers[len(last.Headers)-1]
				if rapid.Bool().Draw(rt, "double") {
					last.Headers = append(last.Headers, sig)
				} else {
					last.Headers[len(last.Headers)-1] = &sarama.RecordHeader{Key: sig.Key, Value: sig.Value[:len(sig.Value)-1]}
				}
				for i, m := range chunk {
					add(genRec{msg: m, ip: agent.ip, quarantine: i == n-1})
				}
			case 9: // a flood of large unsigned records: held no further than a chunk can reach
				// (at least three, together past MaxChunkBytes whatever is drawn)
				h := hosts[rapid.IntRange(0, len(hosts)-1).Draw(rt, "claims")]
				for range max(len(chunk), 3) {
					m := genRecord(h, next(), "FORGED")
					m.Value = append(m.Value, make([]byte, rapid.IntRange(400<<10, 700<<10).Draw(rt, "size"))...)
					add(genRec{msg: m, ip: h.ip})
				}
			}
		}
		for _, accept := range []bool{false, true} {
			c := NewConsumer(Options{Verify: rings[accept]}, quietEntry(), nil)
			got := runGate(rt, c, recs, 0)
			for i, r := range recs {
				want := r.signed || !r.quarantine && accept && !signers[r.ip]
				g := got[i]
				if indexed := g.verdict.Quarantine == ""; indexed != want {
					rt.Fatalf("accept_unsigned=%v, record %d at offset %d (%q, signed=%v, quarantine=%v, claims %s): verdict %q, want indexed=%v",
						accept, i, r.msg.Offset, r.msg.Value, r.signed, r.quarantine, r.ip, g.verdict.Quarantine, want)
				}
				if g.verdict.Signed != r.signed {
					rt.Fatalf("record %d: signed=%v, want %v", i, g.verdict.Signed, r.signed)
				}
			}
			// A commit after any prefix of the records is at a chunk's
			// start or after its end, and a restart from there judges
			// every record as before.
			cut := rapid.IntRange(0, len(recs)).Draw(rt, "acked")
			from := recs[0].msg.Offset
			if cut > 0 {
				from = got[cut-1].end
			}
			first := 0
			for first < len(recs) && recs[first].msg.Offset < from {
				first++
			}
			again := runGate(rt, NewConsumer(Options{Verify: rings[accept]}, quietEntry(), nil), recs[first:], first)
			for i := range again {
				if again[i].verdict.Quarantine != got[first+i].verdict.Quarantine || again[i].verdict.Signed != got[first+i].verdict.Signed {
					rt.Fatalf("accept_unsigned=%v, restarted at offset %d after %d records acked: record at offset %d judged %q/%v, first %q/%v",
						accept, from, cut, recs[first+i].msg.Offset, again[i].verdict.Quarantine, again[i].verdict.Signed, got[first+i].verdict.Quarantine, got[first+i].verdict.Signed)
				}
			}
		}
	})
}

// runGate passes recs through c's gate as a claim does, the last held
// records released as when the claim reaches the high-water mark, and
// returns what came out, checked to be every record once, in order, with
// ends that never go back.
func runGate(rt *rapid.T, c *Consumer, recs []genRec, base int) []gated {
	var st claimState
	st.round = time.Now()
	var out []gated
	for _, r := range recs {
		if !c.take(context.Background(), r.msg, &st) {
			rt.Fatal("take gave up")
		}
		if held := len(st.gate.held); held >= record.MaxChunk || held > 1 && st.gate.bytes > record.MaxChunkBytes {
			rt.Fatalf("%d records (%d bytes) held", held, st.gate.bytes)
		}
		out = append(out, st.gate.ready...)
		st.gate.ready = st.gate.ready[:0]
	}
	if !c.release(context.Background(), &st, len(st.gate.held)) {
		rt.Fatal("release gave up")
	}
	out = append(out, st.gate.ready...)
	if len(out) != len(recs) {
		rt.Fatalf("%d records in, %d out", len(recs), len(out))
	}
	var end int64
	for i := range out {
		if out[i].msg != recs[i].msg {
			rt.Fatalf("record %d out of order", base+i)
		}
		if out[i].end < end || out[i].end > out[i].msg.Offset+1 {
			rt.Fatalf("record %d at offset %d ends at %d after %d", base+i, out[i].msg.Offset, out[i].end, end)
		}
		end = out[i].end
	}
	return out
}

// A claim that starts inside a chunk reads the chunk's beginning from
// Kafka and judges it whole; a claim that ends (a rebalance) while it
// would read it judges nothing: half a chunk judged is a genuine chunk
// quarantined, and handed on in a round nobody stops any more.
func TestChunkBeginningIsReadOrNothingIsJudged(t *testing.T) {
	key, err := record.NewSigningKey(record.KeyID{1, 2, 3, 4}, bytes.Repeat([]byte{7}, record.SecretLen))
	if err != nil {
		t.Fatal(err)
	}
	h := &gateHost{name: "web-1", ip: "10.0.0.1"}
	msgs := make([]*sarama.ConsumerMessage, 10)
	for i := range msgs {
		msgs[i] = genRecord(h, i, fmt.Sprintf("line %d", i))
	}
	testutil.SignChunk(key, 2, msgs)
	k := testutil.StartKafka(t, 1)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = len(msgs) // one record batch: a chunk's offsets are consecutive
	cfg.Producer.Flush.Frequency = time.Second
	client, err := sarama.NewClient([]string{k.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	prod, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	var pms []*sarama.ProducerMessage
	for _, m := range msgs {
		pm := &sarama.ProducerMessage{Topic: m.Topic, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)}
		for _, h := range m.Headers {
			pm.Headers = append(pm.Headers, *h)
		}
		pms = append(pms, pm)
	}
	if err := prod.SendMessages(pms); err != nil {
		t.Fatal(err)
	}
	for i, pm := range pms {
		msgs[i].Offset, msgs[i].Partition = pm.Offset, pm.Partition
	}

	const start = 6 // the claim's first offset, inside the chunk
	claim := func(ctx context.Context, cancelAt int) ([]gated, bool) {
		c := NewConsumer(Options{Verify: oneKey{key}}, quietEntry(), nil)
		c.client = client
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		st := &claimState{}
		st.gate.first = -1
		for i := start; i < len(msgs); i++ {
			if i == cancelAt {
				cancel()
			}
			if !c.take(ctx, msgs[i], st) {
				return st.gate.ready, false
			}
		}
		return st.gate.ready, true
	}
	ready, ok := claim(context.Background(), -1)
	if !ok || len(ready) != len(msgs) {
		t.Fatalf("claim from offset %d: %d records judged (ok %v), want the chunk's %d", start, len(ready), ok, len(msgs))
	}
	for i, r := range ready {
		if r.msg.Offset != int64(i) || !r.verdict.Signed {
			t.Fatalf("record %d of the chunk judged as offset %d, verdict %+v", i, r.msg.Offset, r.verdict)
		}
	}
	if ready, ok := claim(context.Background(), len(msgs)-1); ok || len(ready) != 0 {
		t.Fatalf("a claim ended before the chunk's signature: ok %v, %d records judged: %+v", ok, len(ready), ready)
	}
}
