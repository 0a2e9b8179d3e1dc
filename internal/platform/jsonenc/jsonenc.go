// Package jsonenc appends JSON strings without reflection, replacing
// invalid UTF-8 with U+FFFD so the output is always valid JSON, and
// timestamps in the one layout documents use.
package jsonenc

import (
	"encoding/binary"
	"time"
	"unicode/utf8"
	"unsafe"
)

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string, escaping control characters,
// quotes and backslashes (and U+2028/U+2029), and replacing invalid UTF-8
// with U+FFFD.
func AppendString[S string | []byte](dst []byte, s S) []byte {
	// One implementation over bytes: a string is read in place (never
	// written, not kept).
	var b []byte
	switch v := any(s).(type) {
	case []byte:
		b = v
	case string:
		b = unsafe.Slice(unsafe.StringData(v), len(v))
	}
	return appendString(dst, b)
}

func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight bytes at a time while none needs a look: log lines are
		// mostly plain ASCII.
		for i+8 <= len(s) && plain8(binary.LittleEndian.Uint64(s[i:])) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		var rb [utf8.UTFMax]byte
		r, size := utf8.DecodeRune(rb[:copy(rb[:], s[i:min(i+utf8.UTFMax, len(s))])])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// plain8 reports whether none of the eight bytes in x is a control
// character, a quote, a backslash or non-ASCII.
func plain8(x uint64) bool {
	// A byte below 0x20 borrows into its high bit in x-0x20…; a byte equal
	// to c becomes 0 in x^c… and borrows the same way. (Exact as a yes/no.)
	q, bs := x^('"'*ones), x^('\\'*ones)
	return (x|((x-0x20*ones)&^x)|((q-ones)&^q)|((bs-ones)&^bs))&highs == 0
}

// TimeLayout is how documents write times: UTC, nanoseconds.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendTime appends t in TimeLayout (always UTC, so ending in Z), without
// the quotes; the same bytes as t.UTC().AppendFormat(dst, TimeLayout), a
// few times faster.
func AppendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(dst, TimeLayout)
	}
	h, mi, s := t.Clock()
	ns := t.Nanosecond()
	var b [30]byte
	put := func(at, v, digits int) {
		for i := at + digits - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, y, 4)
	b[4] = '-'
	put(5, int(mo), 2)
	b[7] = '-'
	put(8, d, 2)
	b[10] = 'T'
	put(11, h, 2)
	b[13] = ':'
	put(14, mi, 2)
	b[16] = ':'
	put(17, s, 2)
	b[19] = '.'
	put(20, ns, 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}
