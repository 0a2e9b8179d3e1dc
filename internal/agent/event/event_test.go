package event

import (
	"encoding/binary"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
)

func ptrs(hs []record.Header) []*record.Header {
	out := make([]*record.Header, len(hs))
	for i := range hs {
		out[i] = &hs[i]
	}
	return out
}

func headerMap(t *testing.T, hs []record.Header) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, h := range hs {
		if _, dup := m[string(h.Key)]; dup {
			t.Errorf("header %q appears twice", h.Key)
		}
		m[string(h.Key)] = string(h.Value)
	}
	return m
}

func TestHeadersRoundTrip(t *testing.T) {
	inst := record.NewInstance()
	tests := []struct {
		name   string
		fields map[string]string
		offset int64
		flags  record.Flags
		want   record.Meta // record.EventID is filled in below
	}{
		{
			name:   "all",
			fields: map[string]string{"env": "prod"},
			offset: 12345,
			flags:  record.Multiline | record.Split,
			want: record.Meta{
				Offset: 12345, HasOffset: true,
				Flags:  []string{record.FlagMultiline, record.FlagSplit},
				Fields: map[string]string{"env": "prod"},
			},
		},
		{
			name:   "plain line",
			offset: 0,
			want:   record.Meta{Offset: 0, HasOffset: true},
		},
		{
			name:   "multiline only, several fields",
			fields: map[string]string{"env": "prod", "team": "pay\"ments", "dc": "ä"},
			offset: 1 << 40,
			flags:  record.Multiline,
			want: record.Meta{
				Offset: 1 << 40, HasOffset: true,
				Flags:  []string{record.FlagMultiline},
				Fields: map[string]string{"env": "prod", "team": "pay\"ments", "dc": "ä"},
			},
		},
		{
			name:   "split, largest offset",
			fields: map[string]string{},
			offset: math.MaxInt64,
			flags:  record.Split,
			want:   record.Meta{Offset: math.MaxInt64, HasOffset: true, Flags: []string{record.FlagSplit}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := NewSource("logs", "/var/log/app.log", "web-1", "10.0.0.7", tc.fields)
			if string(src.Key()) != "/var/log/app.log" {
				t.Errorf("Key() = %q, want the path", src.Key())
			}
			ev := &Event{Source: src, Value: []byte("line"), Offset: tc.offset, Instance: inst, Flags: tc.flags, Time: time.Now()}
			hs := ev.Headers()
			if n := ev.HeaderCount(); n != len(hs) || n > MaxHeaders {
				t.Errorf("HeaderCount() = %d, Headers() has %d (MaxHeaders %d)", n, len(hs), MaxHeaders)
			}
			stamped := *ev
			stamped.Stamp = time.UnixMilli(1700000000123)
			if n, hs := stamped.HeaderCount(), stamped.Headers(); n != len(hs) || n > MaxHeaders {
				t.Errorf("stamped: HeaderCount() = %d, Headers() has %d (MaxHeaders %d)", n, len(hs), MaxHeaders)
			}

			want := tc.want
			want.HostName, want.HostIP, want.Path = "web-1", "10.0.0.7", "/var/log/app.log"
			want.EventID = record.EventID(inst, tc.offset)
			if got := record.Decode(src.Key(), ptrs(hs)); !reflect.DeepEqual(got, want) {
				t.Errorf("record.Decode(Headers()) =\n%+v\nwant\n%+v", got, want)
			}

			// The raw values, as another consumer (kcat) sees them.
			m := headerMap(t, hs)
			// The path (the key) and the offset (in the id) are not
			// repeated in headers of their own.
			for _, k := range []string{record.HeaderOffset, record.HeaderPath} {
				if v, ok := m[k]; ok {
					t.Errorf("header %s = %q sent: it repeats the key or the id", k, v)
				}
			}
			if got, want := m[record.HeaderEventID], record.EventID(inst, tc.offset); got != want {
				t.Errorf("%s = %q, want %q", record.HeaderEventID, got, want)
			}
			if _, ok := m[record.HeaderFlags]; ok != (tc.flags != 0) {
				t.Errorf("%s present = %v with flags %v", record.HeaderFlags, ok, tc.flags)
			}
			if _, ok := m[record.HeaderFields]; ok != (len(tc.fields) > 0) {
				t.Errorf("%s present = %v with fields %v", record.HeaderFields, ok, tc.fields)
			}

			// Encoding again, or another event of the same source, does
			// not disturb the first encoding or the shared static headers.
			before := headerMap(t, hs)
			ev2 := &Event{Source: src, Offset: tc.offset + 1, Instance: record.NewInstance(), Flags: record.Multiline}
			hs2 := ev2.Headers()
			ev.Headers()
			if after := headerMap(t, hs); !reflect.DeepEqual(before, after) {
				t.Errorf("headers changed after more encodings:\n%v\n%v", before, after)
			}
			if got := record.Decode(src.Key(), ptrs(hs2)); got.EventID != record.EventID(ev2.Instance, ev2.Offset) || got.HostName != "web-1" {
				t.Errorf("second event decodes to %+v", got)
			}
			if n := len(src.static); n != 2+min(len(tc.fields), 1) {
				t.Errorf("source has %d static headers after encoding", n)
			}
		})
	}
}

