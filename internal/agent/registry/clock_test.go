package registry

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// crashCopy opens, in a new directory, the registry file r has on disk
// now: what an agent SIGKILLed at this moment would find on restart.
func crashCopy(t *testing.T, r *Registry) *Registry {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(r.dir, fileName))
	if err != nil {
		t.Fatalf("reading the saved registry: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, fileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return open(t, dir)
}

// saved reports whether the last save covers the current state.
func (r *Registry) saved() bool {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	return r.hasSaved && r.lastSum == r.stateSum()
}

// With the save clock in the test's hands: a restart after a crash resumes
// at the acknowledged offset of the last save, never past an
// unacknowledged line, so it re-sends exactly what was acknowledged after
// that save.
func TestCrashResumesAtLastSavedAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		// "e": emit a 10-byte line; "aN": Kafka acknowledges line N;
		// "t": the save clock ticks
		steps      []string
		wantResume int64
	}{
		{"acked, then saved", []string{"e", "e", "a0", "a1", "t"}, 20},
		{"acked after the last save", []string{"e", "e", "a0", "t", "a1"}, 10},
		{"no tick since the start", []string{"e", "e", "a0", "a1"}, 0},
		{"gap: line 1 unacknowledged", []string{"e", "e", "e", "a0", "a2", "t"}, 10},
		{"two saves, acks between", []string{"e", "a0", "t", "e", "e", "a1", "a2", "t", "e"}, 30},
		{"emitted, never acked, saved", []string{"e", "e", "t"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, t.TempDir())
			ticks := make(chan time.Time)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); r.RunClock(ctx, ticks) }()
			t.Cleanup(func() { cancel(); <-done })
			h := claim(t, r, keyA, "/a")
			start(t, h, 0) // Start saves the new generation at once
			var acks []acktrack.Acker
			var seqs []uint64
			off := int64(0)
			for _, st := range tc.steps {
				switch st {
				case "e":
					off += 10
					a, s := h.Emit(off)
					acks, seqs = append(acks, a), append(seqs, s)
				case "t":
					ticks <- time.Now()
					testutil.Eventually(t, 5*time.Second, r.saved, testutil.Msg("the tick's save"))
				default:
					var i int
					fmt.Sscanf(st, "a%d", &i)
					acks[i].Ack(seqs[i])
				}
			}
			h2 := claim(t, crashCopy(t, r), keyA, "/a")
			if got := h2.Resume(); got != tc.wantResume {
				t.Fatalf("resumes at %d after the crash, want %d", got, tc.wantResume)
			}
		})
	}
}
