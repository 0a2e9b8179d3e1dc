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

// Any change to what a signed record carries (topic, key, value, a
// header's name or value, their order, a header added or removed) fails
// its check, and so does another key; the record as signed passes, also
// with its signature header among the others.
func TestSignatureCoversTheRecord(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SliceOfN(rapid.Byte(), 0, 64)
		topic := rapid.StringN(1, 10, -1).Draw(rt, "topic")
		key, value := bs.Draw(rt, "key"), bs.Draw(rt, "value")
		var hs []*sarama.RecordHeader
		for i, n := 0, rapid.IntRange(0, 5).Draw(rt, "headers"); i < n; i++ {
			hs = append(hs, &sarama.RecordHeader{Key: bs.Draw(rt, "name"), Value: bs.Draw(rt, "hv")})
		}
		sig, _ := k.AppendSig(nil, nil, topic, key, value, hs)
		withSig := append(cloneHeaders(hs), &sarama.RecordHeader{Key: []byte(HeaderSig), Value: sig})
		if _, err := k.Verify(nil, sig, topic, key, value, withSig); err != nil {
			rt.Fatalf("the record as signed: %v", err)
		}
		if _, err := other.Verify(nil, sig, topic, key, value, hs); err == nil {
			rt.Fatal("verified with another key")
		}
		// One change, drawn.
		t2, k2, v2 := topic, bytes.Clone(key), bytes.Clone(value)
		h2 := cloneHeaders(hs)
		switch rapid.IntRange(0, 6).Draw(rt, "change") {
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
		case 6: // a byte moved from a header's value into the next field
			if len(h2) == 0 || len(h2[0].Value) == 0 {
				v2 = append(v2, 0)
			} else {
				h2[0].Value = h2[0].Value[:len(h2[0].Value)-1]
				if len(h2) > 1 {
					h2[1].Key = append([]byte{0}, h2[1].Key...)
				} else {
					v2 = append(v2, 0)
				}
			}
		}
		if _, err := k.Verify(nil, sig, t2, k2, v2, h2); !errors.Is(err, ErrBadSignature) {
			rt.Fatalf("a changed record verified (%v)", err)
		}
	})
}

// A signature the wrong size, of another version or of another key id is
// refused without a comparison.
func TestMalformedSignatures(t *testing.T) {
	k := testKey(t, 1)
	sig, _ := k.AppendSig(nil, nil, "t", nil, []byte("line"), nil)
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"short":     sig[:SigLen-1],
		"long":      append(bytes.Clone(sig), 0),
		"version":   append([]byte{SigVersion + 1}, sig[1:]...),
		"other key": append(append([]byte{SigVersion}, 9, 9, 9, 9), sig[5:]...),
	} {
		if _, err := k.Verify(nil, bad, "t", nil, []byte("line"), nil); err == nil || errors.Is(err, ErrBadSignature) && name != "other key" {
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
// headers.
func BenchmarkSign(b *testing.B) {
	k := testKey(b, 1)
	value := bytes.Repeat([]byte("x"), 200)
	hs := []*sarama.RecordHeader{{Key: []byte(HeaderHostName), Value: []byte("web-1")}, {Key: []byte(HeaderHostIP), Value: []byte("10.0.0.1")},
		{Key: []byte(HeaderEventID), Value: []byte("9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024")}, {Key: []byte(HeaderIndexTime), Value: []byte("1764000000000")}}
	key := []byte("/var/log/nginx/access.log")
	var dst, scratch []byte
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst, scratch = k.AppendSig(dst[:0], scratch, "web_log", key, value, hs)
	}
}
