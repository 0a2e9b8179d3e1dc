// Package termsafe keeps control characters from reaching a terminal:
// what the daemons and logctl print to people comes partly from etcd, Kafka
// and the agents' files.
package termsafe

import (
	"fmt"
	"io"
	"unicode/utf8"
)

// Writer escapes terminal control characters on their way to a
// terminal: paths, host names, reasons and config values come from etcd
// and from whoever wrote the agents' files, and an ESC or OSC sequence in
// one (a path named "\x1b]0;pwned\a\x1bc") would retitle or reset the
// operator's terminal. Newlines and tabs pass; every other C0 control,
// DEL and the C1 controls (U+0080-U+009F) are written as \xNN or \u00NN.
// Valid JSON holds no raw control characters, so JSON output is unchanged.
type Writer struct{ W io.Writer }

func (s Writer) Write(p []byte) (int, error) {
	if clean(p) {
		return s.W.Write(p)
	}
	if _, err := s.W.Write(escapeControls(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func clean(p []byte) bool {
	for _, b := range p {
		if (b < 0x20 && b != '\n' && b != '\t') || b == 0x7f || b == 0xc2 {
			return false
		}
	}
	return true
}

// escapeControls returns p with its control characters escaped.
func escapeControls(p []byte) []byte {
	out := make([]byte, 0, len(p)+16)
	for len(p) > 0 {
		b := p[0]
		switch {
		case b == '\n' || b == '\t':
			out = append(out, b)
			p = p[1:]
		case b < 0x20 || b == 0x7f:
			out = fmt.Appendf(out, `\x%02x`, b)
			p = p[1:]
		case b < utf8.RuneSelf:
			out = append(out, b)
			p = p[1:]
		default:
			r, n := utf8.DecodeRune(p)
			if r >= 0x80 && r <= 0x9f {
				out = fmt.Appendf(out, `\u%04x`, r)
			} else {
				out = append(out, p[:n]...)
			}
			p = p[n:]
		}
	}
	return out
}

// String is s with its control characters escaped, as Writer writes it.
func String(s string) string {
	if clean([]byte(s)) {
		return s
	}
	return string(escapeControls([]byte(s)))
}
