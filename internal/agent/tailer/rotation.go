package tailer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// truncated handles a file that shrank or was rewritten in place
// (copytruncate). Lines of the old generation that were not yet sent are
// read from the rotated copy when one is found next to the file; then the
// new generation starts at 0 once every event of the old one is acked.
func (t *Tailer) truncated(r *reader) error {
	t.m.Truncations.Inc()
	resume := r.h.Resume()
	n, fp := r.h.Fingerprint()
	now := t.now()
	if c, size := t.findCopy(r, n, fp, resume); c != nil {
		cr := t.newReader(c, r.key, r.h)
		cr.inst, cr.pos = r.inst, resume
		err := cr.readAvailable(t.ctx, size)
		if err == nil {
			err = cr.finish(now)
		}
		if err == nil {
			// The copy is known from now on, as read to its end: a later
			// rotation must not take it for a file never seen.
			err = t.registerCopy(c, size)
		}
		c.Close()
		if err != nil {
			return err
		}
		t.logger().WithFields(logrus.Fields{"copy": c.Name(), "from": resume, "to": size}).Info("file truncated; read the rest of the old content from its rotated copy")
	} else {
		// The bytes in memory are all that is left of the old content.
		if err := r.finish(now); err != nil {
			return err
		}
		t.logger().WithField("offset", r.pos).Info("file truncated or replaced; reading it from the start")
	}
	for r.h.InFlight() > 0 {
		if !backoff.Sleep(t.ctx, 20*time.Millisecond) {
			return t.ctx.Err()
		}
	}
	since := r.since
	if err := t.startGeneration(r, 0); err != nil {
		return err
	}
	r.since = now
	// Truncated more than once while reading was held back (logrotate
	// with copytruncate and rotate N): the generations in between are
	// only in copies nobody has seen.
	t.recoverSkipped(since, r.key)
	return nil
}

// registerCopy records a copytruncate copy whose content was sent under
// the truncated file's generation: a stream of its own that starts at its
// end, so only what is appended to it later is read.
func (t *Tailer) registerCopy(c *os.File, size int64) error {
	fi, err := c.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", c.Name(), err)
	}
	k, ok := fileKey(fi, t.cfg.Source.Topic)
	if !ok {
		return nil
	}
	h, ok := t.reg.Claim(k, t.cfg.Path)
	if !ok {
		return nil // someone reads it already
	}
	defer h.Release()
	if h.Known() {
		return nil
	}
	n := int(min(size, fpMax))
	fp, err := fingerprint(c, n)
	if err != nil {
		return fmt.Errorf("fingerprinting %s: %w", c.Name(), err)
	}
	return h.Start(size, n, fp)
}

// maxSiblings bounds how many directory entries a rotation search looks at.
const maxSiblings = 10000

// siblings opens the tailed path's directory and lists it; files in it
// are then opened relative to that descriptor (nil if it cannot be read).
func (t *Tailer) siblings() (*os.File, []os.DirEntry) {
	dir := filepath.Dir(t.cfg.Path)
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil
	}
	d := os.NewFile(uintptr(fd), dir)
	ents, err := d.ReadDir(-1)
	if err != nil && len(ents) == 0 {
		d.Close()
		return nil, nil
	}
	return d, ents
}

// findCopy looks next to the file for a copy of the old generation (same
// leading bytes, at least resume bytes long), as left by copytruncate.
func (t *Tailer) findCopy(r *reader, n int, fp uint64, resume int64) (*os.File, int64) {
	if n == 0 || resume == 0 {
		return nil, 0
	}
	d, ents := t.siblings()
	if d == nil {
		return nil, 0
	}
	defer d.Close()
	var best *os.File
	var bestSize int64
	for i, e := range ents {
		if i > maxSiblings || !e.Type().IsRegular() {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, e.Name())
		if err != nil {
			continue
		}
		keep := false
		if fi.Size() >= resume && fi.Size() > bestSize {
			if k, ok := fileKey(fi, r.key.Topic); ok && k != r.key {
				if got, err := fingerprint(f, n); err == nil && got == fp {
					keep = true
				}
			}
		}
		if keep {
			if best != nil {
				best.Close()
			}
			best, bestSize = f, fi.Size()
		} else {
			f.Close()
		}
	}
	return best, bestSize
}

