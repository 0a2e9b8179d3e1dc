package tailer

import (
	"bytes"
	"context"
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
	now := t.now()
	since := r.since
	if err := t.regenerate(t.ctx, r, now); err != nil {
		return err
	}
	r.since = now
	// Truncated more than once while reading was held back (logrotate
	// with copytruncate and rotate N): the generations in between are
	// only in copies nobody has seen.
	t.recoverSkipped(since, r.key)
	return nil
}

// regenerate ends r's generation, truncated or rewritten in place: its
// unsent rest is read from a copy next to the file (copytruncate) when one
// is found, else the bytes in memory are all that is left of it; once all
// of it is acknowledged, a new generation starts at 0.
func (t *Tailer) regenerate(ctx context.Context, r *reader, now time.Time) error {
	found, err := t.restFromCopy(ctx, r, now)
	if err != nil {
		return err
	}
	if !found {
		if err := r.finish(now); err != nil {
			return err
		}
		t.logger().WithField("offset", r.pos).Info("file truncated or replaced; reading it from the start")
		if err := waitAcked(ctx, r); err != nil {
			return err
		}
	}
	return t.startGeneration(r, 0)
}

// restFromCopy reads what r's generation held past where reading resumes
// from a copy next to the file, as copytruncate leaves one, if one is
// found (true). Once that is in Kafka, the copy is registered as read to
// its end.
func (t *Tailer) restFromCopy(ctx context.Context, r *reader, now time.Time) (bool, error) {
	resume := r.h.Resume()
	n, fp := r.h.Fingerprint()
	c, size := t.findCopy(r, n, fp, resume)
	if c == nil {
		return false, nil
	}
	defer c.Close()
	cr := t.newReader(c, r.key, r.h)
	cr.inst, cr.pos, cr.ctx = r.inst, resume, r.ctx
	err := cr.readAvailable(ctx, size)
	if err == nil {
		err = cr.finish(now)
	}
	if err != nil {
		return true, err
	}
	t.logger().WithFields(logrus.Fields{"copy": c.Name(), "from": resume, "to": size}).Info("file truncated; read the rest of the old content from its rotated copy")
	if err := waitAcked(ctx, r); err != nil {
		return true, err
	}
	// The copy is known from now on, as read to its end: a later rotation
	// must not take it for a file never seen. Only now: had it been on
	// disk as read while its rest was still on its way to Kafka, a crash
	// would have lost that rest (the agentsim found this); unknown, the
	// copy is found again and read from what Kafka acknowledged
	// (readCopy).
	return true, t.registerCopy(c, size)
}

