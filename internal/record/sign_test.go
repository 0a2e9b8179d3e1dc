package record

import (
	"bytes"
	"errors"
	"testing"

	"github.com/IBM/sarama"
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

func cloneHeaders(hs []*sarama.RecordHeader) []*sarama.RecordHeader {
	out := make([]*sarama.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = &sarama.RecordHeader{Key: bytes.Clone(h.Key), Value: bytes.Clone(h.Value)}
	}
	return out
}

// The agent's way (a Context per file, then each record) and the one-shot
// way give the same signature for every record and split; any change to
// what a signed record carries (topic, key, value, a header's name or
// value, a header added, dropped or moved across the value, the split the
// signature names) fails its check, and so does another key; the record as
// signed passes, also with its signature header among the others.
func TestSignatureCoversTheRecord(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SliceOfN(rapid.Byte(), 0, 64)
		topic := rapid.StringN(1, 10, -1).Draw(rt, "topic")
		key, value := bs.Draw(rt, "key"), bs.Draw(rt, "value")
		var hs []*sarama.RecordHeader
		for i, m := 0, rapid.IntRange(0, 6).Draw(rt, "headers"); i < m; i++ {
			hs = append(hs, &sarama.RecordHeader{Key: bs.Draw(rt, "name"), Value: bs.Draw(rt, "hv")})
		}
		n := rapid.IntRange(0, len(hs)).Draw(rt, "n")
		sig, err := k.Sign(nil, topic, key, value, n, hs)
		if err != nil {
			rt.Fatal(err)
		}
		static := make([]sarama.RecordHeader, n)
		for i := range static {
			static[i] = *hs[i]
		}
		streamed, _ := k.NewContext(topic, key, static).AppendSig(nil, nil, value, hs[n:])
		if !bytes.Equal(streamed, sig) {
			rt.Fatalf("the agent's signature %x differs from the one-shot %x", streamed, sig)
		}
		withSig := append(cloneHeaders(hs), &sarama.RecordHeader{Key: []byte(HeaderSig), Value: sig})
		if _, err := k.Verify(nil, sig, topic, key, value, withSig); err != nil {
			rt.Fatalf("the record as signed: %v", err)
		}
		if _, err := other.Verify(nil, sig, topic, key, value, hs); err == nil {
			rt.Fatal("verified with another key")
		}
		// One change, drawn.
		t2, k2, v2, s2 := topic, bytes.Clone(key), bytes.Clone(value), bytes.Clone(sig)
		h2 := cloneHeaders(hs)
		switch rapid.IntRange(0, 7).Draw(rt, "change") {
		case 0:
			t2 += "x"
		case 1:
			k2 = append(k2, 0)
		case 2:
			v2 = append(v2, 'x')
		case 3:
			h2 = append(h2, &sarama.RecordHeader{Key: []byte(HeaderEventID), Value: []byte("forged")})
		case 4:
			if len(h2) == 0 {
				h2 = append(h2, &sarama.RecordHeader{Key: []byte("a")})
			} else {
				h2[0].Value = append(h2[0].Value, '!')
			}
		case 5:
			if len(v2) == 0 {
				v2 = []byte{0}
			} else {
				v2[0] ^= 1
			}
		case 6: // the split moved: a header crosses the value
			if n < len(hs) {
				s2[5]++
			} else if n > 0 {
				s2[5]--
			} else {
				v2 = append(v2, 1)
			}
		case 7: // a header dropped
			if len(h2) > 0 {
				h2 = h2[1:]
			} else {
				t2 += "y"
			}
		}
		if _, err := k.Verify(nil, s2, t2, k2, v2, h2); err == nil {
			rt.Fatal("a changed record verified")
		}
	})
}

// A signature the wrong size, of another version or of another key id is
// refused without a comparison.
func TestMalformedSignatures(t *testing.T) {
	k := testKey(t, 1)
	sig, err := k.Sign(nil, "t", nil, []byte("line"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string][]byte{
		"empty":        nil,
		"short":        sig[:SigLen-1],
		"long":         append(bytes.Clone(sig), 0),
		"version":      append([]byte{SigVersion + 1}, sig[1:]...),
		"other key":    append(append([]byte{SigVersion}, 9, 9, 9, 9), sig[5:]...),
		"more headers": append(append([]byte(nil), sig[:5]...), append([]byte{3}, sig[6:]...)...),
	} {
		if _, err := k.Verify(nil, bad, "t", nil, []byte("line"), nil); err == nil || errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := NewSigningKey(KeyID{1}, make([]byte, 16)); err == nil {
		t.Error("a 16-byte secret was taken")
	}
	id, err := ParseKeyID(KeyID{0xde, 0xad, 0xbe, 0xef}.String())
	if err != nil || id != (KeyID{0xde, 0xad, 0xbe, 0xef}) {
		t.Errorf("key id round trip: %v %v", id, err)
	}
}

// BenchmarkSign is the agent's cost per 200-byte line with its usual
// headers (host name and IP absorbed once per file).
func BenchmarkSign(b *testing.B) {
	k := testKey(b, 1)
	value := bytes.Repeat([]byte("x"), 200)
	static := []sarama.RecordHeader{{Key: []byte(HeaderHostName), Value: []byte("web-1")}, {Key: []byte(HeaderHostIP), Value: []byte("10.0.0.1")}}
	rest := []*sarama.RecordHeader{{Key: []byte(HeaderEventID), Value: []byte("9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024")}, {Key: []byte(HeaderIndexTime), Value: []byte("1764000000000")}}
	c := k.NewContext("web_log", []byte("/var/log/nginx/access.log"), static)
	var dst, scratch []byte
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst, scratch = c.AppendSig(dst[:0], scratch, value, rest)
	}
}
