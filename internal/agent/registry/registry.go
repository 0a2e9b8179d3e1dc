// Package registry is the agent's offset store. Per file identity
// (device+inode) and topic it records the file generation (its
// record.Instance) and the offset up to which every event has been
// acknowledged by Kafka. It is written atomically (temp file, fsync,
// rename) every second and at shutdown, and synchronously whenever a new
// generation starts, so event ids never change across a crash.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
)

const (
	fileName        = "registry.json"
	prevName        = "registry.json.prev"
	lockName        = "LOCK"
	version         = 1
	seenGranularity = time.Hour
	// A stream nobody reads is dropped only once its file is gone, and
	// only after it has been let go of for pruneAfter in this process: a
	// freshly started agent's tailers (or a reloaded config's) claim
	// theirs first, however long the agent was down. Files that still
	// exist keep their streams, so an entry removed and added back later
	// resumes where it stopped instead of re-reading whole files.
	pruneAfter = 10 * time.Minute
	pruneEvery = 10 * time.Minute
)

// Key identifies a stream: one file identity read into one topic. Orphan
// is set (non-zero) on a stream set aside (SetAside): its file was deleted
// and its inode number taken by another path's file, which now has the
// plain key; no file has an orphan's key.
type Key struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Topic  string `json:"topic"`
	Orphan uint64 `json:"orphan,omitempty"`
}

func (k Key) String() string {
	if k.Orphan != 0 {
		return fmt.Sprintf("%d:%d:%s:set-aside-%x", k.Dev, k.Ino, k.Topic, k.Orphan)
	}
	return fmt.Sprintf("%d:%d:%s", k.Dev, k.Ino, k.Topic)
}

// fileState is one stream. Fields other than tr are guarded by
// Registry.mu; tr has its own lock because acks arrive on the producer's
// goroutine at line rate.
type fileState struct {
	key      Key
	path     string
	inst     record.Instance
	fpLen    int
	fp       uint64
	seen     time.Time
	claimed  bool
	tr       *acktrack.Tracker
	restored int64 // acked offset loaded from disk, until tr exists
	// released is when the last holder let go of the stream in this
	// process, or when the registry file it was loaded from was written.
	released time.Time
	// claimedAt is when a reader first took the stream in this process.
	claimedAt time.Time
	st        stamps // index-time stamps (stamp.go)
	// instGen is 0 once inst is on disk; before, the snapshot carrying it
	// (unsnapshotted until one does).
	instGen uint64
}

func (s *fileState) offsets() (acked, read int64, inflight int) {
	if s.tr == nil {
		return s.restored, s.restored, 0
	}
	return s.tr.State()
}

// Registry holds every stream's state. It is safe for concurrent use.
type Registry struct {
	dir  string
	log  *logrus.Entry
	lock *os.File
	// written is when the registry loaded at start was saved (zero if
	// there was none): the last moment the previous run is known to have
	// seen its files.
	written time.Time
	opened  time.Time
	// exists reports whether the file of a stream is still on disk
	// (under its path or renamed next to it); tests replace it.
	exists    func(path string, k Key) bool
	write     func(dir string, data []byte) error // writeAtomic; tests replace it
	lastPrune time.Time
	// now is the clock new stamp epochs are taken from; tests replace it.
	now func() time.Time

	mu      sync.Mutex
	files   map[Key]*fileState
	entries map[string]bool // collect entries that have been active

	saveMu saveLock // serialises disk writes; taken before mu
	// What the last write put on disk: a digest of its bytes (not the
	// bytes: half a megabyte for a thousand files, kept for a comparison)
	// and the stateSum it was encoded from, to skip encoding when idle.
	hasSaved    bool
	lastSaved   [sha256.Size]byte
	lastSum     uint64
	snapGen     uint64 // generation of the last snapshot (mu)
	lastSaveErr error  // of the last failed save (saveMu)
	// lastStampSave is when a save streams asked for began (saveMu).
	lastStampSave time.Time
	// onStampWait, if set, is called when a Stamp is about to wait for a
	// save (tests).
	onStampWait func()
	// stampDegradedUntil: after a failed save, events are stamped without
	// waiting for the registry until then (mu).
	stampDegradedUntil time.Time

	saves      prometheus.Counter
	saveErrors prometheus.Counter
	corrupt    prometheus.Counter
	streams    prometheus.GaugeFunc
	// stampsUnsaved counts events sent with an index-time stamp that was
	// not on disk (the registry could not be written).
	stampsUnsaved prometheus.Counter
}

