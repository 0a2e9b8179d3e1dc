package testutil

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"
)

// Schedules is a simulation's property: a schedule of 1 to maxOps
// operations, drawn with the drawer draw returns for it (drawn once per
// schedule: see Swarm), played by play in a synctest bubble, keeps
// every guarantee; play returns the ones broken. n, if set, counts the
// schedules played. The first failure's errors also go to stderr: a
// schedule that fails only with some file system states (inode numbers
// reused) may pass when rapid replays it, and rapid then prints nothing of
// it.
func Schedules[Op any](t *testing.T, draw func(*rapid.T) func(*rapid.T) Op, maxOps int, play func(*testing.T, []Op) []string, n *int) func(*rapid.T) {
	printed := false // the first failure only: shrinking fails many times
	return func(rt *rapid.T) {
		ops := rapid.SliceOfN(rapid.Custom(draw(rt)), 1, maxOps).Draw(rt, "schedule")
		var errs []string
		synctest.Test(t, func(t *testing.T) { errs = play(t, ops) })
		if n != nil {
			*n++
		}
		for _, e := range errs {
			rt.Error(e)
		}
		if len(errs) > 0 {
			if !printed {
				printed = true
				fmt.Fprintf(os.Stderr, "FAILED SCHEDULE %v:\n  %s\n", ops, strings.Join(errs, "\n  "))
			}
			rt.Fatalf("schedule: %v", ops)
		}
	}
}

// Soak draws schedules (prop, given the counter to count them with) for
// LOGPIPE_SOAK, a duration (make soak, make test-sim, make test),
// -rapid.checks at a time, and says how many ran; it skips without it.
func Soak(t *testing.T, name string, prop func(n *int) func(*rapid.T)) {
	d, err := time.ParseDuration(os.Getenv("LOGPIPE_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("LOGPIPE_SOAK (a duration) not set")
	}
	var n int
	start := time.Now()
	for time.Since(start) < d && !t.Failed() {
		rapid.Check(t, prop(&n))
	}
	el := time.Since(start)
	t.Logf("%s: %d schedules in %v, %.0f a second", name, n, el.Round(time.Second), float64(n)/el.Seconds())
}

// Swarm draws, once per schedule, which kinds of operation it uses, and
// returns a drawer of kinds among those, each as often as its weight
// (swarm testing, Groce et al. 2012). Half the schedules use every kind;
// the other half leave each kind but the first out with even odds, so the
// kinds kept come in denser runs: a rare combination (a rename, a crash
// and a copytruncate of the same file, with nothing else in between) is
// drawn far more often than when every kind always competes. Shrinking
// goes towards every kind kept, then towards the first.
func Swarm(t *rapid.T, label string, kinds []string, weights []int) func(*rapid.T) string {
	var on []string
	all := !rapid.Bool().Draw(t, label+": leave some out")
	for i, k := range kinds {
		if all || i == 0 || rapid.Bool().Draw(t, label+" "+k) {
			for range weights[i] {
				on = append(on, k)
			}
		}
	}
	return func(t *rapid.T) string { return rapid.SampledFrom(on).Draw(t, label) }
}