// recoverRotated finds files this path had before it was rotated, while
// the agent was not running or since a drainer let go of them (their
// registry entry still names this path), and drains what they have past
// their acked offset. It returns how many such streams the registry has.
func (t *Tailer) recoverRotated(current registry.Key) int {
	streams := t.reg.Rotated(t.cfg.Source.Topic, t.cfg.Path, current)
	if len(streams) == 0 {
		return 0
	}
	defer t.rescan.Store(true)
	want := map[registry.Key]registry.Stream{}
	for _, s := range streams {
		want[s.Key] = s
	}
	d, ents := t.siblings()
	if d == nil {
		return len(streams)
	}
	defer d.Close()
	for i, e := range ents {
		if i > maxSiblings || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(d.Name(), e.Name())
		info, err := e.Info() // lstat: cheap, and enough to skip most
		if err != nil {
			continue
		}
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || want[k].Key != k || info.Size() <= want[k].Offset {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, e.Name())
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		if s := want[k]; !ok || s.Key != k || fi.Size() <= s.Offset {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		if same, err := r.sameGeneration(fi.Size()); err != nil || !same {
			h.Release()
			f.Close()
			continue
		}
		r.inst, r.pos = h.Instance(), h.Resume()
		t.logger().WithFields(logrus.Fields{"rotated": p, "offset": r.pos, "size": fi.Size()}).Info("reading the rest of a file rotated while the agent was down")
		t.handOff(r)
	}
	return len(streams)
}

// recoverSkipped finds files that were rotated away from the path while
// the tailer was not looking (several rotations between two checks, or
// while reading was paused by backpressure): siblings named <base>.*,
// <base>-* or <base>_*, modified since the previous file was opened and
// unknown to the registry. Each is read from its start by a drainer.
func (t *Tailer) recoverSkipped(since time.Time, current registry.Key) {
	if since.IsZero() {
		return // no earlier reading to compare with (first run)
	}
	base := filepath.Base(t.cfg.Path)
	d, ents := t.siblings()
	if d == nil {
		return
	}
	defer d.Close()
	since = since.Add(-time.Second) // file times come from a coarse clock
	for i, e := range ents {
		name := e.Name()
		if i > maxSiblings || !rotatedName(base, name) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(d.Name(), name)
		info, err := e.Info()
		if err != nil || info.ModTime().Before(since) {
			continue
		}
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || k == current || t.reg.Has(k) {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, name)
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		if !ok || k == current || t.reg.Has(k) || fi.ModTime().Before(since) {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		if h.Known() {
			h.Release()
			f.Close()
			continue
		}
		if err := t.startGeneration(r, 0); err != nil {
			h.Release()
			f.Close()
			continue
		}
		t.logger().WithField("rotated", p).Info("reading a file that was rotated away before it was opened")
		t.handOff(r)
	}
}

// rotatedName reports whether name looks like a rotated copy of base
// (base.1, base-20260101, base_old) and is not compressed.
func rotatedName(base, name string) bool {
	if len(name) <= len(base)+1 || !strings.HasPrefix(name, base) {
		return false
	}
	switch name[len(base)] {
	case '.', '-', '_':
	default:
		return false
	}
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".zip", ".Z", ".tmp"} {
		if strings.HasSuffix(name, ext) {
			return false
		}
	}
	return true
}

// lastLineStart returns the offset just after the last newline before
// size, looking back at most maxBack bytes; size if there is none.
func lastLineStart(f *os.File, size int64, maxBack int) int64 {
	const block = 64 << 10
	buf := make([]byte, block)
	end := size
	for end > 0 && size-end < int64(maxBack)+1 {
		start := max(end-block, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return size
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return start + int64(i) + 1
		}
		end = start
	}
	if end == 0 {
		return 0
	}
	return size
}
