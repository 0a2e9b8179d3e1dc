package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/agent/event"
)

// clock is a settable time for the registry and the test's reads.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// day is 2026-12-01 at h:m:s.ms UTC; next day with d = 1.
func day(d, h, m, s, ms int) time.Time {
	return time.Date(2026, 12, 1+d, h, m, s, ms*int(time.Millisecond), time.UTC)
}

// events are n events of size bytes from offset from.
func events(from int64, n, size int) ([]event.Event, int64) {
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i].Offset = from + int64(i*size)
	}
	return evs, from + int64(n*size)
}

func openAt(t *testing.T, dir string, c *clock) *Registry {
	t.Helper()
	r, err := Open(dir, quietLog(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r.SetClock(c.now)
	return r
}

// crash drops the registry without saving: only what was on disk
// survives.
func crash(t *testing.T, r *Registry, dir string, c *clock) *Registry {
	t.Helper()
	r.Close()
	return openAt(t, dir, c)
}

func startStream(t *testing.T, r *Registry) *Handle {
	t.Helper()
	h, ok := r.Claim(Key{Dev: 1, Ino: 7, Topic: "web"}, "/var/log/a.log")
	if !ok {
		t.Fatal("claim refused")
	}
	if !h.Known() {
		if err := h.Start(0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func stampsOf(evs []event.Event) []time.Time {
	out := make([]time.Time, len(evs))
	for i := range evs {
		out[i] = evs[i].Stamp
	}
	return out
}

// Lines read just before midnight and never acknowledged (the agent is
// killed) are read again after midnight: they get the stamps they were
// first sent with, so the transfer puts both copies in one daily index.
// Lines nobody sent get the new day.
func TestResentEventsKeepTheirStampsAcrossMidnight(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 23, 59, 58, 0)}
	r := openAt(t, dir, c)
	h := startStream(t, r)
	ctx := context.Background()
	var sent []event.Event
	var end int64
	for i := 0; i < 6; i++ { // 6 s of reading at 40 KiB/s, a save every second
		c.t = c.t.Add(500 * time.Millisecond)
		evs, e := events(end, 40, 512)
		h.Stamp(ctx, evs, e, c.t)
		h.EmitBatch(ends(evs, e), make([]bool, len(evs)))
		sent, end = append(sent, evs...), e
		if i%2 == 1 {
			if err := r.Save(); err != nil {
				t.Fatal(err)
			}
		}
	}
	lastDay := sent[len(sent)-1].Stamp
	if lastDay.Day() != 2 {
		t.Fatalf("the last line read after midnight was stamped %v", lastDay)
	}
	days := map[int]int{}
	for _, ev := range sent {
		days[ev.Stamp.Day()]++
	}
	if days[1] == 0 || days[2] == 0 {
		t.Fatalf("stamps by day %v: the test should straddle midnight", days)
	}

	c.t = day(1, 0, 0, 30, 0) // killed; started again half a minute later
	r = crash(t, r, dir, c)
	defer r.Close()
	h = startStream(t, r)
	if a := h.Acked(); a != 0 {
		t.Fatalf("acked %d after a crash with nothing acknowledged", a)
	}
	again, e := events(0, len(sent), 512)
	h.Stamp(ctx, again, e, c.t)
	for i := range sent {
		if !again[i].Stamp.Equal(sent[i].Stamp) {
			t.Fatalf("event at %d stamped %v when re-sent, %v when first sent", again[i].Offset, again[i].Stamp, sent[i].Stamp)
		}
	}
	// Beyond what could have been sent, a fresh stamp.
	fresh, e2 := events(e+200<<10, 1, 512)
	h.Stamp(ctx, fresh, e2, c.t)
	if !fresh[0].Stamp.Equal(c.t) {
		t.Fatalf("a line nobody sent was stamped %v, want now (%v)", fresh[0].Stamp, c.t)
	}
}

func ends(evs []event.Event, end int64) []int64 {
	out := make([]int64, len(evs))
	for i := range evs {
		if i+1 < len(evs) {
			out[i] = evs[i+1].Offset
		} else {
			out[i] = end
		}
	}
	return out
}

// A stream idle for a while gets a fresh stamp for its next line, and the
// epoch is on disk before Stamp returns: a crash right after the send
// re-stamps the line the same.
func TestWakingStreamStampIsOnDiskBeforeSend(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 23, 59, 0, 0)}
	r := openAt(t, dir, c)
	h := startStream(t, r)
	ctx := context.Background()
	evs, e := events(0, 3, 100)
	h.Stamp(ctx, evs, e, c.t)
	h.EmitBatch(ends(evs, e), make([]bool, 3))
	c.t = day(1, 0, 1, 0, 0) // two minutes later, past midnight
	late, e2 := events(e, 1, 100)
	h.Stamp(ctx, late, e2, c.t)
	if !late[0].Stamp.Equal(c.t) {
		t.Fatalf("a line after two idle minutes stamped %v, want %v", late[0].Stamp, c.t)
	}
	r = crash(t, r, dir, c)
	defer r.Close()
	h = startStream(t, r)
	again, _ := events(e, 1, 100)
	c.t = day(1, 0, 5, 0, 0)
	h.Stamp(ctx, again, e2, c.t)
	if !again[0].Stamp.Equal(late[0].Stamp) {
		t.Fatalf("re-sent line stamped %v, first sent with %v: its epoch was not on disk before it was sent", again[0].Stamp, late[0].Stamp)
	}
}

// A burst past the saved limit waits for a save that raises it: after a
// crash nothing sent lies beyond the limit on disk.
func TestBurstPastTheLimitIsSavedFirst(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 12, 0, 0, 0)}
	r := openAt(t, dir, c)
	h := startStream(t, r)
	evs, e := events(0, 1000, 1024) // 1 MB at once, far past the first 64 KiB
	h.Stamp(context.Background(), evs, e, c.t)
	data, err := os.ReadFile(filepath.Join(dir, fileName))
	if err != nil {
		t.Fatal(err)
	}
	r2 := &Registry{exists: fileExists}
	if err := r2.decode(data, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range r2.files {
		if s.st.limit <= evs[len(evs)-1].Offset {
			t.Fatalf("limit on disk %d, yet an event at %d was stamped", s.st.limit, evs[len(evs)-1].Offset)
		}
	}
	r.Close()
}