type diskFile struct {
	Version int         `json:"version"`
	Entries []string    `json:"entries"`
	Files   []diskEntry `json:"files"`
}

type diskEntry struct {
	Key
	Path     string    `json:"path"`
	Instance string    `json:"instance"`
	Offset   int64     `json:"offset"`
	FPLen    int       `json:"fp_len"`
	FP       uint64    `json:"fp"`
	Seen     time.Time `json:"seen"`
	// Stamps and Limit are the stream's index-time epochs and the offset
	// no event at or beyond which was sent (stamp.go).
	Stamps []diskStamp `json:"stamps,omitempty"`
	Limit  int64       `json:"limit,omitempty"`
}

// privateDir creates dir readable by the agent's user only (0700). An
// existing directory that is empty or holds a registry of ours is narrowed
// to 0700 too (older versions made it 0755); any other directory is left
// as the operator made it, with a warning when others may read it.
func privateDir(dir string, log *logrus.Entry) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating data dir: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking data dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data dir %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if ownDir(dir) && fi.Mode()&os.ModeSticky == 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restricting data dir to its owner: %w", err)
		}
		return nil
	}
	log.WithFields(logrus.Fields{"data_dir": dir, "mode": fi.Mode().Perm().String()}).Warn("data dir is readable by other users; the agent's files in it are 0600")
	return nil
}

// ownDir reports whether dir is empty or already the agent's.
func ownDir(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, fileName)); err == nil {
		return true
	}
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, _ := f.Readdirnames(1)
	return len(names) == 0
}

// Open loads the registry in dir, creating dir if needed, and takes an
// exclusive lock on it so two agents cannot share one registry. A corrupt
// registry file falls back to the previous one; if both are unreadable the
// agent starts empty, and says so loudly.
func Open(dir string, log *logrus.Entry, reg prometheus.Registerer) (*Registry, error) {
	if err := privateDir(dir, log); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening registry lock: %w", err)
	}
	if err := lock.Chmod(0o600); err != nil { // a lock from an older version was 0644
		lock.Close()
		return nil, fmt.Errorf("restricting registry lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("locking data dir %s (is another logagent using it?): %w", dir, err)
	}
	r := &Registry{
		saveMu:  make(saveLock, 1),
		dir:     dir,
		log:     log.WithField("component", "registry"),
		lock:    lock,
		opened:  time.Now(),
		exists:  fileExists,
		write:   writeAtomic,
		now:     time.Now,
		files:   map[Key]*fileState{},
		entries: map[string]bool{},
		saves: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logagent_registry_saves_total", Help: "Registry files written.",
		}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logagent_registry_save_errors_total", Help: "Failed registry writes.",
		}),
		corrupt: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logagent_registry_corrupt_total", Help: "Registry files found unreadable at start.",
		}),
		stampsUnsaved: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "logagent_stamps_unsaved_total",
			Help: "Events sent with an index-time stamp that was not yet in the registry (it could not be written): after a crash, their re-sent copies may land in another daily index.",
		}),
	}
	r.streams = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logagent_registry_streams", Help: "File streams known to the registry.",
	}, func() float64 { r.mu.Lock(); defer r.mu.Unlock(); return float64(len(r.files)) })
	if reg != nil {
		reg.MustRegister(r.saves, r.saveErrors, r.corrupt, r.streams, r.stampsUnsaved)
	}
	if err := r.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return r, nil
}

