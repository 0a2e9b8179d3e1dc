package record

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// fixedInstance is 00 01 02 ... 0f.
func fixedInstance() Instance {
	var i Instance
	for k := range i {
		i[k] = byte(k)
	}
	return i
}

var eventIDFormat = regexp.MustCompile(`^[0-9a-f]{32}-(0|[1-9][0-9]*)$`)

func TestEventIDFormat(t *testing.T) {
	fixed := fixedInstance()
	var ones Instance
	for k := range ones {
		ones[k] = 0xff
	}
	tests := []struct {
		inst   Instance
		offset int64
		want   string
	}{
		{fixed, 0, "000102030405060708090a0b0c0d0e0f-0"},
		{fixed, 42, "000102030405060708090a0b0c0d0e0f-42"},
		{fixed, 1 << 40, "000102030405060708090a0b0c0d0e0f-1099511627776"},
		{fixed, math.MaxInt64, "000102030405060708090a0b0c0d0e0f-9223372036854775807"},
		{Instance{}, 7, "00000000000000000000000000000000-7"},
		{ones, 1, "ffffffffffffffffffffffffffffffff-1"},
	}
	for _, tc := range tests {
		got := EventID(tc.inst, tc.offset)
		if got != tc.want {
			t.Errorf("EventID(%s, %d) = %q, want %q", tc.inst, tc.offset, got, tc.want)
		}
		if !eventIDFormat.MatchString(got) {
			t.Errorf("EventID(%s, %d) = %q does not match %s", tc.inst, tc.offset, got, eventIDFormat)
		}
		// Same inputs, same id, every time and both ways.
		if again := EventID(tc.inst, tc.offset); again != got {
			t.Errorf("EventID not stable: %q then %q", got, again)
		}
		if app := AppendEventID(nil, tc.inst, tc.offset); string(app) != got {
			t.Errorf("AppendEventID(nil) = %q, EventID = %q", app, got)
		}
		// Appending keeps what is already in dst.
		if app := AppendEventID([]byte("id:"), tc.inst, tc.offset); string(app) != "id:"+got {
			t.Errorf("AppendEventID(prefix) = %q, want %q", app, "id:"+got)
		}
		want := fmt.Sprintf("%x-%d", tc.inst[:], tc.offset)
		if got != want {
			t.Errorf("EventID = %q, documented format gives %q", got, want)
		}
	}
}

func TestEventIDUnique(t *testing.T) {
	insts := []Instance{{}, fixedInstance(), NewInstance(), NewInstance()}
	// Offsets whose decimal forms are prefixes of each other.
	offsets := []int64{0, 1, 10, 11, 100, 101, 110, 1 << 32, math.MaxInt64}
	seen := map[string]string{}
	for _, inst := range insts {
		for _, off := range offsets {
			id := EventID(inst, off)
			what := fmt.Sprintf("(%s, %d)", inst, off)
			if prev, dup := seen[id]; dup {
				t.Errorf("EventID%s = EventID%s = %q", what, prev, id)
			}
			seen[id] = what
		}
	}
}

func TestNewInstance(t *testing.T) {
	seen := map[Instance]bool{}
	for range 1000 {
		i := NewInstance()
		if i.IsZero() {
			t.Fatal("NewInstance returned the zero instance")
		}
		if seen[i] {
			t.Fatalf("NewInstance repeated %s", i)
		}
		seen[i] = true
	}
	if !(Instance{}).IsZero() {
		t.Fatal("zero Instance is not IsZero")
	}
}

func TestParseInstance(t *testing.T) {
	for _, i := range []Instance{{}, fixedInstance(), NewInstance(), NewInstance()} {
		s := i.String()
		if len(s) != 32 || strings.ToLower(s) != s {
			t.Errorf("String() = %q, want 32 lower-case hex digits", s)
		}
		got, err := ParseInstance(s)
		if err != nil || got != i {
			t.Errorf("ParseInstance(%q) = %v, %v; want %v", s, got, err, i)
		}
	}
	good := fixedInstance().String()
	for _, bad := range []string{
		"",
		"00",
		good[:31],
		good[:30],
		good + "0",
		good + "00",
		"0x" + good[2:],
		"g" + good[1:],
		" " + good[1:],
		good[:16] + "-" + good[17:],
		"000102030405060708090a0b0c0d0e0f-42", // an event id is not an instance
	} {
		got, err := ParseInstance(bad)
		if err == nil {
			t.Errorf("ParseInstance(%q) = %v, want an error", bad, got)
		}
		if !got.IsZero() {
			t.Errorf("ParseInstance(%q) returned non-zero %v with its error", bad, got)
		}
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f    Flags
		want string
	}{
		{0, ""},
		{Multiline, FlagMultiline},
		{Split, FlagSplit},
		{Multiline | Split, FlagMultiline + "," + FlagSplit},
	}
	for _, tc := range tests {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("Flags(%d).String() = %q, want %q", tc.f, got, tc.want)
		}
	}
	if FlagMultiline != "multiline" || FlagSplit != "split" {
		t.Errorf("flag names changed: %q, %q", FlagMultiline, FlagSplit)
	}
}