// When the registry cannot be written, lines are still sent (stamped from
// memory) and counted; nothing waits for ever.
func TestUnwritableRegistryDoesNotHoldLines(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 12, 0, 0, 0)}
	r := openAt(t, dir, c)
	defer r.Close()
	h := startStream(t, r)
	r.write = func(string, []byte) error { return errors.New("no space left on device") }
	evs, e := events(0, 1000, 1024)
	done := make(chan struct{})
	go func() { h.Stamp(context.Background(), evs, e, c.t); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stamp waits for ever on an unwritable registry")
	}
	for _, ev := range evs {
		if ev.Stamp.IsZero() {
			t.Fatal("an event left without a stamp")
		}
	}
	if n := counterValue(t, r.stampsUnsaved); n != float64(len(evs)) {
		t.Fatalf("logagent_stamps_unsaved_total %v, want %d", n, len(evs))
	}
}

// A new generation (the file truncated) starts its stamps afresh, on disk
// with the generation.
func TestNewGenerationStartsFreshStamps(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 9, 0, 0, 0)}
	r := openAt(t, dir, c)
	defer r.Close()
	h := startStream(t, r)
	evs, e := events(0, 10, 100)
	h.Stamp(context.Background(), evs, e, c.t)
	c.t = day(0, 9, 30, 0, 0)
	if err := h.Start(0, 0, 0); err != nil {
		t.Fatal(err)
	}
	evs, e = events(0, 10, 100)
	h.Stamp(context.Background(), evs, e, c.t)
	if !evs[0].Stamp.Equal(c.t) {
		t.Fatalf("first line of the new generation stamped %v, want %v", evs[0].Stamp, c.t)
	}
	data, _ := os.ReadFile(filepath.Join(dir, fileName))
	if !strings.Contains(string(data), `"stamps"`) {
		t.Fatalf("registry file has no stamps:\n%s", data)
	}
}