func (r *Registry) load() error {
	var lastErr error
	for _, name := range []string{fileName, prevName} {
		p := filepath.Join(r.dir, name)
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			var written time.Time
			if fi, serr := os.Stat(p); serr == nil {
				written = fi.ModTime()
			}
			if err = r.decode(data, written); err == nil {
				r.written = written
			}
		}
		if err == nil {
			if name != fileName {
				r.log.WithField("file", p).Warn("registry file missing or corrupt; resumed from the previous one")
			}
			r.log.WithField("streams", len(r.files)).Info("registry loaded")
			return nil
		}
		r.corrupt.Inc()
		lastErr = fmt.Errorf("reading registry %s: %w", p, err)
		bad := p + ".corrupt-" + time.Now().UTC().Format("20060102T150405")
		if rerr := os.Rename(p, bad); rerr == nil {
			r.log.WithError(lastErr).WithField("moved_to", bad).Error("registry file is corrupt; kept it aside")
		} else {
			r.log.WithError(lastErr).Error("registry file is corrupt")
		}
	}
	if lastErr != nil {
		r.log.WithError(lastErr).Error("no readable registry: every file is treated as new (its collect entry's `from` applies)")
	}
	return nil
}

func (r *Registry) decode(data []byte, written time.Time) error {
	var d diskFile
	if err := json.Unmarshal(data, &d); err != nil {
		return err
	}
	if d.Version != version {
		return fmt.Errorf("unsupported registry version %d", d.Version)
	}
	files := make(map[Key]*fileState, len(d.Files))
	for _, e := range d.Files {
		inst, err := record.ParseInstance(e.Instance)
		if err != nil {
			return fmt.Errorf("stream %s: %w", e.Key, err)
		}
		if e.Offset < 0 || e.FPLen < 0 || e.Limit < 0 {
			return fmt.Errorf("stream %s: negative offset", e.Key)
		}
		files[e.Key] = &fileState{key: e.Key, path: e.Path, inst: inst, restored: e.Offset, fpLen: e.FPLen, fp: e.FP, seen: e.Seen, released: written,
			st: restoreStamps(e.Stamps, e.Limit)}
	}
	r.files = files
	r.entries = map[string]bool{}
	for _, k := range d.Entries {
		r.entries[k] = true
	}
	return nil
}

// Run saves the registry every interval until ctx ends, then once more.
func (r *Registry) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	return r.RunClock(ctx, t.C)
}

// RunClock saves the registry on every tick until ctx ends, then once
// more: Run with the save clock given (tests decide when saves happen).
func (r *Registry) RunClock(ctx context.Context, ticks <-chan time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return r.Save()
		case now := <-ticks:
			if now.Sub(r.lastPrune) >= pruneEvery {
				r.lastPrune = now
				if n := r.Prune(now); n > 0 {
					r.log.WithField("streams", n).Info("dropped the streams of files that are gone")
				}
			}
			if err := r.Save(); err != nil {
				r.log.WithError(err).Warn("saving registry")
			}
		}
	}
}

