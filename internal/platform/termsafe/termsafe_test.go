package termsafe

import (
	"bytes"
	"testing"
)

// Control characters (C0 but newline and tab, DEL, C1) reach a terminal
// escaped; everything else, UTF-8 included, as it is.
func TestControlCharactersAreEscaped(t *testing.T) {
	for in, want := range map[string]string{
		"plain line\n":                  "plain line\n",
		"tab\tand é 日本":                 "tab\tand é 日本",
		"\x1b]0;pwned\x07\x1bc":         `\x1b]0;pwned\x07\x1bc`,
		"del\x7f c1\u0085 nul\x00 cr\r": `del\x7f c1\u0085 nul\x00 cr\x0d`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
		var b bytes.Buffer
		if n, err := (Writer{W: &b}).Write([]byte(in)); n != len(in) || err != nil || b.String() != want {
			t.Errorf("Write(%q): %d, %v, wrote %q", in, n, err, b.String())
		}
	}
}
