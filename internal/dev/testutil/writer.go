package testutil

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// LineWriter appends numbered lines ("<file> <8-digit seq> <padding>") to
// files at a steady rate, and performs rotations between writes the way an
// application and logrotate would, so tests can count every line.
type LineWriter struct {
	t       testing.TB
	dir     string
	names   []string
	perTick int
	mu      sync.Mutex
	fds     map[string]*os.File
	next    map[string]int
	rotated int
	pad     string
	stopped chan struct{}
	cancel  context.CancelFunc
}

// StartLineWriter writes linesPerSec lines per second in total, spread over
// the files names in dir.
func StartLineWriter(t testing.TB, dir string, names []string, linesPerSec int) *LineWriter {
	w := &LineWriter{t: t, dir: dir, names: names, perTick: max(linesPerSec/100/len(names), 1),
		fds: map[string]*os.File{}, next: map[string]int{}, pad: strings.Repeat("x", 80), stopped: make(chan struct{})}
	for _, n := range names {
		w.open(n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	t.Cleanup(w.Stop)
	return w
}

// Path is the full path of file name.
func (w *LineWriter) Path(name string) string { return filepath.Join(w.dir, name) }

func (w *LineWriter) open(name string) {
	f, err := os.OpenFile(w.Path(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.t.Errorf("opening %s: %v", name, err)
		return
	}
	w.fds[name] = f
}

func (w *LineWriter) run(ctx context.Context) {
	defer close(w.stopped)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var b []byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		w.mu.Lock()
		for _, n := range w.names {
			f := w.fds[n]
			if f == nil {
				continue
			}
			b = b[:0]
			for i := 0; i < w.perTick; i++ {
				b = fmt.Appendf(b, "%s %08d %s\n", n, w.next[n], w.pad)
				w.next[n]++
			}
			if _, err := f.Write(b); err != nil {
				w.t.Errorf("writing %s: %v", n, err)
			}
		}
		w.mu.Unlock()
	}
}

// Stop stops writing and closes the files.
func (w *LineWriter) Stop() {
	w.cancel()
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fds {
		f.Close()
	}
	w.fds = map[string]*os.File{}
}

// Written returns lines written per file.
func (w *LineWriter) Written() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]int, len(w.next))
	for k, v := range w.next {
		out[k] = v
	}
	return out
}

// Total is the number of lines written.
func (w *LineWriter) Total() int {
	n := 0
	for _, v := range w.Written() {
		n += v
	}
	return n
}

// Names are the files written.
func (w *LineWriter) Names() []string { return w.names }

// RenameRotate moves name to name.<k> and reopens a fresh name, as
// logrotate's `create` plus an application reopen do.
func (w *LineWriter) RenameRotate(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotated++
	w.fds[name].Close()
	if err := os.Rename(w.Path(name), fmt.Sprintf("%s.%d", w.Path(name), w.rotated)); err != nil {
		w.t.Errorf("rotating %s: %v", name, err)
	}
	w.open(name)
}

// CopyTruncate shifts name.1..name.3, copies name to name.1 and truncates
// name, as logrotate's `copytruncate` does (with the writer paused, so no
// line falls between the copy and the truncation).
func (w *LineWriter) CopyTruncate(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.Path(name)
	for i := 3; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
	}
	src, err := os.Open(p)
	if err != nil {
		w.t.Errorf("copytruncate %s: %v", name, err)
		return
	}
	defer src.Close()
	dst, err := os.Create(p + ".1")
	if err != nil {
		w.t.Errorf("copytruncate %s: %v", name, err)
		return
	}
	if _, err := io.Copy(dst, src); err != nil {
		w.t.Errorf("copytruncate %s: %v", name, err)
	}
	dst.Close()
	if err := w.fds[name].Truncate(0); err != nil {
		w.t.Errorf("truncating %s: %v", name, err)
	}
}

// Line returns the text of line seq of file name, without the padding.
func Line(name string, seq int) string { return fmt.Sprintf("%s %08d", name, seq) }

// LineKey cuts the padding off a written line.
func LineKey(v string) string {
	if i := strings.LastIndexByte(v, ' '); i > 0 {
		return v[:i]
	}
	return v
}

// WriteRaw appends data (not a numbered line) to name between two ticks.
func (w *LineWriter) WriteRaw(name string, data []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.fds[name].Write(data); err != nil {
		w.t.Errorf("writing %s: %v", name, err)
	}
}

// Remove deletes name while the writer keeps appending to its open file,
// as an application does until it reopens its log.
func (w *LineWriter) Remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := os.Remove(w.Path(name)); err != nil {
		w.t.Errorf("removing %s: %v", name, err)
	}
}

// Close stops writing to name (its lines so far stay counted).
func (w *LineWriter) Close(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f := w.fds[name]; f != nil {
		f.Close()
		w.fds[name] = nil
	}
}