func ptrs(hs []sarama.RecordHeader) []*sarama.RecordHeader {
	out := make([]*sarama.RecordHeader, len(hs))
	for i := range hs {
		out[i] = &hs[i]
	}
	return out
}

func headerMap(t *testing.T, hs []sarama.RecordHeader) map[string]string {
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
	inst := NewInstance()
	tests := []struct {
		name   string
		fields map[string]string
		offset int64
		flags  Flags
		want   Meta // EventID is filled in below
	}{
		{
			name:   "all",
			fields: map[string]string{"env": "prod"},
			offset: 12345,
			flags:  Multiline | Split,
			want: Meta{
				Offset: 12345, HasOffset: true,
				Flags:  []string{FlagMultiline, FlagSplit},
				Fields: map[string]string{"env": "prod"},
			},
		},
		{
			name:   "plain line",
			offset: 0,
			want:   Meta{Offset: 0, HasOffset: true},
		},
		{
			name:   "multiline only, several fields",
			fields: map[string]string{"env": "prod", "team": "pay\"ments", "dc": "ä"},
			offset: 1 << 40,
			flags:  Multiline,
			want: Meta{
				Offset: 1 << 40, HasOffset: true,
				Flags:  []string{FlagMultiline},
				Fields: map[string]string{"env": "prod", "team": "pay\"ments", "dc": "ä"},
			},
		},
		{
			name:   "split, largest offset",
			fields: map[string]string{},
			offset: math.MaxInt64,
			flags:  Split,
			want:   Meta{Offset: math.MaxInt64, HasOffset: true, Flags: []string{FlagSplit}},
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
			want.EventID = EventID(inst, tc.offset)
			if got := Decode(src.Key(), ptrs(hs)); !reflect.DeepEqual(got, want) {
				t.Errorf("Decode(Headers()) =\n%+v\nwant\n%+v", got, want)
			}

			// The raw values, as another consumer (kcat) sees them.
			m := headerMap(t, hs)
			// The path (the key) and the offset (in the id) are not
			// repeated in headers of their own.
			for _, k := range []string{HeaderOffset, HeaderPath} {
				if v, ok := m[k]; ok {
					t.Errorf("header %s = %q sent: it repeats the key or the id", k, v)
				}
			}
			if got, want := m[HeaderEventID], EventID(inst, tc.offset); got != want {
				t.Errorf("%s = %q, want %q", HeaderEventID, got, want)
			}
			if _, ok := m[HeaderFlags]; ok != (tc.flags != 0) {
				t.Errorf("%s present = %v with flags %v", HeaderFlags, ok, tc.flags)
			}
			if _, ok := m[HeaderFields]; ok != (len(tc.fields) > 0) {
				t.Errorf("%s present = %v with fields %v", HeaderFields, ok, tc.fields)
			}

			// Encoding again, or another event of the same source, does
			// not disturb the first encoding or the shared static headers.
			before := headerMap(t, hs)
			ev2 := &Event{Source: src, Offset: tc.offset + 1, Instance: NewInstance(), Flags: Multiline}
			hs2 := ev2.Headers()
			ev.Headers()
			if after := headerMap(t, hs); !reflect.DeepEqual(before, after) {
				t.Errorf("headers changed after more encodings:\n%v\n%v", before, after)
			}
			if got := Decode(src.Key(), ptrs(hs2)); got.EventID != EventID(ev2.Instance, ev2.Offset) || got.HostName != "web-1" {
				t.Errorf("second event decodes to %+v", got)
			}
			if n := len(src.static); n != 2+min(len(tc.fields), 1) {
				t.Errorf("source has %d static headers after encoding", n)
			}
		})
	}
}

