package record

import (
	"bytes"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func testKey(t testing.TB, id byte) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(KeyID{id}, bytes.Repeat([]byte{id}, SecretLen))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testRec is one record of a chunk.
type testRec struct {
	key, value []byte
	headers    []*Header
}

func cloneRecs(rs []testRec) []testRec {
	out := make([]testRec, len(rs))
	for i, r := range rs {
		out[i] = testRec{key: bytes.Clone(r.key), value: bytes.Clone(r.value)}
		for _, h := range r.headers {
			out[i].headers = append(out[i].headers, &Header{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)})
		}
	}
	return out
}

func signChunk(k *SigningKey, topic string, ctx int, rs []testRec) ([]byte, error) {
	var c Chunk
	c.Reset(k, topic, ctx)
	for _, r := range rs {
		c.Add(r.key, r.value, r.headers)
	}
	return c.AppendSig(nil)
}

func verifyChunk(k *SigningKey, topic string, sig []byte, rs []testRec) error {
	_, _, ctx, _, err := ParseSig(sig)
	if err != nil {
		return err
	}
	var c Chunk
	c.Reset(k, topic, ctx)
	for _, r := range rs {
		c.Add(r.key, r.value, r.headers)
	}
	return c.Verify(sig)
}

// A chunk verifies as signed, also with the signature among the last
// record's headers; with another key it does not, nor after any change to
// what it carries: the topic, a record's key, value or header (name or
// value, added, dropped), a context header of a later record, a record
// added, dropped or moved, the count or context the signature names.
func TestSignatureCoversTheChunk(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	// Stated outright, as rapid may draw few records with headers of
	// their own: each record's own headers (event id, index time), past
	// the shared context, are covered.
	rs := []testRec{
		{key: []byte("k"), value: []byte("a"), headers: []*Header{{Key: []byte(HeaderHostName), Value: []byte("web-1")}, {Key: []byte(HeaderEventID), Value: []byte("i-1")}}},
		{key: []byte("k"), value: []byte("b"), headers: []*Header{{Key: []byte(HeaderHostName), Value: []byte("web-1")}, {Key: []byte(HeaderEventID), Value: []byte("i-2")}}},
	}
	sig, err := signChunk(k, "t", 1, rs)
	if err != nil {
		t.Fatal(err)
	}
	whole := cloneRecs(rs)
	whole[1].headers = append(whole[1].headers, &Header{Key: []byte(HeaderSig), Value: sig})
	if err := verifyChunk(k, "t", sig, whole); err != nil {
		t.Fatalf("the chunk as signed: %v", err)
	}
	for i := range rs {
		changed := cloneRecs(rs)
		changed[i].headers[1].Value = []byte("forged")
		changed[len(changed)-1].headers = append(changed[len(changed)-1].headers, &Header{Key: []byte(HeaderSig), Value: sig})
		if err := verifyChunk(k, "t", sig, changed); err == nil {
			t.Fatalf("record %d's own header changed, and the chunk still verifies", i)
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SliceOfN(rapid.Byte(), 0, 40)
		topic := rapid.StringN(1, 10, -1).Draw(rt, "topic")
		key := bs.Draw(rt, "key")
		ctx := rapid.IntRange(0, 3).Draw(rt, "ctx")
		var shared []*Header
		for i := 0; i < ctx; i++ {
			shared = append(shared, &Header{Key: bs.Draw(rt, "cname"), Value: bs.Draw(rt, "cvalue")})
		}
		n := rapid.IntRange(1, 6).Draw(rt, "records")
		rs := make([]testRec, n)
		for i := range rs {
			rs[i] = testRec{key: key, value: bs.Draw(rt, "value"), headers: append([]*Header(nil), shared...)}
			for j, m := 0, rapid.IntRange(0, 3).Draw(rt, "own"); j < m; j++ {
				rs[i].headers = append(rs[i].headers, &Header{Key: bs.Draw(rt, "name"), Value: bs.Draw(rt, "hv")})
			}
		}
		sig, err := signChunk(k, topic, ctx, rs)
		if err != nil {
			rt.Fatal(err)
		}
		if sig2 := k.Sign(nil, topic, key, rs[0].value, rs[0].headers); n == 1 && ctx == 0 && !bytes.Equal(sig, sig2) {
			rt.Fatalf("Sign %x differs from a chunk of one %x", sig2, sig)
		}
		withSig := cloneRecs(rs)
		last := &withSig[n-1]
		last.headers = append(last.headers, &Header{Key: []byte(HeaderSig), Value: sig})
		if err := verifyChunk(k, topic, sig, withSig); err != nil {
			rt.Fatalf("the chunk as signed: %v", err)
		}
		if err := verifyChunk(other, topic, sig, rs); err == nil {
			rt.Fatal("verified with another key")
		}
		// One change, drawn.
		t2, s2, r2 := topic, bytes.Clone(sig), cloneRecs(rs)
		i := rapid.IntRange(0, n-1).Draw(rt, "which")
		r := &r2[i]
		switch rapid.IntRange(0, 10).Draw(rt, "change") {
		case 0:
			t2 += "x"
		case 1:
			r.key = append(r.key, 0)
		case 2:
			r.value = append(r.value, 'x')
		case 3:
			r.headers = append(r.headers, &Header{Key: []byte(HeaderEventID), Value: []byte("forged")})
		case 4: // a header's value (context or own)
			if len(r.headers) == 0 {
				r.headers = append(r.headers, &Header{Key: []byte("a")})
			} else {
				h := r.headers[rapid.IntRange(0, len(r.headers)-1).Draw(rt, "h")]
				h.Value = append(h.Value, '!')
			}
		case 5: // a header dropped
			if len(r.headers) > 0 {
				r.headers = r.headers[1:]
			} else {
				r.value = append(r.value, 1)
			}
		case 6: // a record dropped
			if n > 1 {
				r2 = append(r2[:i], r2[i+1:]...)
				s2[6]-- // and the count made to match
			} else {
				t2 += "y"
			}
		case 7: // a record added (a copy of one)
			if n < MaxChunk {
				r2 = append(r2, cloneRecs(r2[i:i+1])...)
				s2[6]++
			}
		case 8: // two records swapped
			j := rapid.IntRange(0, n-1).Draw(rt, "other")
			if bytes.Equal(r2[i].value, r2[j].value) {
				r2[i].value = append(r2[i].value, 2)
			} else {
				r2[i], r2[j] = r2[j], r2[i]
			}
		case 9: // the context the signature names
			if ctx > 0 {
				s2[7]--
			} else {
				s2[7]++
			}
		case 10: // the count the signature names
			s2[6]++
		}
		if err := verifyChunk(k, t2, s2, r2); err == nil {
			rt.Fatal("a changed chunk verified")
		}
	})
}

