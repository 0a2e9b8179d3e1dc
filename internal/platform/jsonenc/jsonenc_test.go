package jsonenc

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// reference is encoding/json's string encoding (without HTML escaping,
// which documents do not need), which replaces invalid UTF-8 with U+FFFD
// and escapes U+2028/U+2029 as AppendString does; it writes \b and \f
// where AppendString writes \u0008 and \u000c.
func reference(s []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		panic(err)
	}
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	out = bytes.ReplaceAll(out, []byte(`\\`), []byte{0}) // keep an escaped backslash out of the way
	out = bytes.ReplaceAll(out, []byte(`\b`), []byte(`\u0008`))
	out = bytes.ReplaceAll(out, []byte(`\f`), []byte(`\u000c`))
	return bytes.ReplaceAll(out, []byte{0}, []byte(`\\`))
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "plain ascii line of a log, long enough for the eight-byte path",
		`quote " in the middle of a long line`, `back\slash at byte 9`, "tab\there", "new\nline after eight",
		"\x00\x01\x1f\x7f control", "ünïcödé and 日本語 among ascii bytes", "\xff\xfe invalid", "abcdefg\xff",
		"line\u2028sep\u2029", "abcdefgh\"", "abcdefgh\\", "12345678\x19", "1234567\x80", "\b\f and \\f",
	} {
		if got, want := AppendString(nil, []byte(s)), reference([]byte(s)); !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
		if got, want := AppendString(nil, s), reference([]byte(s)); !bytes.Equal(got, want) {
			t.Errorf("string %q:\n got %s\nwant %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add([]byte("abcdefgh\"ijklmnop\\qrstuvwx\x01yz"))
	f.Add([]byte("日本語\xffabcdefghij"))
	f.Fuzz(func(t *testing.T, s []byte) {
		got := AppendString(nil, s)
		if want := reference(s); !bytes.Equal(got, want) {
			t.Fatalf("%q:\n got %s\nwant %s", s, got, want)
		}
		if !utf8.Valid(got) || !json.Valid(got) {
			t.Fatalf("%q: output %q is not valid JSON", s, got)
		}
	})
}

func TestAppendTimeMatchesAppendFormat(t *testing.T) {
	loc := time.FixedZone("x", -7*3600-30*60)
	for _, tm := range []time.Time{
		time.Date(2019, 11, 23, 10, 11, 12, 0, time.UTC),
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, loc),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 5, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Unix(0, 0), time.Now(),
	} {
		if got, want := AppendTime(nil, tm), tm.UTC().AppendFormat(nil, TimeLayout); !bytes.Equal(got, want) {
			t.Errorf("%v: got %s, want %s", tm, got, want)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := []byte(`203.0.113.9 - alice [23/Nov/2019:10:11:12 +0100] "GET /api/items?id=42 HTTP/1.1" 404 512 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"`)
	b.SetBytes(int64(len(s)))
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf = AppendString(buf[:0], s)
	}
}

func BenchmarkAppendTime(b *testing.B) {
	tm := time.Now()
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf = AppendTime(buf[:0], tm)
	}
}
