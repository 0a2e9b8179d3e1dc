package record

import (
	"bytes"
	"errors"
	"testing"

	"pgregory.net/rapid"
)

func testKey(t testing.TB, id byte) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(KeyID{id}, bytes.Repeat([]byte{id}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Any change to what a signed record carries (topic, key, value, a
// header's name or value, their order, a header added or removed) fails
// its check, and so does another key; the record as signed passes.
func TestSignatureCoversTheRecord(t *testing.T) {
	k, other := testKey(t, 1), testKey(t, 2)
	s := NewSigner(k)
	rapid.Check(t, func(rt *rapid.T) {
		bs := rapid.SliceOfN(rapid.Byte(), 0, 64)
		topic := rapid.StringN(1, 10, -1).Draw(rt, "topic")
		key, value := bs.Draw(rt, "key"), bs.Draw(rt, "value")
		var hs []Header
		for i, n := 0, rapid.IntRange(0, 5).Draw(rt, "headers"); i < n; i++ {
			hs = append(hs, Header{Key: bs.Draw(rt, "name"), Value: bs.Draw(rt, "hv")})
		}
		sig := s.Append(nil, topic, key, value, hs)
		if _, err := k.Verify(nil, sig, topic, key, value, hs); err != nil {
			rt.Fatalf("the record as signed: %v", err)
		}
		if _, err := other.Verify(nil, sig, topic, key, value, hs); err == nil {
			rt.Fatal("verified with another key")
		}
		// One change, drawn.
		t2, k2, v2 := topic, bytes.Clone(key), bytes.Clone(value)
		h2 := append([]Header(nil), hs...)
		switch rapid.IntRange(0, 5).Draw(rt, "change") {
		case 0:
			t2 += "x"
		case 1:
			k2 = append(k2, 0)
		case 2:
			v2 = append(v2, 'x')
		case 3:
			h2 = append(h2, Header{Key: []byte(HeaderEventID), Value: []byte("forged")})
		case 4:
			if len(h2) == 0 {
				h2 = append(h2, Header{Key: []byte("a")})
			} else {
				h2[0].Value = append(bytes.Clone(h2[0].Value), '!')
			}
		case 5:
			if len(v2) == 0 {
				v2 = []byte{0}
			} else {
				v2[0] ^= 1
			}
		}
		if _, err := k.Verify(nil, sig, t2, k2, v2, h2); !errors.Is(err, ErrBadSignature) {
			rt.Fatalf("a changed record verified (%v)", err)
		}
	})
}

// A signer never gives two records the same nonce.
func TestNoncesDoNotRepeat(t *testing.T) {
	s := NewSigner(testKey(t, 1))
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		_, nonce, _, err := ParseSig(s.Append(nil, "t", nil, []byte("same"), nil))
		if err != nil {
			t.Fatal(err)
		}
		if seen[string(nonce)] {
			t.Fatalf("nonce %x used twice", nonce)
		}
		seen[string(nonce)] = true
	}
	s.ctr = ^uint32(0) - 1
	a := s.Append(nil, "t", nil, nil, nil)
	b := s.Append(nil, "t", nil, nil, nil) // the counter wraps: a new prefix
	if bytes.Equal(a[5:17], b[5:17]) || bytes.Equal(a[5:13], b[5:13]) {
		t.Fatalf("nonces around the counter's wrap: %x %x", a[5:17], b[5:17])
	}
}

// BenchmarkSign is the agent's cost per 200-byte line with its usual
// headers.
func BenchmarkSign(b *testing.B) {
	s := NewSigner(testKey(b, 1))
	value := bytes.Repeat([]byte("x"), 200)
	hs := []Header{{[]byte(HeaderHostName), []byte("web-1")}, {[]byte(HeaderHostIP), []byte("10.0.0.1")},
		{[]byte(HeaderEventID), []byte("9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024")}, {[]byte(HeaderIndexTime), []byte("1764000000000")}}
	key := []byte("/var/log/nginx/access.log")
	var dst []byte
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		dst = s.Append(dst[:0], "web_log", key, value, hs)
	}
}