// waitAcked waits until every event read from r's stream is acknowledged.
func waitAcked(ctx context.Context, r *reader) error {
	for r.h.InFlight() > 0 {
		if !backoff.Sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
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
	// Even if the registry knows the key: its content went out under the
	// truncated file's stream. A stream it had under that key is another
	// file's (one deleted, whose inode number the copy took: the agentsim
	// found the copy then read again from that stream's offset).
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
	// Nothing sent yet (resume 0) is no reason not to look: the copy
	// holds the old content from its start, a line only begun in memory
	// included (the agentsim found this: the half read was sent as a line
	// of its own). Without a fingerprint, no copy can be told apart.
	if n == 0 {
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
	base := filepath.Base(t.cfg.Path)
	for i, e := range ents {
		// Only this path's names: an inode number of a file this path
		// had, deleted since, may have been taken by any new file (the
		// agentsim found another file's copytruncate copy read as a.log's).
		if i > maxSiblings || !e.Type().IsRegular() || e.Name() != base && !rotatedName(base, e.Name()) {
			continue
		}
		p := filepath.Join(d.Name(), e.Name())
		info, err := e.Info() // lstat: cheap, and enough to skip most
		if err != nil {
			continue
		}
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || want[k].Key != k {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, e.Name())
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		if s := want[k]; !ok || s.Key != k {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		r.inst, r.pos = h.Instance(), h.Resume()
		// A file that does not start as its entry's generation (or whose
		// entry has no fingerprint: its file was empty) may be a new file
		// that took a deleted one's inode number. If it starts as another
		// stream of this path does, it is that stream's copytruncate copy:
		// read as a copy (readCopy), not from the start under this entry,
		// which sent its lines twice (the agentsim found this: the inode of
		// a rotated file deleted by rotate 2 reused at once by the copy).
		if fi.Size() > 0 {
			n, _ := h.Fingerprint()
			own, err := r.unchanged()
			if (n == 0 || err == nil && !own) && t.readCopy(f, fi.Size(), current, h) {
				f.Close()
				continue
			}
		}
		same, err := r.sameGeneration(fi.Size())
		switch {
		case err != nil || same && fi.Size() <= r.pos:
			h.Release()
			f.Close()
			continue
		case !same:
			// Truncated (and written again) before it was rotated, unseen:
			// the rest of its old content is in a copy, if there is one,
			// and what it holds now is a generation of its own (the
			// agentsim found these lines lost).
			if err := t.truncated(r); err != nil {
				h.Release()
				f.Close()
				continue
			}
		}
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
		if k, ok := fileKey(info, t.cfg.Source.Topic); !ok || k == current || t.knownHere(k) {
			continue
		}
		f, fi, err := t.cfg.Guard.OpenAt(d, name)
		if err != nil {
			t.thr.Log("rotated-open", t.logger().WithError(err), logrus.WarnLevel, "not reading a rotated file")
			continue
		}
		k, ok := fileKey(fi, t.cfg.Source.Topic)
		stale := t.reg.Has(k) && t.staleEntry(k, f)
		if !ok || k == current || t.knownHere(k) || fi.ModTime().Before(since) || t.reg.Has(k) && !stale {
			f.Close()
			continue
		}
		h, ok := t.reg.Claim(k, t.cfg.Path)
		if !ok {
			f.Close()
			continue
		}
		if h.Known() && !stale { // registered meanwhile by another reader
			h.Release()
			f.Close()
			continue
		}
		r := t.newReader(f, k, h)
		if t.readCopy(f, fi.Size(), current, h) {
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

// knownHere reports whether the registry has a stream of k that this path
// read (recoverRotated's to take care of).
func (t *Tailer) knownHere(k registry.Key) bool {
	s, ok := t.reg.Stream(k)
	return ok && s.Path == t.cfg.Path
}

// staleEntry reports whether the registry's stream of k, another path's,
// is not f's: a file of that path was deleted and f took its inode number.
// Only a fingerprint that f still starts with says the stream is f's (a
// stream that read nothing has none): read as a file never seen, f's lines
// are sent once; skipped as known, they were lost (the agentsim found
// this: a rotated file that took the inode number of another path's
// deleted file).
func (t *Tailer) staleEntry(k registry.Key, f *os.File) bool {
	s, ok := t.reg.Stream(k)
	if !ok || s.Claimed || s.Path == t.cfg.Path {
		return false
	}
	if s.FPLen == 0 {
		return true
	}
	got, err := fingerprint(f, s.FPLen)
	return err != nil || got != s.FP
}

// readCopy reads f, a sibling unknown to the registry, as what it may be:
// the copy a copytruncate made of a generation this path had, whose
// truncation the agent did not see (it was down, or the copy was rotated
// on before it looked). Its first bytes are then that stream's
// fingerprint: f is read from that stream's acknowledged offset, under its
// instance (a line sent before keeps its event id), and registered as a
// copy read to its end. The agentsim found this: read from its start as a
// file never seen, the copy sent its lines a second time. hf is f's own
// claim; readCopy releases it when f is a copy, and reports whether it was.
func (t *Tailer) readCopy(f *os.File, size int64, current registry.Key, hf *registry.Handle) bool {
	for _, s := range t.reg.OfPath(t.cfg.Source.Topic, t.cfg.Path) {
		if s.FPLen == 0 || int64(s.FPLen) > size {
			continue
		}
		if got, err := fingerprint(f, s.FPLen); err != nil || got != s.FP {
			continue
		}
		if s.Claimed || s.Key == current {
			// A copy of a stream someone reads (this tailer's current
			// file, a drainer's): the truncation of that file, when it
			// is seen, takes the copy's rest from it; read from its start
			// here, the copy would send its lines twice (the agentsim
			// found this).
			hf.Release()
			return true
		}
		h, ok := t.reg.Claim(s.Key, t.cfg.Path)
		if !ok {
			hf.Release()
			return true
		}
		cr := t.newReader(f, s.Key, h)
		cr.inst, cr.pos = h.Instance(), h.Resume()
		err := cr.readAvailable(t.ctx, size)
		if err == nil {
			err = cr.finish(t.now())
		}
		// Registered as read only once what was read of it is in Kafka
		// (see truncated).
		for err == nil && h.InFlight() > 0 {
			if !backoff.Sleep(t.ctx, 20*time.Millisecond) {
				err = t.ctx.Err()
			}
		}
		h.Release()
		hf.Release()
		if err != nil {
			t.thr.Log("copy-read", t.logger().WithError(err), logrus.WarnLevel, "reading the copy of a truncated file did not finish; it is read again at the next look")
			return true
		}
		if err := t.registerCopy(f, size); err != nil {
			t.thr.Log("copy-register", t.logger().WithError(err), logrus.WarnLevel, "registering the copy of a truncated file failed")
		}
		t.logger().WithFields(logrus.Fields{"copy": f.Name(), "from": cr.pos, "to": size}).Info("read the rest of a truncated file from its copy, found after the truncation")
		return true
	}
	return false
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