// Prune drops the streams nobody reads whose files are gone (deleted, not
// just renamed within their directory), once they have been let go of for
// pruneAfter in this process. It returns how many it dropped.
func (r *Registry) Prune(now time.Time) int {
	type cand struct {
		k    Key
		path string
		s    *fileState
	}
	var cands []cand
	r.mu.Lock()
	for k, s := range r.files {
		if s.claimed || s.inst.IsZero() {
			continue
		}
		if _, _, n := s.offsets(); n > 0 {
			continue // acks still to come
		}
		if now.Sub(later(s.released, r.opened)) < pruneAfter {
			continue
		}
		cands = append(cands, cand{k, s.path, s})
	}
	r.mu.Unlock()
	var gone []cand
	for _, c := range cands {
		if c.k.Orphan != 0 || !r.exists(c.path, c.k) {
			gone = append(gone, c)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range gone {
		if s, ok := r.files[c.k]; ok && s == c.s && !s.claimed {
			delete(r.files, c.k)
			n++
		}
	}
	return n
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// fileExists reports whether the file k is at path or anywhere in path's
// directory (rotated files are renamed next to it). When the directory
// cannot be read it answers true: a stream is only dropped for sure.
func fileExists(path string, k Key) bool {
	same := func(fi os.FileInfo) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		return ok && uint64(st.Dev) == k.Dev && st.Ino == k.Ino
	}
	if fi, err := os.Stat(path); err == nil && same(fi) {
		return true
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && same(fi) {
			return true
		}
	}
	return false
}

// Close releases the data dir lock. Call after the last Save.
func (r *Registry) Close() error { return r.lock.Close() }

// forceSave makes the next Save write even if the state looks unchanged.
func (r *Registry) forceSave() {
	r.saveMu.Lock()
	r.hasSaved, r.lastSum = false, 0
	r.saveMu.Unlock()
}

// Save writes the registry atomically if it changed since the last write.
func (r *Registry) Save() error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return r.saveLocked()
}

// saveLock serialises disk writes. A channel rather than a sync.Mutex: it
// is held across a short sleep (streams asking for stamps meanwhile share
// one save), and a goroutine waiting on a channel is one a fake clock
// (testing/synctest, the agentsim) sees waiting; on a mutex it would hold
// that clock still, and the sleep would never end.
type saveLock chan struct{}

// Lock takes the lock.
func (l saveLock) Lock() { l <- struct{}{} }

// Unlock releases it.
func (l saveLock) Unlock() { <-l }

// saveLocked is Save with saveMu held.
func (r *Registry) saveLocked() error {
	sum := r.stateSum()
	if r.hasSaved && sum == r.lastSum {
		return nil // nothing moved: skip encoding (an idle agent saves nothing)
	}
	data, g := r.snapshot()
	r.lastSum = sum
	digest := sha256.Sum256(data)
	if r.hasSaved && digest == r.lastSaved {
		r.snapshotDone(g, true)
		return nil
	}
	if err := r.write(r.dir, data); err != nil {
		r.saveErrors.Inc()
		r.lastSaveErr = err
		r.snapshotDone(g, false)
		return err
	}
	r.saves.Inc()
	r.hasSaved, r.lastSaved = true, digest
	r.snapshotDone(g, true)
	return nil
}

// snapshotDone tells every stream how snapshot g ended.
func (r *Registry) snapshotDone(g uint64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.files {
		s.st.saved(g, ok)
		if ok && s.instGen == g {
			s.instGen = 0
		}
	}
	if !ok {
		r.stampDegradedUntil = time.Now().Add(stampDegradedFor)
	}
}

// stateSum hashes everything snapshot writes, cheaply (no encoding). Map
// order is random, so per-entry hashes are added, not chained.
func (r *Registry) stateSum() uint64 {
	const prime = 1099511628211
	hash := func(vs ...uint64) uint64 {
		h := uint64(14695981039346656037)
		for _, v := range vs {
			h = (h ^ v) * prime
		}
		return h
	}
	str := func(s string) uint64 {
		h := uint64(14695981039346656037)
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		return h
	}
	now := time.Now().UTC().Truncate(seenGranularity)
	r.mu.Lock()
	defer r.mu.Unlock()
	sum := hash(uint64(len(r.files)), uint64(len(r.entries)))
	for k := range r.entries {
		sum += str(k)
	}
	for k, s := range r.files {
		acked, _, _ := s.offsets()
		seen := s.seen
		if s.claimed {
			seen = now
		}
		sum += hash(k.Dev, k.Ino, str(k.Topic), uint64(acked), uint64(s.fpLen), s.fp,
			binary.LittleEndian.Uint64(s.inst[:8]), binary.LittleEndian.Uint64(s.inst[8:]), uint64(seen.Unix()), str(s.path),
			s.st.sum())
	}
	return sum
}

// snapshot encodes the state, and returns it with its generation (see
// stamps.snapshotted).
func (r *Registry) snapshot() ([]byte, uint64) {
	now := time.Now().UTC().Truncate(seenGranularity)
	r.mu.Lock()
	clock := r.now()
	r.snapGen++
	g := r.snapGen
	d := diskFile{Version: version, Files: make([]diskEntry, 0, len(r.files))}
	for k, s := range r.files {
		if s.inst.IsZero() {
			continue // claimed but never started: nothing to remember
		}
		if s.claimed {
			s.seen = now
		}
		acked, _, _ := s.offsets()
		if s.instGen == unsnapshotted {
			s.instGen = g
		}
		st, limit := s.st.snapshotted(g, clock, acked)
		d.Files = append(d.Files, diskEntry{Key: k, Path: s.path, Instance: s.inst.String(), Offset: acked, FPLen: s.fpLen, FP: s.fp, Seen: s.seen,
			Stamps: st, Limit: limit})
	}
	for k := range r.entries {
		d.Entries = append(d.Entries, k)
	}
	r.mu.Unlock()
	sort.Slice(d.Files, func(i, j int) bool {
		a, b := d.Files[i].Key, d.Files[j].Key
		if a.Dev != b.Dev {
			return a.Dev < b.Dev
		}
		if a.Ino != b.Ino {
			return a.Ino < b.Ino
		}
		return a.Topic < b.Topic
	})
	sort.Strings(d.Entries)
	data, _ := json.MarshalIndent(d, "", " ") // plain types always marshal
	return data, g
}

// writeAtomic replaces dir/registry.json so that at every instant either
// registry.json or registry.json.prev is a complete, fsynced file.
func writeAtomic(dir string, data []byte) error {
	if err := fsutil.WriteAtomicKeeping(filepath.Join(dir, fileName), prevName, data, 0o600); err != nil {
		return fmt.Errorf("saving the registry: %w", err)
	}
	return nil
}

// Written returns when the registry loaded at start was last saved by the
// previous run (zero if the agent starts without one).
func (r *Registry) Written() time.Time { return r.written }

// FollowedSince returns since when the files of path are known to have been
// followed: when the registry loaded at start was written, or when a reader
// in this process first took a stream of path, whichever is earlier (zero
// if neither: the path was never read). A file rotated away from path
// since then, and unknown to the registry, was rotated past every reader
// (a tailer stopped by a config change, or held back by backpressure,
// before it looked again) and is the path's to read.
func (r *Registry) FollowedSince(path string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.written
	for _, s := range r.files {
		if s.path == path && !s.claimedAt.IsZero() && (since.IsZero() || s.claimedAt.Before(since)) {
			since = s.claimedAt
		}
	}
	return since
}

// EntrySeen reports whether the collect entry with key has been active on
// this host before (so files unknown to the registry appeared while it was
// active and must be read from their start).
func (r *Registry) EntrySeen(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.entries[key]
}

// SetEntries records the set of active collect entries.
func (r *Registry) SetEntries(keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = make(map[string]bool, len(keys))
	for _, k := range keys {
		r.entries[k] = true
	}
}

// Claim takes exclusive ownership of a stream for one reader. It returns
// false if another reader holds it (for example the tailer of the path a
// rotated file had before it was renamed to a name another glob matches).
func (r *Registry) Claim(k Key, path string) (*Handle, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.files[k]
	if ok && s.claimed {
		return nil, false
	}
	if !ok {
		s = &fileState{key: k}
		r.files[k] = s
	}
	s.claimed = true
	s.path = path
	if s.claimedAt.IsZero() {
		s.claimedAt = time.Now()
	}
	if !s.inst.IsZero() && s.tr == nil {
		s.tr = acktrack.New(s.restored)
	}
	return &Handle{r: r, s: s}, true
}

// SetAside moves the stream of k, if nobody reads it and it was last read
// at another path than path, out of k's way: to a key of its own (Key.
// Orphan) that no file has, keeping its path, generation and offsets. A
// file at path took the inode number of that stream's deleted file and is
// read as new under k; the stream's own path can still find its
// copytruncate copy by its fingerprint (OfPath) and read the rest from
// where it stopped. The agentsim found this: the new file took the stream
// for its own, as truncated, and sent the copy's rest, which the stream's
// path then read again from its start. A set-aside stream is dropped like
// one whose file is gone. It reports whether a stream was set aside.
func (r *Registry) SetAside(k Key, path string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.files[k]
	if !ok || s.claimed || s.path == path || s.inst.IsZero() {
		return false
	}
	o := k
	o.Orphan = binary.LittleEndian.Uint64(s.inst[:8]) | 1
	if _, taken := r.files[o]; taken {
		return false
	}
	delete(r.files, k)
	s.key = o
	r.files[o] = s
	return true
}

// Rotated returns streams of topic last read at path, other than except,
// that nobody is reading: candidates for files rotated away while the agent
// was not running, whose unread tail must still be sent.
func (r *Registry) Rotated(topic, path string, except Key) []Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Stream
	for k, s := range r.files {
		if k == except || k.Topic != topic || s.path != path || s.claimed || s.inst.IsZero() {
			continue
		}
		acked, _, _ := s.offsets()
		out = append(out, Stream{Key: k, Path: s.path, Offset: acked, FPLen: s.fpLen, FP: s.fp})
	}
	return out
}

