package registry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
)

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// counterValue reads a counter. It does what prometheus/testutil.ToFloat64
// does; testutil itself needs a module (kylelemons/godebug) that is not in
// go.sum.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// open opens the registry in dir with a fresh metrics registry and closes
// it when the test ends (closing twice is harmless).
func open(t *testing.T, dir string) *Registry {
	t.Helper()
	r, err := Open(dir, quietLog(), prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// reopen saves and closes r, then opens its dir again.
func reopen(t *testing.T, r *Registry) *Registry {
	t.Helper()
	if err := r.Save(); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return open(t, r.dir)
}

func claim(t *testing.T, r *Registry, k Key, path string) *Handle {
	t.Helper()
	h, ok := r.Claim(k, path)
	if !ok || h == nil {
		t.Fatalf("Claim(%v) failed", k)
	}
	return h
}

func start(t *testing.T, h *Handle, off int64) {
	t.Helper()
	if err := h.Start(off, 0, 0); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

func readDisk(t *testing.T, path string) diskFile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d diskFile
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s does not parse: %v\n%s", path, err, data)
	}
	return d
}

func findStream(t *testing.T, r *Registry, k Key) Stream {
	t.Helper()
	for _, s := range r.Streams() {
		if s.Key == k {
			return s
		}
	}
	t.Fatalf("stream %v not in registry", k)
	return Stream{}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

var (
	keyA = Key{Dev: 1, Ino: 100, Topic: "logs"}
	keyB = Key{Dev: 1, Ino: 200, Topic: "logs"}
	keyC = Key{Dev: 1, Ino: 300, Topic: "logs"}
)

func TestPersistAcrossReopen(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/var/log/a.log")
	if h.Known() {
		t.Fatal("new stream is Known")
	}
	if err := h.Start(50, 1024, 0xfeed); err != nil {
		t.Fatal(err)
	}
	if !h.Known() {
		t.Fatal("started stream is not Known")
	}
	inst := h.Instance()
	if inst.IsZero() {
		t.Fatal("Start left the instance zero")
	}
	a1, s1 := h.Emit(100)
	_, _ = h.Emit(250) // handed to the producer, never acked
	a1.Ack(s1)
	if got := h.Acked(); got != 100 {
		t.Fatalf("Acked = %d, want 100", got)
	}
	if got := h.Resume(); got != 250 {
		t.Fatalf("Resume before restart = %d, want 250", got)
	}

	r = reopen(t, r)
	s := findStream(t, r, keyA)
	if s.Instance != inst || s.Offset != 100 || s.Path != "/var/log/a.log" || s.Claimed {
		t.Fatalf("after reopen: %+v, want instance %v offset 100 unclaimed", s, inst)
	}
	h = claim(t, r, keyA, "/var/log/a.log")
	if !h.Known() || h.Instance() != inst {
		t.Fatalf("after reopen: Known %v instance %v, want true %v", h.Known(), h.Instance(), inst)
	}
	if got := h.Resume(); got != 100 {
		t.Fatalf("Resume after restart = %d, want the acked 100 (not the emitted 250)", got)
	}
	if got := h.Acked(); got != 100 {
		t.Fatalf("Acked after restart = %d, want 100", got)
	}
	if n, fp := h.Fingerprint(); n != 1024 || fp != 0xfeed {
		t.Fatalf("Fingerprint = %d, %#x; want 1024, 0xfeed", n, fp)
	}
	if got := h.InFlight(); got != 0 {
		t.Fatalf("InFlight after restart = %d", got)
	}
	// The restored tracker keeps counting from the acked offset.
	a, seq := h.Emit(180)
	a.Ack(seq)
	if got := h.Acked(); got != 180 {
		t.Fatalf("Acked = %d, want 180", got)
	}
}

func TestSetFingerprintPersists(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	h.SetFingerprint(4096, 42)
	r = reopen(t, r)
	h = claim(t, r, keyA, "/a")
	if n, fp := h.Fingerprint(); n != 4096 || fp != 42 {
		t.Fatalf("Fingerprint = %d, %d; want 4096, 42", n, fp)
	}
}

func TestClaimIsExclusive(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	if h2, ok := r.Claim(keyA, "/a"); ok || h2 != nil {
		t.Fatal("second Claim of a held stream succeeded")
	}
	if h2, ok := r.Claim(keyA, "/other"); ok || h2 != nil {
		t.Fatal("Claim under another path of a held stream succeeded")
	}
	// Another topic is another stream.
	claim(t, r, Key{Dev: keyA.Dev, Ino: keyA.Ino, Topic: "other"}, "/a")
	h.Release()
	claim(t, r, keyA, "/a")
}

func TestReleaseReclaimHandsOver(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	start(t, h, 10)
	inst := h.Instance()
	a1, s1 := h.Emit(100)
	a2, s2 := h.Emit(200)
	h.Skip(201)
	h.Release()

	h2 := claim(t, r, keyA, "/a")
	if h2.Instance() != inst {
		t.Fatal("re-claim changed the instance")
	}
	if got := h2.Resume(); got != 201 {
		t.Fatalf("Resume after handover = %d, want the read offset 201 (no re-read)", got)
	}
	if got := h2.Acked(); got != 10 {
		t.Fatalf("Acked after handover = %d, want 10", got)
	}
	if got := h2.InFlight(); got != 3 {
		t.Fatalf("InFlight after handover = %d, want 3", got)
	}
	// Acks of events the first holder sent still count.
	a2.Ack(s2)
	a1.Ack(s1)
	if got := h2.Acked(); got != 201 {
		t.Fatalf("Acked = %d, want 201", got)
	}
}

func TestStartPersistsSynchronously(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	inst := h.Instance()

	d := readDisk(t, filepath.Join(dir, fileName))
	if len(d.Files) != 1 || d.Files[0].Instance != inst.String() || d.Files[0].Key != keyA {
		t.Fatalf("registry.json right after Start = %+v, want instance %s", d.Files, inst)
	}
	if got := counterValue(t, r.saves); got != 1 {
		t.Fatalf("saves = %v, want 1", got)
	}

	// A truncation starts a new generation: persisted too, and late acks
	// of the old one do not move the new one.
	oldAcker, oldSeq := h.Emit(500)
	start(t, h, 0)
	inst2 := h.Instance()
	if inst2 == inst {
		t.Fatal("second Start kept the instance")
	}
	d = readDisk(t, filepath.Join(dir, fileName))
	if len(d.Files) != 1 || d.Files[0].Instance != inst2.String() || d.Files[0].Offset != 0 {
		t.Fatalf("registry.json after second Start = %+v, want instance %s offset 0", d.Files, inst2)
	}
	a, seq := h.Emit(30)
	if seq != oldSeq {
		t.Fatalf("test assumes seqs restart: got %d and %d", seq, oldSeq)
	}
	oldAcker.Ack(oldSeq)
	if got := h.Acked(); got != 0 {
		t.Fatalf("late ack of the old generation moved the new one to %d", got)
	}
	a.Ack(seq)
	if got := h.Acked(); got != 30 {
		t.Fatalf("Acked = %d, want 30", got)
	}

	// And across a restart.
	r.Close()
	r2 := open(t, dir)
	if s := findStream(t, r2, keyA); s.Instance != inst2 {
		t.Fatalf("reopened instance %v, want %v", s.Instance, inst2)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	first, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	a, s := h.Emit(77)
	a.Ack(s)
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}

	d := readDisk(t, filepath.Join(dir, fileName))
	if d.Version != version || len(d.Files) != 1 || d.Files[0].Offset != 77 {
		t.Fatalf("registry.json = %+v, want version %d and offset 77", d, version)
	}
	prev, err := os.ReadFile(filepath.Join(dir, prevName))
	if err != nil {
		t.Fatalf("no previous registry: %v", err)
	}
	if string(prev) != string(first) {
		t.Fatalf("registry.json.prev =\n%s\nwant the previous version\n%s", prev, first)
	}
	if got, want := dirNames(t, dir), []string{lockName, fileName, prevName}; !reflect.DeepEqual(got, want) {
		t.Fatalf("data dir holds %v, want %v (no temp files)", got, want)
	}
}

// goodRegistry returns the bytes of a valid registry file holding keyA at
// offset 123, and its instance.
func goodRegistry(t *testing.T) ([]byte, record.Instance) {
	t.Helper()
	dir := t.TempDir()
	r := open(t, dir)
	r.SetEntries([]string{"entry-1"})
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	a, s := h.Emit(123)
	a.Ack(s)
	h.Release()
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	return data, h.Instance()
}

func TestCorruptRecovery(t *testing.T) {
	good, inst := goodRegistry(t)
	garbage := []byte("{\"version\": 1, \"files\": [{\"dev\"") // torn write
	wrongVersion := []byte(strings.Replace(string(good), `"version": 1`, `"version": 2`, 1))
	badInstance := []byte(strings.Replace(string(good), inst.String(), "not-hex", 1))
	negOffset := []byte(strings.Replace(string(good), `"offset": 123`, `"offset": -5`, 1))
	for _, b := range [][]byte{wrongVersion, badInstance, negOffset} {
		if string(b) == string(good) {
			t.Fatalf("test setup: replacement did not apply to\n%s", good)
		}
	}

	tests := []struct {
		name       string
		cur, prev  []byte // nil: file absent
		wantStream bool
		corrupt    float64
		aside      []string // files moved aside
	}{
		{name: "good", cur: good, wantStream: true},
		{name: "empty dir"},
		{name: "garbage, prev good", cur: garbage, prev: good, wantStream: true, corrupt: 1, aside: []string{fileName}},
		{name: "both garbage", cur: garbage, prev: garbage, corrupt: 2, aside: []string{fileName, prevName}},
		{name: "missing, prev good", prev: good, wantStream: true},
		{name: "missing, prev garbage", prev: garbage, corrupt: 1, aside: []string{prevName}},
		{name: "empty file, prev good", cur: []byte{}, prev: good, wantStream: true, corrupt: 1, aside: []string{fileName}},
		{name: "wrong version, prev good", cur: wrongVersion, prev: good, wantStream: true, corrupt: 1, aside: []string{fileName}},
		{name: "wrong version twice", cur: wrongVersion, prev: wrongVersion, corrupt: 2, aside: []string{fileName, prevName}},
		{name: "bad instance, prev good", cur: badInstance, prev: good, wantStream: true, corrupt: 1, aside: []string{fileName}},
		{name: "negative offset, prev good", cur: negOffset, prev: good, wantStream: true, corrupt: 1, aside: []string{fileName}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range map[string][]byte{fileName: tc.cur, prevName: tc.prev} {
				if data != nil {
					if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			r := open(t, dir)
			if got := counterValue(t, r.corrupt); got != tc.corrupt {
				t.Errorf("corrupt counter = %v, want %v", got, tc.corrupt)
			}
			streams := r.Streams()
			if tc.wantStream {
				if len(streams) != 1 || streams[0].Key != keyA || streams[0].Instance != inst || streams[0].Offset != 123 {
					t.Errorf("streams = %+v, want keyA at 123 with instance %v", streams, inst)
				}
				if !r.EntrySeen("entry-1") {
					t.Error("entries were not loaded")
				}
			} else if len(streams) != 0 || r.EntrySeen("entry-1") {
				t.Errorf("streams = %+v, want an empty registry", streams)
			}
			for _, name := range tc.aside {
				matches, _ := filepath.Glob(filepath.Join(dir, name+".corrupt-*"))
				if len(matches) != 1 {
					t.Errorf("%s.corrupt-*: %v, want one file", name, matches)
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
					t.Errorf("corrupt %s is still in place (%v)", name, err)
				}
			}
			if all, _ := filepath.Glob(filepath.Join(dir, "*.corrupt-*")); len(all) != len(tc.aside) {
				t.Errorf("files moved aside: %v, want %d", all, len(tc.aside))
			}

			// The registry keeps working: it saves and reopens to the same
			// state.
			r = reopen(t, r)
			if got := len(r.Streams()); got != len(streams) {
				t.Errorf("after save and reopen: %d streams, want %d", got, len(streams))
			}
			if got := counterValue(t, r.corrupt); got != 0 {
				t.Errorf("after save and reopen: corrupt counter = %v", got)
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	r2, err := Open(dir, quietLog(), prometheus.NewRegistry())
	if err == nil {
		r2.Close()
		t.Fatal("second Open of a locked data dir succeeded")
	}
	if !strings.Contains(err.Error(), "another logagent") {
		t.Fatalf("error %q does not mention another logagent", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	open(t, dir)
}

func TestDataDirIsPrivate(t *testing.T) {
	perm := func(p string) os.FileMode {
		t.Helper()
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	// A new data dir, and one left 0755 with a 0644 lock by an older
	// version, end 0700 with a 0600 lock and registry.
	fresh := filepath.Join(t.TempDir(), "new", "data")
	old := t.TempDir()
	if err := os.WriteFile(filepath.Join(old, fileName), []byte(`{"streams":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, lockName), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(old, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{fresh, old} {
		r := open(t, dir)
		if err := r.Save(); err != nil {
			t.Fatal(err)
		}
		if got := perm(dir); got != 0o700 {
			t.Errorf("%s is %v, want 0700", dir, got)
		}
		for _, f := range []string{lockName, fileName} {
			if got := perm(filepath.Join(dir, f)); got != 0o600 {
				t.Errorf("%s/%s is %v, want 0600", dir, f, got)
			}
		}
		r.Close()
	}
	// A directory the operator made and filled, not ours yet, keeps its
	// mode.
	shared := t.TempDir()
	if err := os.WriteFile(filepath.Join(shared, "other.txt"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o750); err != nil {
		t.Fatal(err)
	}
	open(t, shared).Close()
	if got := perm(shared); got != 0o750 {
		t.Errorf("operator's dir changed to %v", got)
	}
}

func TestSaveWithoutChangeDoesNotWrite(t *testing.T) {
	hour := time.Now().UTC().Truncate(seenGranularity)
	dir := t.TempDir()
	r := open(t, dir)
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	r.SetEntries([]string{"e"})
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	saves := counterValue(t, r.saves)
	before, err := os.Stat(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := r.Save(); err != nil {
			t.Fatal(err)
		}
	}
	after, err := os.Stat(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	if !time.Now().UTC().Truncate(seenGranularity).Equal(hour) {
		t.Skip("crossed an hour boundary: the seen time of a claimed stream changed")
	}
	if got := counterValue(t, r.saves); got != saves {
		t.Fatalf("saves went from %v to %v without a change", saves, got)
	}
	if !os.SameFile(before, after) {
		t.Fatal("registry.json was replaced without a change")
	}
	// A change is written.
	a, s := h.Emit(10)
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, r.saves); got != saves {
		t.Fatalf("an unacked emit changed the file (saves %v, want %v)", got, saves)
	}
	a.Ack(s)
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, r.saves); got != saves+1 {
		t.Fatalf("saves = %v after an ack, want %v", got, saves+1)
	}
	if got := counterValue(t, r.saveErrors); got != 0 {
		t.Fatalf("save errors = %v", got)
	}
}

func TestEntries(t *testing.T) {
	r := open(t, t.TempDir())
	if r.EntrySeen("a") {
		t.Fatal("empty registry has seen an entry")
	}
	r.SetEntries([]string{"a", "b"})
	r = reopen(t, r)
	for k, want := range map[string]bool{"a": true, "b": true, "c": false} {
		if got := r.EntrySeen(k); got != want {
			t.Errorf("after reopen EntrySeen(%q) = %v, want %v", k, got, want)
		}
	}
	r.SetEntries([]string{"c"})
	r = reopen(t, r)
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if got := r.EntrySeen(k); got != want {
			t.Errorf("after replace EntrySeen(%q) = %v, want %v", k, got, want)
		}
	}
	r.SetEntries(nil)
	r = reopen(t, r)
	if r.EntrySeen("c") {
		t.Error("entries not cleared")
	}
}

func TestRotated(t *testing.T) {
	r := open(t, t.TempDir())
	mk := func(ino uint64, topic, path string, started, release bool, acked int64) Key {
		k := Key{Dev: 9, Ino: ino, Topic: topic}
		h := claim(t, r, k, path)
		if started {
			start(t, h, 0)
			a, s := h.Emit(acked)
			a.Ack(s)
			h.Emit(acked + 100) // in flight: Rotated reports the acked offset
		}
		if release {
			h.Release()
		}
		return k
	}
	want := mk(1, "logs", "/var/log/app.log", true, true, 40)
	mk(2, "logs", "/var/log/app.log", true, false, 10)  // still claimed
	mk(3, "other", "/var/log/app.log", true, true, 10)  // other topic
	mk(4, "logs", "/var/log/app.log.1", true, true, 10) // other path
	mk(5, "logs", "/var/log/app.log", false, true, 0)   // never started
	except := mk(6, "logs", "/var/log/app.log", true, true, 10)

	got := r.Rotated("logs", "/var/log/app.log", except)
	if len(got) != 1 || got[0].Key != want || got[0].Offset != 40 || got[0].Path != "/var/log/app.log" {
		t.Fatalf("Rotated = %+v, want only %v at offset 40", got, want)
	}

	// After a restart nothing is claimed; offsets are the acked ones.
	r = reopen(t, r)
	got = r.Rotated("logs", "/var/log/app.log", except)
	sort.Slice(got, func(i, j int) bool { return got[i].Key.Ino < got[j].Key.Ino })
	if len(got) != 2 || got[0].Key.Ino != 1 || got[0].Offset != 40 || got[1].Key.Ino != 2 || got[1].Offset != 10 {
		t.Fatalf("Rotated after restart = %+v, want inodes 1 (40) and 2 (10)", got)
	}
	if got := r.Rotated("nope", "/var/log/app.log", Key{}); len(got) != 0 {
		t.Fatalf("Rotated for an unknown topic = %+v", got)
	}
}

func TestForget(t *testing.T) {
	t.Run("nothing in flight", func(t *testing.T) {
		r := open(t, t.TempDir())
		h := claim(t, r, keyA, "/a")
		start(t, h, 0)
		a, s := h.Emit(10)
		a.Ack(s)
		h.Skip(11)
		claim(t, r, keyB, "/b")
		h.Forget()
		for _, s := range r.Streams() {
			if s.Key == keyA {
				t.Fatalf("forgotten stream still listed: %+v", s)
			}
		}
		r = reopen(t, r)
		if got := r.Streams(); len(got) != 0 {
			t.Fatalf("after reopen: %+v, want nothing", got)
		}
	})
	t.Run("never started", func(t *testing.T) {
		r := open(t, t.TempDir())
		claim(t, r, keyA, "/a").Forget()
		if got := r.Streams(); len(got) != 0 {
			t.Fatalf("streams = %+v", got)
		}
	})
	t.Run("in flight is kept", func(t *testing.T) {
		r := open(t, t.TempDir())
		h := claim(t, r, keyA, "/a")
		start(t, h, 0)
		a, s := h.Emit(10)
		h.Forget()
		st := findStream(t, r, keyA)
		if st.Claimed || st.InFlight != 1 {
			t.Fatalf("after Forget with an event in flight: %+v, want kept, unclaimed", st)
		}
		a.Ack(s)
		if st := findStream(t, r, keyA); st.Offset != 10 {
			t.Fatalf("ack after Forget: offset %d, want 10", st.Offset)
		}
		claim(t, r, keyA, "/a") // it can be claimed again
	})
}

func TestRetractThroughHandle(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	h.Emit(10)
	_, s := h.Emit(20)
	h.Retract(s)
	if got := h.Resume(); got != 10 {
		t.Fatalf("Resume after Retract = %d, want 10", got)
	}
	if got := h.InFlight(); got != 1 {
		t.Fatalf("InFlight after Retract = %d, want 1", got)
	}
}

func TestOldStreamsSurviveStartAndArePrunedOnlyWhenGone(t *testing.T) {
	// Streams last seen two days ago (a long downtime) are loaded and
	// saved again untouched, so the tailers can claim them; later only
	// those whose files are gone are dropped.
	dir := t.TempDir()
	old := time.Now().UTC().Add(-48 * time.Hour).Truncate(seenGranularity)
	inst := record.NewInstance()
	d := diskFile{Version: version, Files: []diskEntry{
		{Key: keyA, Path: "/a", Instance: inst.String(), Offset: 5, Seen: old},
		{Key: keyB, Path: "/b", Instance: inst.String(), Offset: 6, Seen: old},
		{Key: keyC, Path: "/c", Instance: inst.String(), Offset: 7, Seen: old},
	}}
	data, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir)
	present := map[Key]bool{keyA: true} // B and C are gone from disk
	r.exists = func(_ string, k Key) bool { return present[k] }
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	if disk := readDisk(t, filepath.Join(dir, fileName)); len(disk.Files) != 3 {
		t.Fatalf("first save kept %d of 3 streams", len(disk.Files))
	}
	if n := r.Prune(time.Now()); n != 0 {
		t.Fatalf("pruned %d streams right after start, want 0 (tailers claim first)", n)
	}
	h := claim(t, r, keyC, "/c") // claimed: never pruned, gone or not
	if got := h.Resume(); got != 7 {
		t.Fatalf("Resume = %d, want 7", got)
	}
	if n := r.Prune(time.Now().Add(pruneAfter + time.Minute)); n != 1 {
		t.Fatalf("pruned %d, want 1 (only B: gone and unclaimed)", n)
	}
	if err := r.Save(); err != nil {
		t.Fatal(err)
	}
	var keys []Key
	for _, f := range readDisk(t, filepath.Join(dir, fileName)).Files {
		keys = append(keys, f.Key)
	}
	if len(keys) != 2 || keys[0] != keyA || keys[1] != keyC {
		t.Fatalf("saved %v, want A and C", keys)
	}
}

func TestFileExists(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	k := Key{Dev: uint64(st.Dev), Ino: st.Ino, Topic: "t"}
	if !fileExists(p, k) {
		t.Fatal("file at its path not found")
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if !fileExists(p, k) {
		t.Fatal("file renamed next to its path not found")
	}
	if err := os.Remove(p + ".1"); err != nil {
		t.Fatal(err)
	}
	if fileExists(p, k) {
		t.Fatal("deleted file reported as existing")
	}
	if fileExists(filepath.Join(dir, "gone", "a.log"), k) {
		t.Fatal("file in a deleted directory reported as existing")
	}
}

func TestRunSavesOnStop(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir)
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	a, s := h.Emit(99)
	a.Ack(s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Run(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if d := readDisk(t, filepath.Join(dir, fileName)); len(d.Files) != 1 || d.Files[0].Offset != 99 {
		t.Fatalf("saved %+v, want offset 99", d.Files)
	}
}

// TestRegistryConcurrent runs under -race: a reader emits, several
// goroutines ack, and saves and status reads run alongside.
func TestRegistryConcurrent(t *testing.T) {
	const n = 5000
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)

	type ack struct {
		a   acktrack.Acker
		seq uint64
	}
	work := make(chan ack, 64)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(1))
			var buf []ack
			for a := range work {
				buf = append(buf, a)
				if len(buf) == 16 {
					rng.Shuffle(len(buf), func(i, j int) { buf[i], buf[j] = buf[j], buf[i] })
					for _, b := range buf {
						b.a.Ack(b.seq)
					}
					buf = buf[:0]
				}
			}
			for _, b := range buf {
				b.a.Ack(b.seq)
			}
		}()
	}
	done := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if err := r.Save(); err != nil {
				t.Error(err)
				return
			}
			r.Streams()
			r.Rotated("logs", "/a", Key{})
		}
	}()

	var end int64
	for i := 0; i < n; i++ {
		end += 10
		if i%11 == 0 {
			h.Skip(end)
			continue
		}
		a, seq := h.Emit(end)
		work <- ack{a, seq}
	}
	close(work)
	wg.Wait()
	close(done)
	bg.Wait()

	if got := h.Acked(); got != end {
		t.Fatalf("Acked = %d, want %d", got, end)
	}
	r = reopen(t, r)
	if s := findStream(t, r, keyA); s.Offset != end {
		t.Fatalf("after reopen offset %d, want %d", s.Offset, end)
	}
}

func TestFailedStartLeavesTheStreamAsItWas(t *testing.T) {
	// A generation whose save failed must not be read under: a crash
	// would make the next run draw another id for the same lines.
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/a")
	start(t, h, 0)
	first := h.Instance()
	a, s := h.Emit(10)
	r.write = func(string, []byte) error { return errors.New("disk full") }
	if err := h.Start(0, 0, 0); err == nil {
		t.Fatal("Start succeeded with a failing write")
	}
	if h.Instance() != first {
		t.Fatal("failed Start changed the generation")
	}
	a.Ack(s) // the old generation's tracker still takes acks
	if got := h.Acked(); got != 10 {
		t.Fatalf("acked %d after a failed Start, want 10", got)
	}
	r.write = writeAtomic
	if err := h.Start(0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if h.Instance() == first {
		t.Fatal("Start kept the old generation")
	}

	fresh := claim(t, r, keyB, "/b")
	r.write = func(string, []byte) error { return errors.New("disk full") }
	if err := fresh.Start(0, 0, 0); err == nil || fresh.Known() {
		t.Fatalf("failed Start of a new stream: err %v, known %v", err, fresh.Known())
	}
}

// A stream set aside for a file of another path that took its inode
// number keeps, under a key no file has, its path, generation, offset and
// fingerprint (its path can still find its copytruncate copy), survives a
// restart, leaves its key to the new file, and is dropped like a stream
// whose file is gone.
func TestSetAsideKeepsTheStreamForItsPath(t *testing.T) {
	r := open(t, t.TempDir())
	h := claim(t, r, keyA, "/logs/a.log")
	if err := h.Start(0, 16, 0xfeed); err != nil {
		t.Fatal(err)
	}
	inst := h.Instance()
	acker, seq := h.Emit(70)
	acker.Ack(seq)
	h.Release()

	if r.SetAside(keyA, "/logs/a.log") {
		t.Fatal("set aside for its own path")
	}
	other := claim(t, r, keyA, "/logs/b.log")
	other.Release()
	if r.SetAside(keyA, "/logs/b.log") {
		t.Fatal("set aside a stream whose last path is the one asking")
	}
	// Back at its own path's name, as it was before the other file came.
	claim(t, r, keyA, "/logs/a.log").Release()
	if !r.SetAside(keyA, "/logs/d.log") {
		t.Fatal("not set aside for another path's file")
	}
	if h := claim(t, r, keyA, "/logs/d.log"); h.Known() {
		t.Fatal("the new file got the old stream")
	} else {
		h.Release()
	}
	for range 2 {
		var got []Stream
		for _, s := range r.OfPath("logs", "/logs/a.log") {
			if s.Key.Orphan != 0 {
				got = append(got, s)
			}
		}
		if len(got) != 1 || got[0].Offset != 70 || got[0].FPLen != 16 || got[0].FP != 0xfeed || got[0].Key.Ino != keyA.Ino {
			t.Fatalf("a.log's set-aside stream: %+v", got)
		}
		if st := findStream(t, r, got[0].Key); st.Instance != inst {
			t.Fatalf("instance %v, want %v", st.Instance, inst)
		}
		r = reopen(t, r)
	}
	r.exists = func(string, Key) bool { return true } // its inode is d.log's
	if n := r.Prune(time.Now().Add(pruneAfter + time.Minute)); n != 1 {
		t.Fatalf("pruned %d, want the set-aside stream (d.log's is unread)", n)
	}
}
