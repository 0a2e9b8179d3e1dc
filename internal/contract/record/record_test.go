package record

import (
	"fmt"
	"hash/fnv"
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"pgregory.net/rapid"
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

func TestDecodeForeign(t *testing.T) {
	h := func(k, v string) *Header {
		return &Header{Key: []byte(k), Value: []byte(v)}
	}
	tests := []struct {
		name    string
		headers []*Header
		want    Meta
	}{
		{name: "nil"},
		{name: "empty", headers: []*Header{}},
		{name: "nil header", headers: []*Header{nil, nil}},
		{name: "unrelated", headers: []*Header{h("traceparent", "00-abc"), h("content-type", "json"), {}}},
		{name: "garbage offset", headers: []*Header{h(HeaderOffset, "twelve")}},
		{name: "empty offset", headers: []*Header{h(HeaderOffset, "")}},
		{name: "overflowing offset", headers: []*Header{h(HeaderOffset, "99999999999999999999")}},
		{name: "nil value offset", headers: []*Header{{Key: []byte(HeaderOffset)}}},
		{name: "garbage fields", headers: []*Header{h(HeaderFields, "{not json")}},
		{name: "fields not strings", headers: []*Header{h(HeaderFields, `{"n": 1}`)}},
		{name: "empty flags", headers: []*Header{h(HeaderFlags, "")}},
		{
			name:    "partly ours",
			headers: []*Header{nil, h(HeaderHostName, "h"), h(HeaderOffset, "x1"), h(HeaderFlags, "split"), h("other", "y")},
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
	h := func(k, v string) *Header { return &Header{Key: []byte(k), Value: []byte(v)} }
	id := EventID(NewInstance(), 4096)
	for _, tc := range []struct {
		name      string
		key       string
		headers   []*Header
		path      string
		offset    int64
		hasOffset bool
	}{
		{"current agent", "/var/log/a.log", []*Header{h(HeaderEventID, id)}, "/var/log/a.log", 4096, true},
		{"earlier agent", "/var/log/a.log", []*Header{h(HeaderPath, "/var/log/b.log"), h(HeaderOffset, "7"), h(HeaderEventID, id)}, "/var/log/b.log", 7, true},
		{"other producer", "user-42", []*Header{h("traceparent", "x")}, "", 0, false},
		{"id without an offset", "k", []*Header{h(HeaderEventID, "abc")}, "k", 0, false},
		{"id ending in a dash", "k", []*Header{h(HeaderEventID, "abc-")}, "k", 0, false},
		{"id overflowing", "k", []*Header{h(HeaderEventID, "abc-99999999999999999999")}, "k", 0, false},
	} {
		v := ParseRecord([]byte(tc.key), tc.headers)
		if string(v.Path) != tc.path || v.Offset != tc.offset || v.HasOffset != tc.hasOffset {
			t.Errorf("%s: path %q offset %d/%v, want %q %d/%v", tc.name, v.Path, v.Offset, v.HasOffset, tc.path, tc.offset, tc.hasOffset)
		}
	}
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

// The pipeline-name rule, against the regular expression it replaces.
func TestValidPipelineName(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	rapid.Check(t, func(rt *rapid.T) {
		name := rapid.StringOfN(rapid.SampledFrom([]rune("az09_-A.é \x00")), 0, 70, -1).Draw(rt, "name")
		if got, want := ValidPipelineName(name), re.MatchString(name); got != want {
			rt.Fatalf("%q: %v, want %v", name, got, want)
		}
	})
	for _, n := range []string{"nginx", "a", "0-x_y", strings.Repeat("a", 64)} {
		if !ValidPipelineName(n) {
			t.Errorf("%q refused", n)
		}
	}
	for _, n := range []string{"", "-a", "_a", "A", "a.b", strings.Repeat("a", 65)} {
		if ValidPipelineName(n) {
			t.Errorf("%q accepted", n)
		}
	}
}