// OfPath lists the streams of topic that path has had (the current one
// and those rotated away, claimed or not), with their fingerprints.
func (r *Registry) OfPath(topic, path string) []Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Stream
	for k, s := range r.files {
		if k.Topic != topic || s.path != path || s.inst.IsZero() {
			continue
		}
		acked, _, _ := s.offsets()
		out = append(out, Stream{Key: k, Path: s.path, Offset: acked, Claimed: s.claimed, FPLen: s.fpLen, FP: s.fp})
	}
	return out
}

// Stream is a read-only view of one stream, for status reports.
type Stream struct {
	Key      Key
	Path     string
	Instance record.Instance
	Offset   int64 // acked
	Read     int64
	InFlight int
	Claimed  bool
	// FPLen and FP fingerprint the first bytes of the generation (set by
	// Rotated).
	FPLen int
	FP    uint64
}

// Streams lists every known stream.
func (r *Registry) Streams() []Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Stream, 0, len(r.files))
	for k, s := range r.files {
		acked, read, n := s.offsets()
		out = append(out, Stream{Key: k, Path: s.path, Instance: s.inst, Offset: acked, Read: read, InFlight: n, Claimed: s.claimed})
	}
	return out
}

// Handle is a reader's exclusive hold on one stream.
type Handle struct {
	r *Registry
	s *fileState
}