// The agent signs only chunks whose records share their key and context:
// one that does not is refused when signing, and fails verification.
func TestChunkRecordsShareTheirContext(t *testing.T) {
	k := testKey(t, 1)
	host := func(v string) *Header {
		return &Header{Key: []byte(HeaderHostName), Value: []byte(v)}
	}
	for name, rs := range map[string][]testRec{
		"context header": {{key: []byte("a"), value: []byte("1"), headers: []*Header{host("x")}}, {key: []byte("a"), value: []byte("2"), headers: []*Header{host("y")}}},
		"key":            {{key: []byte("a"), value: []byte("1"), headers: []*Header{host("x")}}, {key: []byte("b"), value: []byte("2"), headers: []*Header{host("x")}}},
		"fewer headers":  {{key: []byte("a"), value: []byte("1"), headers: []*Header{host("x")}}, {key: []byte("a"), value: []byte("2")}},
	} {
		if _, err := signChunk(k, "t", 1, rs); err == nil {
			t.Errorf("%s: signed", name)
		}
		good, err := signChunk(k, "t", 1, rs[:1])
		if err != nil {
			t.Fatal(err)
		}
		good[6] = 2
		if err := verifyChunk(k, "t", good, rs); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// A signature the wrong size, of another version, of another key id, or
// covering no records or more than MaxChunk is refused without a
// comparison.
func TestMalformedSignatures(t *testing.T) {
	k := testKey(t, 1)
	rs := []testRec{{value: []byte("line")}}
	sig := k.Sign(nil, "t", nil, []byte("line"), nil)
	for name, bad := range map[string][]byte{
		"empty":      nil,
		"short":      sig[:SigLen-1],
		"long":       append(bytes.Clone(sig), 0),
		"version":    append([]byte{SigVersion + 1}, sig[1:]...),
		"other key":  append(append([]byte{SigVersion}, 9, 9, 9, 9), sig[5:]...),
		"no records": append(append(bytes.Clone(sig[:5]), 0, 0), sig[7:]...),
		"too many":   append(append(bytes.Clone(sig[:5]), MaxChunk>>8, MaxChunk&0xff+1), sig[7:]...),
	} {
		if err := verifyChunk(k, "t", bad, rs); err == nil || errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := verifyChunk(k, "t", sig, rs); err != nil {
		t.Errorf("the record as signed: %v", err)
	}
	if _, err := NewSigningKey(KeyID{1}, make([]byte, 16)); err == nil {
		t.Error("a 16-byte secret was taken")
	}
	id, err := ParseKeyID(KeyID{0xde, 0xad, 0xbe, 0xef}.String())
	if err != nil || id != (KeyID{0xde, 0xad, 0xbe, 0xef}) {
		t.Errorf("key id round trip: %v %v", id, err)
	}
}

// BenchmarkChunk is the agent's signing cost per 200-byte line with its
// usual headers, in chunks of 512 records.
func BenchmarkChunk(b *testing.B) {
	k := testKey(b, 1)
	value := bytes.Repeat([]byte("x"), 199)
	hs := []*Header{{Key: []byte(HeaderHostName), Value: []byte("web-1")}, {Key: []byte(HeaderHostIP), Value: []byte("10.0.0.1")},
		{Key: []byte(HeaderEventID), Value: []byte("9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024")}}
	key := []byte("/var/log/nginx/access.log")
	var c Chunk
	var sig []byte
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if i%512 == 0 {
			if c.Len() > 0 {
				sig, _ = c.AppendSig(sig[:0])
			}
			c.Reset(k, "web_log", 2)
		}
		c.Add(key, value, hs)
	}
}