func TestDecodeForeign(t *testing.T) {
	h := func(k, v string) *sarama.RecordHeader {
		return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)}
	}
	tests := []struct {
		name    string
		headers []*sarama.RecordHeader
		want    Meta
	}{
		{name: "nil"},
		{name: "empty", headers: []*sarama.RecordHeader{}},
		{name: "nil header", headers: []*sarama.RecordHeader{nil, nil}},
		{name: "unrelated", headers: []*sarama.RecordHeader{h("traceparent", "00-abc"), h("content-type", "json"), {}}},
		{name: "garbage offset", headers: []*sarama.RecordHeader{h(HeaderOffset, "twelve")}},
		{name: "empty offset", headers: []*sarama.RecordHeader{h(HeaderOffset, "")}},
		{name: "overflowing offset", headers: []*sarama.RecordHeader{h(HeaderOffset, "99999999999999999999")}},
		{name: "nil value offset", headers: []*sarama.RecordHeader{{Key: []byte(HeaderOffset)}}},
		{name: "garbage fields", headers: []*sarama.RecordHeader{h(HeaderFields, "{not json")}},
		{name: "fields not strings", headers: []*sarama.RecordHeader{h(HeaderFields, `{"n": 1}`)}},
		{name: "empty flags", headers: []*sarama.RecordHeader{h(HeaderFlags, "")}},
		{
			name:    "partly ours",
			headers: []*sarama.RecordHeader{nil, h(HeaderHostName, "h"), h(HeaderOffset, "x1"), h(HeaderFlags, "split"), h("other", "y")},
			want:    Meta{HostName: "h", Flags: []string{"split"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decode(nil, tc.headers); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Decode = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Records from earlier agents (log.file.path and log.offset headers) and
// from other producers read as before; an id that does not end in an
// offset gives none.
func TestParseRecordDerivesPathAndOffset(t *testing.T) {
	h := func(k, v string) *sarama.RecordHeader { return &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)} }
	id := EventID(NewInstance(), 4096)
	for _, tc := range []struct {
		name      string
		key       string
		headers   []*sarama.RecordHeader
		path      string
		offset    int64
		hasOffset bool
	}{
		{"current agent", "/var/log/a.log", []*sarama.RecordHeader{h(HeaderEventID, id)}, "/var/log/a.log", 4096, true},
		{"earlier agent", "/var/log/a.log", []*sarama.RecordHeader{h(HeaderPath, "/var/log/b.log"), h(HeaderOffset, "7"), h(HeaderEventID, id)}, "/var/log/b.log", 7, true},
		{"other producer", "user-42", []*sarama.RecordHeader{h("traceparent", "x")}, "", 0, false},
		{"id without an offset", "k", []*sarama.RecordHeader{h(HeaderEventID, "abc")}, "k", 0, false},
		{"id ending in a dash", "k", []*sarama.RecordHeader{h(HeaderEventID, "abc-")}, "k", 0, false},
		{"id overflowing", "k", []*sarama.RecordHeader{h(HeaderEventID, "abc-99999999999999999999")}, "k", 0, false},
	} {
		v := ParseRecord([]byte(tc.key), tc.headers)
		if string(v.Path) != tc.path || v.Offset != tc.offset || v.HasOffset != tc.hasOffset {
			t.Errorf("%s: path %q offset %d/%v, want %q %d/%v", tc.name, v.Path, v.Offset, v.HasOffset, tc.path, tc.offset, tc.hasOffset)
		}
	}
}

// recordSize is a record's size in a Kafka v2 batch, before compression
// (attributes, timestamp and offset deltas of one byte each).
func recordSize(key, value []byte, hs []sarama.RecordHeader) int {
	vl := func(n int) int { return len(binary.AppendVarint(nil, int64(n))) }
	body := 1 + 1 + 1 + vl(len(key)) + len(key) + vl(len(value)) + len(value) + vl(len(hs))
	for _, h := range hs {
		body += vl(len(h.Key)) + len(h.Key) + vl(len(h.Value)) + len(h.Value)
	}
	return vl(body) + body
}

func BenchmarkHeaders(b *testing.B) {
	src := NewSource("logs", "/var/log/app/application.log", "web-1.example.com", "10.0.0.7", map[string]string{"env": "prod", "team": "payments"})
	ev := &Event{Source: src, Value: []byte("a log line"), Offset: 123456789, Instance: NewInstance(), Flags: Multiline}
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
	line := &Event{Source: plain, Value: make([]byte, 199), Offset: 123456789, Instance: NewInstance(), Stamp: time.Now()}
	b.ReportMetric(float64(recordSize(plain.Key(), line.Value, line.Headers())-len(line.Value)), "overhead-bytes/line")
}

func TestDocIDCarriesTheHost(t *testing.T) {
	// A host cloned with its data_dir draws the same event ids; its
	// documents must not land on the original's.
	id := EventID(NewInstance(), 1024)
	a := DocID([]byte("web-1"), []byte("10.0.0.1"), []byte(id))
	if again := DocID([]byte("web-1"), []byte("10.0.0.1"), []byte(id)); again != a {
		t.Fatalf("DocID not stable: %q vs %q", a, again)
	}
	for _, other := range [][2]string{{"web-2", "10.0.0.1"}, {"web-1", "10.0.0.2"}, {"web-11", "0.0.0.1"}} {
		if b := DocID([]byte(other[0]), []byte(other[1]), []byte(id)); b == a {
			t.Fatalf("hosts %v and web-1/10.0.0.1 share the _id %q", other, a)
		}
	}
	if !strings.HasSuffix(a, "-"+id) || len(a) != 9+len(id) {
		t.Fatalf("DocID %q: want <8 hex>-%s", a, id)
	}
}

// DocID's inline hash is FNV-1a over name, NUL, IP, as hash/fnv computes
// it: ids stored by earlier versions stay the same.
func TestDocIDIsFNV(t *testing.T) {
	for _, c := range [][3]string{{"web-1", "10.0.0.1", "abc-1"}, {"", "", "x"}, {"h", "", strings.Repeat("e", 300)}, {"名前", "2001:db8::1", "id"}} {
		h := fnv.New32a()
		h.Write([]byte(c[0]))
		h.Write([]byte{0})
		h.Write([]byte(c[1]))
		want := fmt.Sprintf("%08x-%s", h.Sum32(), c[2])
		if got := DocID([]byte(c[0]), []byte(c[1]), []byte(c[2])); got != want {
			t.Errorf("%q: %s, want %s", c, got, want)
		}
	}
}