// Known reports whether the stream has a generation (was read before).
func (h *Handle) Known() bool {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	return !h.s.inst.IsZero()
}

// Instance returns the current generation.
func (h *Handle) Instance() record.Instance {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	return h.s.inst
}

// Resume returns where reading continues: the end of the last event handed
// to the producer by an earlier holder in this process, or the acked
// offset after a restart.
func (h *Handle) Resume() int64 {
	_, read, _ := h.s.offsets()
	return read
}

// Acked returns the acknowledged offset.
func (h *Handle) Acked() int64 {
	acked, _, _ := h.s.offsets()
	return acked
}

// Fingerprint returns the length and hash of the file's first bytes as
// last recorded.
func (h *Handle) Fingerprint() (int, uint64) {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	return h.s.fpLen, h.s.fp
}

// SetFingerprint records a longer fingerprint of the same generation.
func (h *Handle) SetFingerprint(n int, fp uint64) {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.s.fpLen, h.s.fp = n, fp
}

// Start begins a new generation at offset (a file seen for the first time,
// or one that was truncated or replaced) and persists it before returning,
// so no event of the generation is sent before its instance is on disk.
//
// If the save fails the stream is left as it was: a generation that is not
// on disk must never be read under, or a crash would make the next run draw
// another id for the same lines.
func (h *Handle) Start(offset int64, fpLen int, fp uint64) error {
	r := h.r
	r.mu.Lock()
	old := *h.s
	oldStamps := old.st.clone()
	h.s.inst = record.NewInstance()
	h.s.instGen = unsnapshotted
	h.s.tr = acktrack.New(offset)
	h.s.fpLen, h.s.fp = fpLen, fp
	h.s.seen = time.Now().UTC().Truncate(seenGranularity)
	// The generation's offsets start afresh, and so do its stamps: an epoch
	// dated by the save that writes it (zero until then) and a limit
	// ahead, on disk with the generation.
	h.s.st = stamps{plimit: offset + stampMinAhead, pgen: unsnapshotted, hw: offset, snapHW: offset}
	h.s.st.startEpoch(offset, time.Time{}, unsnapshotted)
	r.mu.Unlock()
	// Many files starting at once (an agent's first run) share saves: a
	// save that finished while this one waited may have written it.
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	g := h.s.instGen
	r.mu.Unlock()
	var err error
	switch g {
	case 0:
	case unsnapshotted:
		err = r.saveLocked()
	default:
		err = r.lastSaveErr // the save that carried it failed
	}
	if err != nil {
		r.mu.Lock()
		h.s.inst, h.s.instGen, h.s.tr, h.s.fpLen, h.s.fp, h.s.seen, h.s.st = old.inst, old.instGen, old.tr, old.fpLen, old.fp, old.seen, oldStamps
		r.mu.Unlock()
		r.hasSaved, r.lastSum = false, 0 // what is on disk may now differ from memory
		return fmt.Errorf("persisting new file generation: %w", err)
	}
	if old.tr != nil {
		old.tr.Kill() // late acks of the old generation are ignored
	}
	return nil
}

