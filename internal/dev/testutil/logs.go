package testutil

import (
	"bytes"
	"io"
	"log"
	"os"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"
)

// saramaTail keeps the last of what sarama (its own package-level logger,
// shared by every client in the test binary) said; a failing test that
// ran a daemon through Logger prints it. It is set up once, before any
// test runs, and never swapped (sarama's goroutines read sarama.Logger
// without a lock).
var saramaTail = &tailBuffer{max: 64 << 10}

// captureSaramaLog sends sarama's log into saramaTail (stderr with
// DEBUG_LOGS). Call it before the tests start.
func captureSaramaLog() {
	var w io.Writer = saramaTail
	if os.Getenv("DEBUG_LOGS") != "" {
		w = os.Stderr
	}
	sarama.Logger = log.New(w, "sarama ", log.Ltime|log.Lmicroseconds)
}

// Logger is a logrus logger for a daemon run in-process by a test. Its
// output is kept (the last 64 KiB) and printed only when the test fails,
// so a failure in CI comes with what the daemon said; DEBUG_LOGS=1 sends
// everything, at debug level, to stderr instead.
func Logger(t testing.TB) *logrus.Entry {
	t.Helper()
	l := logrus.New()
	if os.Getenv("DEBUG_LOGS") != "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
		return logrus.NewEntry(l)
	}
	tail := &tailBuffer{max: 64 << 10}
	l.SetOutput(tail)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log (last %d KiB):\n%s", tail.max>>10, tail.String())
			t.Logf("sarama log, all tests of this binary (last %d KiB):\n%s", saramaTail.max>>10, saramaTail.String())
		}
	})
	return logrus.NewEntry(l)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

var _ io.Writer = (*tailBuffer)(nil)

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		cut := over
		if i := bytes.IndexByte(w.b[over:], '\n'); i >= 0 {
			cut += i + 1 // start at a whole line
		}
		w.b = append(w.b[:0], w.b[min(cut, len(w.b)):]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}
