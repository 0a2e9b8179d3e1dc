package kafka

import (
	"bytes"
	"testing"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// The cast shows sarama's headers as they are, nil ones included, and
// shares their memory (what the producer and the gate rely on).
func TestHeadersAreSaramasWithoutCopying(t *testing.T) {
	hs := []*sarama.RecordHeader{{Key: []byte(record.HeaderHostName), Value: []byte("web-1")}, nil, {Key: []byte("k"), Value: nil}}
	got := Headers(hs)
	if len(got) != len(hs) || cap(got) != cap(hs) {
		t.Fatalf("len/cap %d/%d, want %d/%d", len(got), cap(got), len(hs), cap(hs))
	}
	for i := range hs {
		if hs[i] == nil {
			if got[i] != nil {
				t.Fatalf("header %d: nil became %+v", i, got[i])
			}
			continue
		}
		if !bytes.Equal(got[i].Key, hs[i].Key) || !bytes.Equal(got[i].Value, hs[i].Value) {
			t.Fatalf("header %d: %q=%q, want %q=%q", i, got[i].Key, got[i].Value, hs[i].Key, hs[i].Value)
		}
	}
	got[0].Value = []byte("web-2")
	if string(hs[0].Value) != "web-2" {
		t.Fatal("the cast copied the headers")
	}
	if v := record.Parse(got); string(v.HostName) != "web-2" {
		t.Fatalf("parsed host %q", v.HostName)
	}
	if Headers(nil) != nil {
		t.Fatal("nil headers cast to non-nil")
	}
	h := &record.Header{Key: []byte("a"), Value: []byte("b")}
	if s := Header(h); string(s.Key) != "a" || string(s.Value) != "b" {
		t.Fatalf("Header: %+v", s)
	}
}