// A slow stream's once-a-second save starts a fresh epoch where its unsent
// lines begin. A line read while that save is being written must wait for
// it: if the save fails, the line is stamped from the epoch on disk, so a
// crash re-stamps it the same.
func TestLineDuringSaveWaitsForIt(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 23, 59, 57, 0)}
	r := openAt(t, dir, c)
	h := startStream(t, r)
	ctx := context.Background()
	evs, e := events(0, 1, 100)
	h.Stamp(ctx, evs, e, c.t)
	h.EmitBatch(ends(evs, e), []bool{false})
	first := evs[0].Stamp

	entered, release := make(chan struct{}), make(chan struct{})
	r.write = func(string, []byte) error {
		close(entered)
		<-release
		return errors.New("disk gone")
	}
	c.t = day(0, 23, 59, 59, 500)
	saveErr := make(chan error, 1)
	go func() { saveErr <- r.Save() }()
	<-entered // the snapshot with the fresh epoch is taken; the write hangs
	r.write = writeAtomic
	waiting := make(chan struct{}, 1)
	r.mu.Lock()
	r.onStampWait = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
	}
	r.mu.Unlock()
	next, e2 := events(e, 1, 100)
	stamped := make(chan struct{})
	go func() { h.Stamp(ctx, next, e2, c.t); close(stamped) }()
	select {
	case <-waiting: // waits for the save, as it must
	case <-stamped: // did not wait: stamped from an epoch not on disk
	}
	close(release)
	if err := <-saveErr; err == nil {
		t.Fatal("the hung save should have failed")
	}
	<-stamped
	if !next[0].Stamp.Equal(first) {
		t.Fatalf("the line read during the failed save was stamped %v; only %v was on disk", next[0].Stamp, first)
	}
	r = crash(t, r, dir, c)
	defer r.Close()
	h = startStream(t, r)
	again, _ := events(e, 1, 100)
	c.t = day(1, 0, 0, 20, 0)
	h.Stamp(ctx, again, e2, c.t)
	if !again[0].Stamp.Equal(next[0].Stamp) {
		t.Fatalf("re-sent line stamped %v, first sent with %v", again[0].Stamp, next[0].Stamp)
	}
}

// Files starting at once share saves, and each Start returns only once its
// generation is on disk.
func TestConcurrentStartsAreEachOnDisk(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 8, 0, 0, 0)}
	r := openAt(t, dir, c)
	defer r.Close()
	const n = 64
	hs := make([]*Handle, n)
	for i := range hs {
		h, ok := r.Claim(Key{Dev: 2, Ino: uint64(i), Topic: "web"}, "/var/log/x.log")
		if !ok {
			t.Fatal("claim refused")
		}
		hs[i] = h
	}
	errs := make(chan error, n)
	for _, h := range hs {
		go func() {
			if err := h.Start(0, 0, 0); err != nil {
				errs <- err
				return
			}
			data, err := os.ReadFile(filepath.Join(dir, fileName))
			if err == nil && !strings.Contains(string(data), h.Instance().String()) {
				err = errors.New("Start returned before its generation was on disk")
			}
			errs <- err
		}()
	}
	for range hs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d starts, %v saves", n, counterValue(t, r.saves))
}

// A stream read as fast as the disk allows waits for no save in steady
// state: each periodic save raises its limit by a couple of seconds of its
// bytes, however close to it the last save was (a periodic save just after
// one the stream asked for used to raise the limit by only the bytes in
// between, and the stream then asked for a save, and waited for its fsync,
// every stampSaveGap).
func TestFastStreamWaitsForNoSaveInSteadyState(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: day(0, 12, 0, 0, 0)}
	r := openAt(t, dir, c)
	defer r.Close()
	h := startStream(t, r)
	var waits, late int
	r.mu.Lock()
	r.onStampWait = func() { waits++ }
	r.mu.Unlock()
	ctx := context.Background()
	const batch, size = 256, 1024 // 256 KiB a batch, 100 a second: 25 MiB/s
	start, off := c.t, int64(0)
	nextSave := start.Add(time.Second)
	for i := 0; i < 800; i++ {
		c.t = start.Add(time.Duration(i) * 10 * time.Millisecond)
		if !c.t.Before(nextSave) {
			if err := r.Save(); err != nil { // the once-a-second save
				t.Fatal(err)
			}
			// The ticker and the write take their time: 0-60 ms late.
			nextSave = nextSave.Add(time.Second + time.Duration(i%3)*30*time.Millisecond)
		}
		before := waits
		evs, e := events(off, batch, size)
		h.Stamp(ctx, evs, e, c.t)
		h.EmitBatch(ends(evs, e), make([]bool, batch))
		off = e
		if waits > before && c.t.Sub(start) >= 2*time.Second {
			late++
		}
	}
	if late > 0 {
		t.Fatalf("after the first 2 s the stream waited for %d saves (%d in all); want none", late, waits)
	}
}