// recordSize is a record's size in a Kafka v2 batch, before compression
// (attributes, timestamp and offset deltas of one byte each).
func recordSize(key, value []byte, hs []record.Header) int {
	vl := func(n int) int { return len(binary.AppendVarint(nil, int64(n))) }
	body := 1 + 1 + 1 + vl(len(key)) + len(key) + vl(len(value)) + len(value) + vl(len(hs))
	for _, h := range hs {
		body += vl(len(h.Key)) + len(h.Key) + vl(len(h.Value)) + len(h.Value)
	}
	return vl(body) + body
}

func BenchmarkHeaders(b *testing.B) {
	src := NewSource("logs", "/var/log/app/application.log", "web-1.example.com", "10.0.0.7", map[string]string{"env": "prod", "team": "payments"})
	ev := &Event{Source: src, Value: []byte("a log line"), Offset: 123456789, Instance: record.NewInstance(), Flags: record.Multiline}
	b.ReportAllocs()
	for b.Loop() {
		ev.Offset++
		if hs := ev.Headers(); len(hs) != 5 {
			b.Fatalf("%d headers", len(hs))
		}
	}
	// What a 200-byte line costs on the wire besides itself, with the
	// stamp and no fields (the bench's collect entry).
	plain := NewSource("logs", "/var/log/app/application.log", "web-1.example.com", "10.0.0.7", nil)
	line := &Event{Source: plain, Value: make([]byte, 199), Offset: 123456789, Instance: record.NewInstance(), Stamp: time.Now()}
	b.ReportMetric(float64(recordSize(plain.Key(), line.Value, line.Headers())-len(line.Value)), "overhead-bytes/line")
}

// A source names its agent in every record, among the headers a signed
// chunk shares, and its fields go where the entry says: the most headers
// an event then carries is what the producer sizes for.
func TestSourceNamesItsAgentAndPlacesItsFields(t *testing.T) {
	for _, root := range []bool{false, true} {
		src := NewSource("logs", "/var/log/app.log", "web-1", "10.0.0.7", map[string]string{"service": "shop"}).
			FieldsUnderRoot(root).WithAgent("0f8e3b52-6e0d-4c8a-9d43-9f1f0c7e2a11", "1.4.0").WithPipeline("nginx")
		e := &Event{Source: src, Offset: 7, Instance: record.NewInstance(), Flags: record.Multiline | record.Split, Stamp: time.Unix(1, 0)}
		hs := e.Headers()
		if len(hs) != e.HeaderCount() || len(hs)+1 > MaxHeaders {
			t.Fatalf("%d headers, HeaderCount %d, MaxHeaders %d (with the signature)", len(hs), e.HeaderCount(), MaxHeaders)
		}
		v := record.ParseRecord(src.Key(), ptrs(hs))
		if string(v.AgentID) != "0f8e3b52-6e0d-4c8a-9d43-9f1f0c7e2a11" || string(v.AgentVersion) != "1.4.0" {
			t.Errorf("agent %q %q", v.AgentID, v.AgentVersion)
		}
		if string(v.Fields) != `{"service":"shop"}` || v.RootFields != root {
			t.Errorf("root %v: fields %s, root %v", root, v.Fields, v.RootFields)
		}
		m := headerMap(t, hs)
		if _, ok := m[record.HeaderAgentID]; !ok || src.ContextHeaders() < 6 {
			t.Errorf("the agent's id is not among the %d context headers", src.ContextHeaders())
		}
	}
	// An agent without an id (tests, other tools) adds nothing.
	src := NewSource("logs", "/a", "h", "1.2.3.4", nil).WithAgent("", "1.4.0")
	if n := src.ContextHeaders(); n != 2 {
		t.Errorf("%d context headers, want host name and ip", n)
	}
}
