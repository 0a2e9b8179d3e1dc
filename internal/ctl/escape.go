package ctl

import (
	"io"

	"github.com/logpipe/logpipe/internal/platform/termsafe"
)

// safeWriter escapes terminal control characters on their way to a
// terminal (termsafe.Writer): paths, host names, reasons and config values
// come from etcd and from whoever wrote the agents' files.
type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) { return termsafe.Writer{W: s.w}.Write(p) }

// Escape is termsafe.String (for callers that print elsewhere).
func Escape(s string) string { return termsafe.String(s) }