// Emit registers an event ending at end and returns the acker and sequence
// number the producer reports back with.
func (h *Handle) Emit(end int64) (acktrack.Acker, uint64) {
	tr := h.s.tr
	return tr, tr.Emit(end, false)
}

// EmitBatch registers several spans (see acktrack.Tracker.EmitBatch) and
// returns the acker and the first sequence number.
func (h *Handle) EmitBatch(ends []int64, done []bool) (acktrack.Acker, uint64) {
	tr := h.s.tr
	return tr, tr.EmitBatch(ends, done)
}

// Skip advances past bytes that produce no event (blank lines).
func (h *Handle) Skip(end int64) { h.s.tr.Emit(end, true) }

// Release gives the stream up; in-flight events still acknowledge into it.
func (h *Handle) Release() {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.s.claimed = false
	h.s.released = time.Now()
}

// Released returns when the stream was last let go of: by a reader in this
// process, or (for a stream loaded from disk) when the registry file was
// written. Zero for a stream never held before. Files rotated away since
// then were never seen by any reader.
func (h *Handle) Released() time.Time {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	return h.s.released
}

// Forget drops the stream (its file is gone for good and fully read).
func (h *Handle) Forget() {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.s.claimed = false
	if h.r.files[h.s.key] == h.s {
		if _, _, n := h.s.offsets(); n == 0 {
			delete(h.r.files, h.s.key)
		}
	}
}

// Retract undoes the last Emit, for an event that was never handed to the
// producer.
func (h *Handle) Retract(seq uint64) { h.s.tr.Retract(seq) }

// Shrink gives back what the stream's tracker grew for a burst, if nothing
// is in flight (see acktrack.Tracker.Shrink).
func (h *Handle) Shrink() { h.s.tr.Shrink() }

// InFlight returns the number of events sent but not yet acknowledged.
func (h *Handle) InFlight() int {
	_, _, n := h.s.offsets()
	return n
}

// Stream returns the stream of k, if it is known (has or had a
// generation).
func (r *Registry) Stream(k Key) (Stream, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.files[k]
	if !ok || s.inst.IsZero() {
		return Stream{}, false
	}
	acked, _, _ := s.offsets()
	return Stream{Key: k, Path: s.path, Offset: acked, Claimed: s.claimed, FPLen: s.fpLen, FP: s.fp}, true
}

// Has reports whether the stream is known (has or had a generation).
func (r *Registry) Has(k Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.files[k]
	return ok && !s.inst.IsZero()
}
