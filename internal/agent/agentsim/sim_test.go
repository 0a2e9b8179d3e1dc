// Package agentsim runs the agent's file path (collector, tailers,
// registry, producer engine) against generated schedules on a fake clock
// (testing/synctest): real files in a temporary directory that a scripted
// writer appends to, rotates and truncates; a simulated broker that delays,
// withholds, refuses and drops answers; crashes at any step, each followed
// by a restart from what was on disk at that instant. After each schedule
// it checks the guarantees as invariants (see check). pgregory.net/rapid
// draws the schedules and shrinks a failing one; its seed replays it:
//
//	go test ./internal/agent/agentsim -run 'TestAgentFilePath$' -rapid.seed=N
package agentsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/sirupsen/logrus"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/agent/collector"
	"github.com/logpipe/logpipe/internal/agent/producer"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// op is one step of a schedule.
type op struct {
	kind string // see drawOp
	file string // a.log or b.log
	n    int
	d    time.Duration
}

func (o op) String() string {
	switch o.kind {
	case "append":
		return fmt.Sprintf("append %d lines to %s", o.n, o.file)
	case "trace", "trace-wide":
		return fmt.Sprintf("append a line and %d %scontinuation lines to %s", o.n, map[bool]string{true: "wide "}[o.kind == "trace-wide"], o.file)
	case "trace-slow":
		return fmt.Sprintf("append a line and %d continuation lines to %s, %v apart", o.n, o.file, o.d)
	case "long":
		return fmt.Sprintf("append a line of %d bytes to %s", o.n, o.file)
	case "sleep", "delay":
		return fmt.Sprintf("%s %v", o.kind, o.d)
	case "refuse", "omit":
		return fmt.Sprintf("%s partition %d for %d requests", o.kind, o.n, o.n+1)
	case "config":
		return "collect " + o.file
	case "down-day":
		return "kill the agent, a day passes"
	}
	if o.file != "" {
		return o.kind + " " + o.file
	}
	return o.kind
}

var (
	sleeps = []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 3 * time.Second, 20 * time.Second}
	delays = []time.Duration{0, 50 * time.Millisecond, 2 * time.Second, 20 * time.Second}
	// traceGaps are the gaps between a slow trace's lines: all within
	// the multi config's timeout (1 s), most past half of it.
	traceGaps = []time.Duration{600 * time.Millisecond, 900 * time.Millisecond, 300 * time.Millisecond}
)

// opKinds are the kinds of step a schedule draws from, with their
// weights (see testutil.Swarm: a schedule may leave any but the writes
// out).
var opKinds, opWeights = []string{"write", "partial", "rename", "copytruncate", "sleep", "crash", "outage", "error", "delay", "truncate", "delete", "config", "trace", "lifecycle"},
	[]int{4, 1, 1, 1, 3, 1, 1, 1, 2, 1, 1, 1, 1, 1}

// drawSchedule draws what a schedule is made of: the kinds of step it
// uses and, for half of them, the one file every file step goes to.
func drawSchedule(t *rapid.T) func(*rapid.T) op {
	kind := testutil.Swarm(t, "op", opKinds, opWeights)
	// a.log more often than b.log: steps on one file come in sequences
	// (written, truncated, written again, rotated while the agent is down).
	// d.log appears when first written: only a glob's rescans find it.
	files := []string{"a.log", "a.log", "a.log", "b.log", "d.log"}
	if rapid.Bool().Draw(t, "one file") {
		files = []string{rapid.SampledFrom([]string{"a.log", "b.log", "d.log"}).Draw(t, "the file")}
	}
	// The configs it switches to: some schedules only some of them (the
	// multi config always among them: its joins meet the file steps).
	config := testutil.Swarm(t, "config", configNames, slices.Repeat([]int{1}, len(configNames)))
	return func(t *rapid.T) op { return drawOp(t, kind(t), rapid.SampledFrom(files).Draw(t, "file"), config) }
}

func drawOp(t *rapid.T, kind, file string, config func(*rapid.T) string) op {
	switch kind {
	case "write":
		switch rapid.IntRange(0, 7).Draw(t, "long") {
		case 0:
			return op{kind: "long", file: file, n: rapid.IntRange(simMaxLine+1, 3*simMaxLine).Draw(t, "length")}
		case 1: // a burst: more than one request's worth, and buffer_bytes fill up
			return op{kind: "append", file: file, n: rapid.IntRange(150, 900).Draw(t, "burst")}
		}
		return op{kind: "append", file: file, n: rapid.IntRange(1, 60).Draw(t, "lines")}
	case "partial":
		return op{kind: "partial", file: file}
	case "rename":
		return op{kind: rapid.SampledFrom([]string{"rename", "rename", "rename-cut"}).Draw(t, "rename"), file: file}
	case "copytruncate":
		return op{kind: "copytruncate", file: file}
	case "sleep":
		return op{kind: "sleep", d: rapid.SampledFrom(sleeps).Draw(t, "sleep")}
	case "crash":
		return op{kind: "crash"}
	case "outage":
		return op{kind: rapid.SampledFrom([]string{"outage", "recover", "outage", "recover", "vanish", "reappear"}).Draw(t, "outage")}
	case "error":
		return op{kind: rapid.SampledFrom([]string{"refuse", "omit"}).Draw(t, "error"), n: rapid.IntRange(0, 1).Draw(t, "partition")}
	case "truncate":
		return op{kind: "truncate", file: file}
	case "delete":
		return op{kind: "delete", file: file}
	case "config":
		return op{kind: "config", file: config(t)}
	case "trace":
		if rapid.Bool().Draw(t, "slow") { // lines that come slower than half the timeout
			return op{kind: "trace-slow", file: file, n: rapid.IntRange(1, simMultiLines-1).Draw(t, "continuations"), d: rapid.SampledFrom(traceGaps).Draw(t, "gap")}
		}
		return op{kind: rapid.SampledFrom([]string{"trace", "trace-wide"}).Draw(t, "trace"), file: file, n: rapid.IntRange(1, 9).Draw(t, "continuations")}
	case "lifecycle":
		return op{kind: rapid.SampledFrom([]string{"kill", "start", "start", "restart", "down-day"}).Draw(t, "lifecycle")}
	case "delay":
		return op{kind: "delay", d: rapid.SampledFrom(delays).Draw(t, "delay")}
	}
	panic("unknown kind " + kind)
}

// configs are the collect configs a schedule switches between (all to one
// topic), by name: which of the writer's files each collects, and its
// entries. The allowlist is the writer's directory; c.log in it is a
// symlink to a file outside, and h.log a hard link to another: the glob
// matches both, "c" names c.log. Neither may be read, and the one outside
// behind the symlink may not even be opened.
var configs = map[string]struct {
	collects string // of a.log, b.log and d.log
	entries  func(dir string) string
}{
	"glob": {"abd", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs",`+dropFilter+`}]`, filepath.Join(d, "*.log"))
	}},
	"a": {"a", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs",`+dropFilter+`}]`, filepath.Join(d, "a.log"))
	}},
	"ab": {"ab", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs",`+dropFilter+`},{"path":%q,"topic":"logs",`+dropFilter+`}]`, filepath.Join(d, "a.log"), filepath.Join(d, "b.log"))
	}},
	"fields": {"abd", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs","fields":{"env":"sim"},`+dropFilter+`}]`, filepath.Join(d, "*.log"))
	}},
	"c": {"a", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs",`+dropFilter+`},{"path":%q,"topic":"logs",`+dropFilter+`}]`, filepath.Join(d, "a.log"), filepath.Join(d, "c.log"))
	}},
	// multi joins continuation lines (a tab first) to the line before
	// them, at most simMultiLines lines and simMultiBytes bytes an event.
	"multi": {"abd", func(d string) string {
		return fmt.Sprintf(`[{"path":%q,"topic":"logs","multiline":{"pattern":"^[^\\t]","max_lines":%d,"max_bytes":%d,"timeout":"1s"},`+dropFilter+`}]`,
			filepath.Join(d, "*.log"), simMultiLines, simMultiBytes)
	}},
}

var configNames = []string{"multi", "glob", "a", "ab", "fields", "c"}

// dropFilter is every entry's exclude_lines: an event whose first line
// carries the mark is read past and not sent. Every eleventh plain line
// carries it (see newLine).
const dropFilter = `"exclude_lines":["^[^\\t\\n]*#drop"]`

var dropRE = regexp.MustCompile(`^[^\t\n]*#drop`)

// dropped reports whether l is a line the filter drops: never sent, and
// read past (its offset acknowledged with the line before it).
func (l *line) dropped() bool { return dropRE.MatchString(l.text) }

// The multi config's limits: a trace's lines are up to about 200 bytes.
const simMultiLines, simMultiBytes = 4, 300

// line is one line the writer wrote, known by its content ("a.log-17 …").
type line struct {
	id      string
	text    string
	long    bool // longer than simMaxLine: sent in pieces
	cont    bool // a continuation line (a tab first), joined under multi
	exempt  bool // its only copy was deleted before Kafka acknowledged it
	written bool // complete in its file
}

// gen is one content generation of an inode: what it held between its
// creation (or a truncation) and the next truncation.
type gen struct {
	ino   uint64
	lines []span
}

type span struct {
	l          *line
	start, end int64
}

// wfile is a file the writer writes (a.log, b.log).
type wfile struct {
	name    string
	next    int
	gen     *gen
	partial *line // begun, its rest not yet written
	born    time.Time
}

// simScan is the collector's scan_interval in the simulation, and
// findWithin how long a glob may take to find a new file it matches (a
// scan, and the second in which a directory's time is not trusted).
const (
	simScan    = time.Second
	findWithin = 3 * simScan
)

type world struct {
	dir, data string
	incs      int
	b         *broker
	files     map[string]*wfile
	lines     map[string]*line
	gens      []*gen
	slow      []*slowTrace
	rotated   map[string]*gen // a.log.1 etc. -> its generation
	inc       *incarnation
	crashes   []crashState
	errs      []string
	// config is the collect config in force (see configs); outside is the
	// directory the allowlist leaves out; opens counts opens of the file
	// c.log leads to; peak is the most the meters saw in flight.
	config   string
	configAt time.Time
	outside  string
	opens    func() int
	peak     int64
	log      *logrus.Entry
	// deliveries at each crash
}

// crashState is what was on disk, and in Kafka, when a crash happened.
type crashState struct {
	files     []diskEntry    // the registry on disk
	delivered map[string]int // line id -> records of it in Kafka
	acked     map[string]bool
	// at is when it happened, to incarnation epoch, which had started
	// from the registry from.
	at    time.Time
	epoch int
	from  []diskEntry
	clean bool // a clean stop, not a crash
}

// saveBound is how long an acknowledgement may wait to be on disk: the
// registry's save interval (a second, the bound the README states for
// what a kill -9 sends again), and the short wait a save for index-time
// stamps may hold the save lock for.
const saveBound = time.Second + 100*time.Millisecond

type diskEntry struct {
	Path     string `json:"path"`
	Instance string `json:"instance"`
	Offset   int64  `json:"offset"`
}

// collects reports whether the config in force collects the writer's file.
func (w *world) collects(name string) bool {
	return strings.Contains(configs[w.config].collects, strings.TrimSuffix(name, ".log"))
}

func (w *world) failf(format string, a ...any) {
	w.errs = append(w.errs, fmt.Sprintf(format, a...))
}

// TestAgentFilePath draws schedules (-rapid.checks=N, default 100;
// -rapid.seed=N replays one). make test runs it with the race detector,
// and then as many as fit in its share of time (TestAgentFilePathSoak).
func TestAgentFilePath(t *testing.T) {
	rapid.Check(t, schedules(t, nil))
}

// found are schedules the generator found that broke a guarantee, kept
// as they shrank (see the fixes in internal/agent/tailer and registry).
var found = []struct {
	name string
	ops  []op
}{
	{"a copy was not looked for while nothing was sent yet: the half-read line went out as a line",
		[]op{{kind: "partial", file: "b.log"}, {kind: "append", file: "a.log", n: 1}, {kind: "crash"}, {kind: "copytruncate", file: "b.log"}}},
	{"a copy was registered as read before its rest was acknowledged: a crash lost the rest",
		[]op{{kind: "append", file: "b.log", n: 1}, {kind: "sleep", d: 3 * time.Second}, {kind: "outage"}, {kind: "append", file: "b.log", n: 57},
			{kind: "copytruncate", file: "b.log"}, {kind: "sleep", d: time.Second}, {kind: "rename", file: "b.log"}, {kind: "crash"}}},
	{"the copy of a truncation the agent did not see was read from its start: duplicates",
		[]op{{kind: "append", file: "b.log", n: 1}, {kind: "sleep", d: time.Second}, {kind: "copytruncate", file: "b.log"}, {kind: "rename", file: "b.log"}, {kind: "crash"}}},
	{"a rotated file truncated and written again unseen: its new content lost",
		[]op{{kind: "append", file: "b.log", n: 1}, {kind: "sleep", d: 3 * time.Second}, {kind: "outage"}, {kind: "append", file: "b.log", n: 57},
			{kind: "copytruncate", file: "b.log"}, {kind: "append", file: "b.log", n: 48}, {kind: "rename", file: "b.log"}, {kind: "crash"}}},
	{"a deleted file's registry entry taken for the copy that reused its inode: duplicates",
		[]op{{kind: "delay", d: 50 * time.Millisecond}, {kind: "rename", file: "b.log"}, {kind: "append", file: "a.log", n: 1}, {kind: "rename", file: "b.log"},
			{kind: "append", file: "b.log", n: 33}, {kind: "crash"}, {kind: "copytruncate", file: "b.log"}}},
	{"a copy of the file being read was read from its start by the search for skipped rotations: duplicates",
		[]op{{kind: "append", file: "b.log", n: 15}, {kind: "crash"}, {kind: "copytruncate", file: "b.log"}, {kind: "append", file: "b.log", n: 30},
			{kind: "copytruncate", file: "a.log"}, {kind: "partial", file: "a.log"}, {kind: "append", file: "b.log", n: 3}, {kind: "sleep", d: time.Second},
			{kind: "copytruncate", file: "b.log"}, {kind: "append", file: "a.log", n: 52}, {kind: "delay", d: 50 * time.Millisecond},
			{kind: "copytruncate", file: "b.log"}, {kind: "append", file: "a.log", n: 20}, {kind: "rename", file: "a.log"}, {kind: "crash"},
			{kind: "append", file: "a.log", n: 21}, {kind: "append", file: "b.log", n: 4}}},
	{"a rotated file's unterminated last line is sent once the file is read to its end",
		[]op{{kind: "partial", file: "b.log"}, {kind: "rename-cut", file: "b.log"}}},
	{"a config change after a rotation nobody saw: the rotated file was not read by the path's new tail task",
		[]op{{kind: "rename", file: "a.log"}, {kind: "append", file: "a.log", n: 59}, {kind: "rename", file: "a.log"}, {kind: "config", file: "ab"}}},
	{"a deleted file copied and truncated, its task stopped by a config change: the drainer did not read the rest from the copy",
		[]op{{kind: "long", file: "a.log", n: 16385}, {kind: "sleep", d: 20 * time.Second}, {kind: "append", file: "a.log", n: 1}, {kind: "copytruncate", file: "a.log"},
			{kind: "delete", file: "a.log"}, {kind: "config", file: "a"}}},
	{"a deleted file truncated and written again unseen, its task stopped by a config change: the drainer read on from the old offset, mid-line",
		[]op{{kind: "append", file: "a.log", n: 1}, {kind: "sleep", d: 100 * time.Millisecond}, {kind: "copytruncate", file: "a.log"},
			{kind: "long", file: "a.log", n: 16385}, {kind: "delete", file: "a.log"}, {kind: "config", file: "a"}}},
	// The two below depend on the file system handing a deleted file's
	// inode number to the next file created, as it mostly does: each
	// replays several times.
	{"a rotated file's entry with no fingerprint took the copy that reused its inode for its own file: duplicates",
		[]op{{kind: "rename", file: "b.log"}, {kind: "rename", file: "b.log"}, {kind: "append", file: "b.log", n: 15}, {kind: "crash"},
			{kind: "copytruncate", file: "b.log"}, {kind: "crash"}}},
	{"another path's copy that reused the inode of a file this path had was read as this path's: duplicates",
		[]op{{kind: "refuse", n: 0}, {kind: "append", file: "b.log", n: 3}, {kind: "append", file: "b.log", n: 2}, {kind: "append", file: "a.log", n: 1},
			{kind: "append", file: "b.log", n: 1}, {kind: "append", file: "a.log", n: 26}, {kind: "sleep", d: 20 * time.Second}, {kind: "rename", file: "a.log"},
			{kind: "copytruncate", file: "a.log"}, {kind: "append", file: "a.log", n: 10}, {kind: "sleep", d: 10 * time.Millisecond},
			{kind: "copytruncate", file: "a.log"}, {kind: "crash"}, {kind: "append", file: "b.log", n: 18}, {kind: "copytruncate", file: "b.log"}}},
}

// found2 are schedules found after the generator wrote d.log, a file of a
// path that appears mid-schedule (kept apart: they need d.log).
var found2 = []struct {
	name string
	ops  []op
}{
	{"a new path's file that took the inode number of a deleted file took its stream as its own: read as truncated, it sent the copytruncate copy's rest, which the stream's path then read again from its start",
		[]op{{kind: "trace", file: "a.log", n: 1}, {kind: "sleep", d: time.Second}, {kind: "long", file: "a.log", n: 16385}, {kind: "copytruncate", file: "a.log"},
			{kind: "delete", file: "a.log"}, {kind: "kill"}, {kind: "append", file: "d.log", n: 1}}},
	{"a file truncated and written again to exactly the offset read, and then left alone: its new content was never read (size and the coarse modification time cannot tell)",
		[]op{{kind: "long", file: "d.log", n: 16385}, {kind: "sleep", d: 20 * time.Second}, {kind: "truncate", file: "d.log"}, {kind: "long", file: "d.log", n: 16385}}},
}

// reached are schedules that reach, at once, states the generator draws
// only now and then (a trace past the multi config's limits, a joined
// event last in its file), kept as they shrank when a breakage of the
// tailer's joining was first seen to fail in them.
var reached = []struct {
	name string
	ops  []op
}{
	{"a trace past max_lines", []op{{kind: "trace", file: "a.log", n: 4}, {kind: "config", file: "multi"}}},
	{"a joined event last in its file", []op{{kind: "config", file: "multi"}, {kind: "trace", file: "a.log", n: 1}}},
	{"lines that start events, under multi", []op{{kind: "config", file: "multi"}, {kind: "append", file: "a.log", n: 2}}},
	{"a trace past max_bytes", []op{{kind: "config", file: "multi"}, {kind: "trace-wide", file: "b.log", n: 9}}},
	{"a trace whose lines come slowly, under multi", []op{{kind: "config", file: "multi"}, {kind: "trace-slow", file: "a.log", n: 2, d: 600 * time.Millisecond}}},
	{"a line written before its file was collected, under multi", []op{{kind: "config", file: "a"}, {kind: "append", file: "b.log", n: 1}, {kind: "config", file: "multi"}}},
}

// foundReplays is how many times each found schedule replays.
const foundReplays = 12

// The schedules found keep the guarantees (each replays in milliseconds).
func TestAgentFilePathFound(t *testing.T) {
	for _, f := range slices.Concat(found, found2, reached) {
		t.Run(f.name, func(t *testing.T) {
			for range foundReplays {
				var w *world
				synctest.Test(t, func(t *testing.T) { w = run(t, f.ops) })
				for _, e := range w.errs {
					t.Error(e)
				}
				if t.Failed() {
					return
				}
			}
		})
	}
}

// TestAgentFilePathSoak runs schedules for LOGPIPE_SOAK (a duration: make soak,
// make test-sim and make test), -rapid.checks seeds at a time, and says
// how many ran.
func TestAgentFilePathSoak(t *testing.T) {
	testutil.Soak(t, "agentsim", func(n *int) func(*rapid.T) { return schedules(t, n) })
}

// schedules is the property: a drawn schedule, played, keeps the
// guarantees. n, if set, counts the schedules played.
func schedules(t *testing.T, n *int) func(*rapid.T) {
	return testutil.Schedules(t, drawSchedule, 40, func(t *testing.T, ops []op) []string { return run(t, ops).errs }, n)
}

// run plays ops, lets the agent finish what the files hold, and checks.
func run(t *testing.T, ops []op) *world {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if os.Getenv("SIMLOG") != "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	w := &world{dir: t.TempDir(), b: newBroker(2, simKey), files: map[string]*wfile{}, lines: map[string]*line{}, rotated: map[string]*gen{}, log: logrus.NewEntry(l),
		config: "glob", outside: t.TempDir()}
	w.data = filepath.Join(t.TempDir(), "data0")
	for _, f := range []string{"a.log", "b.log"} {
		w.files[f] = &wfile{name: f}
		w.create(f)
	}
	w.plantOutside(t)
	w.start()
	// After every step the agent does all it can at that instant before
	// the next (synctest.Wait): a schedule plays the same every time, so a
	// failing one replays and shrinks.
	synctest.Wait()
	for _, o := range ops {
		w.do(o)
		synctest.Wait()
		w.found()
		if len(w.errs) > 0 {
			break
		}
	}
	// The end: every line complete, Kafka well, the agent running until
	// every line is in.
	for _, f := range slices.Sorted(maps.Keys(w.files)) {
		w.complete(w.files[f])
	}
	w.b.mu.Lock()
	w.b.outage, w.b.vanished, w.b.delay = false, false, 0
	clear(w.b.refuse)
	clear(w.b.omit)
	w.b.mu.Unlock()
	if w.inc == nil {
		w.start()
	}
	// Every line acknowledged is not enough: acknowledgements of an
	// incarnation a crash ended count, and the running one may still be
	// sending again what its registry did not cover. So the agent runs on
	// until, besides, Kafka has acknowledged to it every collected file
	// whose lines are all in (its registry in memory at the file's end);
	// a registry that never gets there fails 4b below, at the deadline.
	deadline := time.Now().Add(30 * time.Minute)
	for (w.missing() > 0 || !w.caughtUp()) && time.Now().Before(deadline) {
		time.Sleep(time.Second)
	}
	if w.missing() > 0 && os.Getenv("SIMLOG") != "" {
		buf := make([]byte, 1<<20)
		fmt.Fprintf(os.Stderr, "STUCK: %d lines missing after 30 minutes; goroutines:\n%s\n", w.missing(), buf[:runtime.Stack(buf, true)])
	}
	w.stop()
	// Kafka's answers to dead incarnations run out (they deliver nothing).
	time.Sleep(time.Minute)
	w.check()
	return w
}

// plantOutside writes the files the allowlist leaves out, and the links to
// them in the writer's directory.
func (w *world) plantOutside(t *testing.T) {
	secret, other := filepath.Join(w.outside, "secret.log"), filepath.Join(w.outside, "other.log")
	for _, p := range []string{secret, other} {
		if err := os.WriteFile(p, []byte("secret-1 not to be shipped\nsecret-2 nor this\n"), 0o600); err != nil {
			w.failf("%v", err)
		}
	}
	if err := os.Symlink(secret, w.path("c.log")); err != nil {
		w.failf("%v", err)
	}
	if err := os.Link(other, w.path("h.log")); err != nil {
		w.failf("%v", err)
	}
	w.opens = testutil.WatchOpens(t, secret)
	w.touch("")
}

func (w *world) path(name string) string { return filepath.Join(w.dir, name) }

func (w *world) create(name string) {
	f := w.files[name]
	fh, err := os.OpenFile(w.path(name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		w.failf("create %s: %v", name, err)
		return
	}
	fh.Close()
	w.touch("")
	f.born = time.Now()
	f.gen = &gen{ino: inode(w.path(name))}
	w.gens = append(w.gens, f.gen)
}

func inode(p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func (w *world) write(f *wfile, b []byte) {
	fh, err := os.OpenFile(w.path(f.name), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		w.failf("open %s: %v", f.name, err)
		return
	}
	if _, err := fh.Write(b); err != nil {
		w.failf("write %s: %v", f.name, err)
	}
	fh.Close()
}

// touch sets the modification time of the writer's file name ("": its
// directory) to now on the fake clock, as the kernel would on the real
// one: the collector compares a directory's time with its own clock (a
// glob is scanned again only if its directory changed). Files keep the
// kernel's times: the tailer compares them with the registry file's
// (when it was written, for rotations made while the agent was down),
// which the kernel stamps too.
func (w *world) touch(name string) {
	now := time.Now()
	if err := os.Chtimes(w.path(name), now, now); err != nil {
		w.failf("touching %s: %v", name, err)
	}
}

func (w *world) size(f *wfile) int64 {
	fi, err := os.Stat(w.path(f.name))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// newLine makes f's next line: its id, then letters to a length that
// varies with it.
func (w *world) newLine(f *wfile) *line {
	f.next++
	id := fmt.Sprintf("%s-%d", f.name, f.next)
	pad := strings.Repeat(string(rune('a'+f.next%26)), (f.next*37)%150)
	// A line written while no config collects its file need not arrive.
	l := &line{id: id, text: id + " " + pad, exempt: !w.collects(f.name)}
	if f.next%11 == 0 {
		l.text = id + " #drop " + pad
	}
	w.lines[id] = l
	return l
}

// half is how much of l a partial write puts down: half of it, and at
// least its id and the space after it (what a record of it is known by).
func (l *line) half() int { return max(len(l.text)/2, len(l.id)+1) }

// The producer's bounds in the simulation: buffer_bytes and chan_max_size.
const (
	simBufferBytes = 64 << 10
	simChanMaxSize = 256
)

// simMaxLine is the agent's max_line_bytes in the simulation: a longer
// line is sent in pieces of at most this many bytes, each marked split.
const simMaxLine = 16 << 10

// appendLong appends one line of n bytes (past simMaxLine), its id and
// positions written through it, so every piece of it is its own.
func (w *world) appendLong(f *wfile, n int) {
	w.complete(f)
	if r := n % simMaxLine; r > 0 && r < 40 {
		n += 40 // a last piece long enough to hold a whole mark
	}
	l := w.newLine(f)
	var b strings.Builder
	b.WriteString(l.id + " ")
	for b.Len() < n {
		fmt.Fprintf(&b, "%s/%d.", l.id, b.Len()) // where it is: no two pieces alike
	}
	l.text = b.String()[:n]
	l.long = true
	off := w.size(f)
	w.write(f, []byte(l.text+"\n"))
	l.written = true
	f.gen.lines = append(f.gen.lines, span{l, off, off + int64(len(l.text)) + 1})
}

// piece is one record's worth of a long line.
type piece struct {
	l   *line
	idx int
}

// pieces indexes the pieces of the long lines by their bytes.
func (w *world) pieces() map[string]piece {
	ix := map[string]piece{}
	for _, l := range w.lines {
		if !l.long {
			continue
		}
		for i, t := 0, l.text; len(t) > 0; i++ {
			k := min(len(t), simMaxLine)
			ix[t[:k]] = piece{l, i}
			t = t[k:]
		}
	}
	return ix
}

// nPieces is how many records a long line takes.
func nPieces(l *line) int { return (len(l.text) + simMaxLine - 1) / simMaxLine }

// idsOf is the ids of the lines a record's value is (joined by multi), or
// of the long line it is a piece of.
func idsOf(ix map[string]piece, v []byte) []string {
	if p, ok := ix[string(v)]; ok {
		return []string{p.l.id}
	}
	var ids []string
	for l := range bytes.SplitSeq(v, []byte{'\n'}) {
		ids = append(ids, lineID(l))
	}
	return ids
}

func (w *world) appendLines(f *wfile, n int) { w.appendTrace(f, n, false, false) }

// appendTrace appends n lines, all but the first continuation lines if
// cont is set (short ones, under 40 bytes, unless wide), in one write.
func (w *world) appendTrace(f *wfile, n int, cont, wide bool) {
	w.complete(f)
	var buf bytes.Buffer
	off := w.size(f)
	for i := 0; i < n; i++ {
		l := w.traceLine(f, i, cont, wide)
		start := off + int64(buf.Len())
		buf.WriteString(l.text)
		buf.WriteByte('\n')
		l.written = true
		f.gen.lines = append(f.gen.lines, span{l, start, off + int64(buf.Len())})
	}
	w.write(f, buf.Bytes())
}

// traceLine is the i-th line of a trace (of lines if not cont).
func (w *world) traceLine(f *wfile, i int, cont, wide bool) *line {
	l := w.newLine(f)
	if cont && i == 0 {
		l.text = strings.Replace(l.text, " #drop", "", 1) // an event the filter keeps
	}
	if cont && i > 0 {
		if !wide {
			l.text = l.text[:min(len(l.text), len(l.id)+1+(f.next*7)%24)]
		}
		l.text, l.cont = "\t"+l.text, true
	}
	return l
}

// slowTrace is a trace written a line at a time, each less than the multi
// config's timeout after the one before it: under multi it is one event,
// whatever the agent was doing meanwhile (reading it as it comes, or all
// at once later), unless its file was rotated, truncated or deleted, or
// the config changed, before the event was sent.
type slowTrace struct {
	ids       []string
	file      string
	disturbed bool
}

// appendSlowTrace appends a trace of n lines to f, gap apart on the
// fake clock, each line in a write of its own.
func (w *world) appendSlowTrace(f *wfile, n int, gap time.Duration) {
	w.complete(f)
	tr := &slowTrace{file: f.name, disturbed: w.config != "multi"}
	size := 0
	for i := 0; i < n; i++ {
		if i > 0 {
			time.Sleep(gap)
		}
		l := w.traceLine(f, i, true, false)
		off := w.size(f)
		w.write(f, []byte(l.text+"\n"))
		l.written = true
		f.gen.lines = append(f.gen.lines, span{l, off, off + int64(len(l.text)) + 1})
		tr.ids = append(tr.ids, l.id)
		size += len(l.text) + 1
		synctest.Wait()
	}
	// Within the limits (a byte short of them, whichever way the joiner
	// counts the newlines), the trace is one event.
	tr.disturbed = tr.disturbed || n > simMultiLines || size >= simMultiBytes
	w.slow = append(w.slow, tr)
}

// disturb marks the slow traces an op may cut: rotations, truncations and
// deletions of their file, and config changes.
func (w *world) disturb(o op) {
	for _, tr := range w.slow {
		switch o.kind {
		case "config":
			tr.disturbed = true
		case "rename", "rename-cut", "copytruncate", "truncate", "delete":
			tr.disturbed = tr.disturbed || o.file == tr.file
		}
	}
}

// partial writes the first half of f's next line.
func (w *world) partial(f *wfile) {
	if f.partial != nil {
		return
	}
	l := w.newLine(f)
	f.partial = l
	w.write(f, []byte(l.text[:l.half()]))
}

// complete writes the rest of f's begun line.
func (w *world) complete(f *wfile) {
	l := f.partial
	if l == nil {
		return
	}
	f.partial = nil
	end := w.size(f) + int64(len(l.text)-l.half()) + 1
	w.write(f, []byte(l.text[l.half():]+"\n"))
	l.written = true
	f.gen.lines = append(f.gen.lines, span{l, end - int64(len(l.text)) - 1, end})
}

// cut leaves f's half-written line as it is: the writer starts afresh in
// the next file, and the half stays the file's unterminated last line, a
// line of its own that must be delivered (the agent sends it once the
// rotated file is read to its end).
func (w *world) cut(f *wfile) {
	l := f.partial
	if l == nil {
		return
	}
	f.partial = nil
	l.text = l.text[:l.half()]
	l.written = true
	end := w.size(f)
	f.gen.lines = append(f.gen.lines, span{l, end - int64(len(l.text)), end})
}

// shift makes room for name.1: name.1 -> name.2, and an old name.2 is
// deleted (what logrotate's rotate 2 does).
func (w *world) shift(name string) {
	p1, p2 := w.path(name+".1"), w.path(name+".2")
	if g, ok := w.rotated[name+".2"]; ok {
		os.Remove(p2)
		w.deleted(g)
		delete(w.rotated, name+".2")
	}
	if g, ok := w.rotated[name+".1"]; ok {
		if err := os.Rename(p1, p2); err != nil {
			w.failf("rotating %s: %v", p1, err)
		}
		w.rotated[name+".2"] = g
		delete(w.rotated, name+".1")
	}
}

// deleted marks the lines only g held, not yet acknowledged, as lost
// with it (nothing can read a file deleted while the agent was down, or
// before it came to it).
func (w *world) deleted(g *gen) {
	acked := w.acked()
	for _, s := range g.lines {
		if !acked[s.l.id] && !w.heldElsewhere(s.l, g) {
			s.l.exempt = true
		}
	}
}

func (w *world) heldElsewhere(l *line, not *gen) bool {
	for _, f := range w.files {
		if f.gen != not && hasLine(f.gen, l) {
			return true
		}
	}
	for _, g := range w.rotated {
		if g != not && hasLine(g, l) {
			return true
		}
	}
	return false
}

func hasLine(g *gen, l *line) bool {
	for _, s := range g.lines {
		if s.l == l {
			return true
		}
	}
	return false
}

func (w *world) do(o op) {
	w.disturb(o)
	if o.kind != "config" && strings.HasSuffix(o.file, ".log") && w.files[o.file] == nil {
		w.files[o.file] = &wfile{name: o.file}
		w.create(o.file)
	}
	switch o.kind {
	case "append":
		w.appendLines(w.files[o.file], o.n)
	case "long":
		w.appendLong(w.files[o.file], o.n)
	case "trace", "trace-wide":
		w.appendTrace(w.files[o.file], o.n+1, true, o.kind == "trace-wide")
	case "trace-slow":
		w.appendSlowTrace(w.files[o.file], o.n+1, o.d)
	case "partial":
		w.partial(w.files[o.file])
	case "rename", "rename-cut":
		f := w.files[o.file]
		if o.kind == "rename-cut" {
			w.cut(f)
		}
		w.complete(f)
		if !w.known(o.file) && w.collects(o.file) {
			// A file renamed out of the glob's reach before the agent
			// found it (d.log, between two scans): nothing can know it was
			// ever there. (The agent running, the glob finds a new file
			// within findWithin: see found.)
			w.dropped(o.file)
		}
		w.shift(o.file)
		if err := os.Rename(w.path(o.file), w.path(o.file+".1")); err != nil {
			w.failf("rename %s: %v", o.file, err)
		}
		w.touch("")
		w.rotated[o.file+".1"] = f.gen
		w.create(o.file)
	case "copytruncate":
		f := w.files[o.file]
		w.complete(f)
		w.shift(o.file)
		// Known gap (see README, Tests): a file the agent has read nothing
		// of has no fingerprint, so if it is copied, truncated and grows
		// past zero again before the agent looks, the truncation cannot be
		// told from growth and the copy is not read. Lines of a generation
		// none of which reached Kafka before its copytruncate may be lost.
		delivered := w.deliveredIDs()
		seen := false
		for _, sp := range f.gen.lines {
			seen = seen || delivered[sp.l.id]
		}
		if !seen {
			for _, sp := range f.gen.lines {
				sp.l.exempt = true
			}
		}
		data, err := os.ReadFile(w.path(o.file))
		if err != nil {
			w.failf("copy %s: %v", o.file, err)
			return
		}
		if err := os.WriteFile(w.path(o.file+".1"), data, 0o644); err != nil {
			w.failf("copy %s: %v", o.file, err)
		}
		w.touch("")
		cp := &gen{ino: inode(w.path(o.file + ".1")), lines: append([]span(nil), f.gen.lines...)}
		w.gens = append(w.gens, cp)
		w.rotated[o.file+".1"] = cp
		if err := os.Truncate(w.path(o.file), 0); err != nil {
			w.failf("truncate %s: %v", o.file, err)
		}
		f.gen = &gen{ino: f.gen.ino}
		w.gens = append(w.gens, f.gen)
	case "truncate": // in place, no copy (> file): what was not read yet is gone
		f := w.files[o.file]
		w.complete(f)
		w.deleted(f.gen)
		if err := os.Truncate(w.path(o.file), 0); err != nil {
			w.failf("truncate %s: %v", o.file, err)
		}
		f.gen = &gen{ino: f.gen.ino}
		w.gens = append(w.gens, f.gen)
	case "delete": // removed, and created again empty
		f := w.files[o.file]
		w.complete(f)
		w.deleted(f.gen)
		if err := os.Remove(w.path(o.file)); err != nil {
			w.failf("delete %s: %v", o.file, err)
		}
		w.touch("")
		w.create(o.file)
	case "sleep":
		time.Sleep(o.d)
	case "crash":
		w.crash()
		w.start()
	case "kill": // the agent stays down until a start (the writer goes on)
		w.crash()
	case "down-day": // down for a day: a restart finds a registry that old
		w.crash()
		time.Sleep(25 * time.Hour)
	case "start":
		if w.inc == nil {
			w.start()
		}
	case "restart": // a clean stop (SIGTERM), and a start
		if w.inc != nil {
			w.stop()
			w.ended()
		}
		w.start()
	case "outage", "recover":
		w.b.mu.Lock()
		w.b.outage = o.kind == "outage"
		w.b.mu.Unlock()
	case "vanish", "reappear": // the topic deleted, and created again
		w.b.mu.Lock()
		w.b.vanished = o.kind == "vanish"
		w.b.mu.Unlock()
	case "refuse", "omit":
		w.b.mu.Lock()
		m := w.b.refuse
		if o.kind == "omit" {
			m = w.b.omit
		}
		m[tp{"logs", int32(o.n)}] += o.n + 1
		w.b.mu.Unlock()
	case "delay":
		w.b.mu.Lock()
		w.b.delay = o.d
		w.b.mu.Unlock()
	case "config":
		// A file the new config leaves out: what of it Kafka has not
		// acknowledged need not arrive (its tail task stops); what does
		// arrive, arrives once.
		for name := range w.files {
			if w.collects(name) && !strings.Contains(configs[o.file].collects, strings.TrimSuffix(name, ".log")) {
				w.dropped(name)
			}
		}
		if w.config != o.file {
			w.configAt = time.Now()
		}
		w.config = o.file
		if w.inc != nil {
			w.apply(w.inc.coll)
		}
	}
}

// dropped marks what the writer's file name and its rotated copies hold,
// not yet acknowledged, as free not to arrive.
func (w *world) dropped(name string) {
	acked := w.acked()
	gens := []*gen{w.files[name].gen, w.rotated[name+".1"], w.rotated[name+".2"]}
	for _, g := range gens {
		if g == nil {
			continue
		}
		for _, s := range g.lines {
			if !acked[s.l.id] {
				s.l.exempt = true
			}
		}
	}
	if l := w.files[name].partial; l != nil {
		l.exempt = true
	}
}

// found: the agent running, a file its config collects is found (its
// stream registered) within findWithin of when it could first have been.
func (w *world) found() {
	if w.inc == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(w.files)) {
		f := w.files[name]
		if d := time.Since(w.followable(f)); w.collects(name) && d >= findWithin && !w.known(name) {
			w.failf("%s was there for %v, the agent running and collecting it, and it had not found it", name, d)
		}
	}
}

// followable is since when the running agent could have found f: since
// it was created, the agent started, and the config collecting it came.
func (w *world) followable(f *wfile) time.Time {
	t := f.born
	for _, u := range []time.Time{w.inc.started, w.configAt} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// known reports whether the agent knows the writer's file name: the
// running agent's registry has a stream for it, or, the agent down, the
// registry on disk has.
func (w *world) known(name string) bool {
	if w.inc != nil {
		return len(w.inc.reg.OfPath("logs", w.path(name))) > 0
	}
	b, err := os.ReadFile(filepath.Join(w.data, "registry.json"))
	if err != nil {
		return false
	}
	var d struct {
		Files []diskEntry `json:"files"`
	}
	if json.Unmarshal(b, &d) != nil {
		return false
	}
	return slices.ContainsFunc(d.Files, func(e diskEntry) bool { return e.Path == w.path(name) })
}

// apply hands the config in force to a collector, validated as the agent
// validates it.
func (w *world) apply(coll *collector.Collector) {
	entries, err := collectconf.Parse([]byte(configs[w.config].entries(w.dir)))
	if err == nil {
		for _, e := range entries {
			if err = w.guard().CheckEntry(e.Path); err != nil {
				break
			}
		}
	}
	if err != nil {
		w.failf("collect config %s: %v", w.config, err)
		return
	}
	coll.Apply(entries)
}

// guard is the allowlist: the writer's directory.
func (w *world) guard() *pathguard.Guard {
	g, err := pathguard.New([]string{filepath.Join(w.dir, "*")})
	if err != nil {
		panic(err)
	}
	return g
}

// incarnation is one run of the agent's file path.
type incarnation struct {
	started            time.Time
	reg                *registry.Registry
	coll               *collector.Collector
	meter              *meter
	readStop, sendStop context.CancelFunc
	storeStop          context.CancelFunc
	readDone, sendDone chan struct{}
	storeDone          chan struct{}
}

func (w *world) start() {
	reg, err := registry.Open(w.data, w.log, nil)
	if err != nil {
		w.failf("opening the registry: %v", err)
		return
	}
	prod := producer.New(producer.Config{
		Kafka: config.Kafka{Brokers: []string{"sim:9092"}, ChanMaxSize: simChanMaxSize, BufferBytes: simBufferBytes, Compression: "none", RequiredAcks: config.AcksAll,
			Version: "2.8.0", FlushInterval: 10 * time.Millisecond, FlushBytes: 16 << 10, RetryBackoffMax: 2 * time.Second},
		MaxRecordBytes: 1 << 20, ShutdownTimeout: simShutdownTimeout, Cluster: w.b.cluster, Signer: func() *record.SigningKey { return simKey },
	}, w.log, nil)
	m := newMeter(prod, simBufferBytes, simChanMaxSize)
	coll := collector.New(collector.Config{Host: "sim", IP: "10.0.0.1", MaxLineBytes: simMaxLine, PollInterval: 100 * time.Millisecond,
		ScanInterval: simScan, RotateWait: 5 * time.Second, PollOnly: true, Guard: w.guard()}, reg, m, w.log, nil)
	w.apply(coll)
	inc := &incarnation{started: time.Now(), reg: reg, coll: coll, meter: m, readDone: make(chan struct{}), sendDone: make(chan struct{}), storeDone: make(chan struct{})}
	var rctx, sctx, stctx context.Context
	rctx, inc.readStop = context.WithCancel(context.Background())
	sctx, inc.sendStop = context.WithCancel(context.Background())
	stctx, inc.storeStop = context.WithCancel(context.Background())
	go func() { defer close(inc.storeDone); _ = reg.Run(stctx, time.Second) }()
	go func() { defer close(inc.sendDone); _ = prod.Run(sctx) }()
	go func() { defer close(inc.readDone); _ = coll.Run(rctx) }()
	w.inc = inc
}

// stop shuts the agent down cleanly: readers, then the producer's flush,
// then the registry's last save.
func (w *world) stop() {
	inc := w.inc
	if inc == nil {
		return
	}
	inc.readStop()
	<-inc.readDone
	stopping := time.Now()
	inc.meter.stop()
	inc.sendStop()
	<-inc.sendDone
	w.drained(stopping)
	inc.storeStop()
	<-inc.storeDone
	if err := inc.reg.Save(); err != nil {
		w.failf("last save: %v", err)
	}
	inc.reg.Close()
	w.metered(inc)
	w.inc = nil
}

// simKey is the agent's signing key.
var simKey = func() *record.SigningKey {
	k, err := record.NewSigningKey(record.KeyID{1, 2, 3}, []byte("the simulated agent key, 32 byte"))
	if err != nil {
		panic(err)
	}
	return k
}()

// simShutdownTimeout is the producer's shutdown_timeout in the simulation.
const simShutdownTimeout = 5 * time.Second

// drained: a clean stop waits for Kafka's answers, up to the shutdown
// timeout; every record whose answer came within it is acknowledged to
// the stopping agent (else, Kafka holding it, it comes again after the
// restart).
func (w *world) drained(stopping time.Time) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	by := stopping.Add(simShutdownTimeout - 100*time.Millisecond)
	for _, l := range w.b.log {
		for _, r := range l {
			if r.epoch == w.b.epoch && !r.acked && r.due.Before(by) {
				w.failf("a clean stop did not wait for the answer to %q, due %v after it began (shutdown timeout %v)", short(r.value), r.due.Sub(stopping), simShutdownTimeout)
				return
			}
		}
	}
}

// ended closes the epoch of an incarnation that stopped cleanly before a
// restart: its answers still due reach nothing, and what it left on disk
// is the next one's start (as a crash's is).
func (w *world) ended() {
	w.b.crash()
	cs := w.crashState(w.data)
	cs.at, cs.epoch, cs.clean = time.Now(), len(w.crashes), true
	if len(w.crashes) > 0 {
		cs.from = w.crashes[len(w.crashes)-1].files
	}
	w.crashes = append(w.crashes, cs)
}

// metered takes what an incarnation's meter found, once it has stopped.
func (w *world) metered(inc *incarnation) {
	errs, peak := inc.meter.result()
	w.errs = append(w.errs, errs...)
	w.peak = max(w.peak, peak)
}

// crash kills the agent: Kafka's answers due to it are lost, and the next
// incarnation starts from a copy of the data directory as it is now.
func (w *world) crash() {
	inc := w.inc
	if inc == nil {
		return
	}
	w.b.crash()
	w.incs++
	next := filepath.Join(filepath.Dir(w.data), "data"+strconv.Itoa(w.incs))
	if err := os.MkdirAll(next, 0o700); err != nil {
		w.failf("%v", err)
	}
	for _, name := range []string{"registry.json", "registry.json.prev"} {
		if b, err := os.ReadFile(filepath.Join(w.data, name)); err == nil {
			os.WriteFile(filepath.Join(next, name), b, 0o600)
		}
	}
	cs := w.crashState(next)
	cs.at, cs.epoch = time.Now(), len(w.crashes)
	if len(w.crashes) > 0 {
		cs.from = w.crashes[len(w.crashes)-1].files
	}
	w.crashes = append(w.crashes, cs)
	inc.meter.stop()
	inc.readStop()
	inc.sendStop()
	inc.storeStop()
	<-inc.readDone
	<-inc.sendDone
	<-inc.storeDone
	inc.reg.Close()
	w.metered(inc)
	w.inc, w.data = nil, next
}

func (w *world) crashState(dir string) crashState {
	cs := crashState{delivered: map[string]int{}, acked: w.acked()}
	if b, err := os.ReadFile(filepath.Join(dir, "registry.json")); err == nil {
		var d struct {
			Files []diskEntry `json:"files"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			w.failf("registry on disk: %v", err)
		}
		cs.files = d.Files
	}
	ix := w.pieces()
	for _, r := range w.b.records() {
		for _, id := range idsOf(ix, r.value) {
			cs.delivered[id]++
		}
	}
	return cs
}

// short is v for a message: long values (pieces of long lines) cut.
func short(v []byte) string {
	if len(v) > 120 {
		return fmt.Sprintf("%s…(%d bytes)", v[:120], len(v))
	}
	return string(v)
}

// lineID is the id a line starts with (after the tab of a continuation
// line).
func lineID(v []byte) string {
	id, _, _ := strings.Cut(strings.TrimPrefix(string(v), "\t"), " ")
	return id
}

// acked is the lines some record of which Kafka acknowledged.
func (w *world) acked() map[string]bool {
	ix := w.pieces()
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	out := map[string]bool{}
	got := map[piece]bool{} // the pieces of long lines acknowledged
	for _, l := range w.b.log {
		for _, r := range l {
			if !r.acked {
				continue
			}
			if p, ok := ix[string(r.value)]; ok {
				got[p] = true
				continue
			}
			for _, id := range idsOf(nil, r.value) {
				out[id] = true
			}
		}
	}
	// A long line is acknowledged once every piece of it is.
	for _, l := range w.lines {
		if !l.long {
			continue
		}
		all := true
		for i := range nPieces(l) {
			all = all && got[piece{l, i}]
		}
		out[l.id] = all
	}
	return out
}

// deliveredIDs is the lines some record of which is in Kafka.
func (w *world) deliveredIDs() map[string]bool {
	ix := w.pieces()
	out := map[string]bool{}
	for _, r := range w.b.records() {
		for _, id := range idsOf(ix, r.value) {
			out[id] = true
		}
	}
	return out
}

// missing counts the lines that must be in Kafka and are not yet.
// caughtUp reports whether the running agent's registry (in memory) has
// each collected file whose every line Kafka acknowledged at its end.
func (w *world) caughtUp() bool {
	if w.inc == nil {
		return true
	}
	acked := w.acked()
	for name, f := range w.files {
		size := w.size(f)
		if !w.collects(name) || size == 0 || !w.allAcked(f, acked) {
			continue
		}
		at := false
		for _, st := range w.inc.reg.OfPath("logs", w.path(name)) {
			at = at || st.Offset == size
		}
		if !at {
			return false
		}
	}
	return true
}

// allAcked reports whether Kafka acknowledged every line f holds now
// (but those the filter drops).
func (w *world) allAcked(f *wfile, acked map[string]bool) bool {
	if f.partial != nil || f.gen == nil {
		return f.partial == nil
	}
	for _, sp := range f.gen.lines {
		if !acked[sp.l.id] && !sp.l.dropped() {
			return false
		}
	}
	return true
}

func (w *world) missing() int {
	acked := w.acked()
	n := 0
	for _, l := range w.lines {
		if l.written && !l.exempt && !l.dropped() && !acked[l.id] {
			n++
		}
	}
	return n
}

// check states the guarantees over what happened.
func (w *world) check() {
	recs := w.b.records()
	count := map[string]int{}
	ix := w.pieces()
	pieceCount := map[piece]int{}
	for _, r := range recs {
		if p, ok := ix[string(r.value)]; ok {
			// A piece of a long line; the line is counted by its most
			// delivered piece, below.
			pieceCount[p]++
			if r.headers[record.HeaderFlags] != "split" {
				w.failf("a piece of long line %s is not marked split: %q", p.l.id, r.headers[record.HeaderFlags])
			}
			continue
		}
		if strings.HasPrefix(string(r.value), "secret-") {
			w.failf("Kafka holds %q, from a file outside the allowlist", short(r.value))
			continue
		}
		parts := strings.Split(string(r.value), "\n")
		for i, part := range parts {
			id := lineID([]byte(part))
			l, ok := w.lines[id]
			if ok && l.exempt && i == len(parts)-1 && len(part) < len(l.text) && strings.HasPrefix(l.text, part) {
				// What the agent had read of a line whose rest went with
				// its deleted file: sent as the file's unterminated last
				// line.
				continue
			}
			if !ok || part != l.text {
				w.failf("Kafka holds %q, which is no line written (line %d of %d of a record)", short([]byte(part)), i+1, len(parts))
				continue
			}
			count[id]++
		}
		w.checkSpan(r, parts)
	}
	for p, n := range pieceCount {
		count[p.l.id] = max(count[p.l.id], n)
	}
	// 1. Every complete line written is in Kafka (but those whose only
	// copy was deleted before they were acknowledged).
	acked := w.acked()
	for _, l := range w.lines {
		if l.written && !l.exempt && !l.dropped() && !acked[l.id] {
			w.failf("line %s was never delivered", l.id)
		}
	}
	// 5b. A trace whose lines came within the timeout of each other is
	// one event (each of its records is the whole trace).
	for _, tr := range w.slow {
		if tr.disturbed {
			continue
		}
		for _, r := range recs {
			ids := idsOf(ix, r.value)
			if slices.Contains(ids, tr.ids[0]) && !slices.Equal(ids, tr.ids) || !slices.Contains(ids, tr.ids[0]) && slices.Contains(ids, tr.ids[len(tr.ids)-1]) {
				w.failf("the trace %v, its lines within the timeout of each other, was sent cut: a record holds %v", tr.ids, ids)
				break
			}
		}
	}
	// 7. No line the filter drops is sent.
	for id, n := range count {
		if l := w.lines[id]; l != nil && l.dropped() && n > 0 {
			w.failf("line %s, which exclude_lines drops, is in Kafka", id)
		}
	}
	// 2. A run without a crash delivers nothing twice; 3. after crashes,
	// only what the registry on disk did not cover at one of them comes
	// again.
	for id, n := range count {
		if n < 2 {
			continue
		}
		if ok, why := w.resentAfterCrash(id, recs); !ok {
			w.failf("line %s delivered %d times, and no crash explains it (crashes: %d)%s", id, n, len(w.crashes), why)
		}
	}
	// 6. Every copy of an event (its event id) carries the index-time
	// stamp the first did: the transfer places a re-sent line in the
	// daily index of the first copy, where its _id meets it.
	stamps := map[string]string{}
	for _, r := range recs {
		ev, st := r.headers[record.HeaderEventID], r.headers[record.HeaderIndexTime]
		if st == "" {
			w.failf("record %q (event %s) has no index-time stamp", short(r.value), ev)
			break
		}
		if old, ok := stamps[ev]; ok && old != st {
			w.failf("event %s was sent stamped %s and, again, %s (%q)", ev, old, st, short(r.value))
			break
		}
		stamps[ev] = st
	}
	// 8. Every record Kafka took is in a chunk whose signature verifies.
	w.b.mu.Lock()
	for _, u := range w.b.unsigned {
		w.failf("Kafka took %s", u)
	}
	w.b.mu.Unlock()
	// 4. The registry on disk is never ahead of Kafka's acknowledgements.
	for i, cs := range w.crashes {
		w.checkRegistry(i, cs, recs)
	}
	// 4b. After the clean stop, each collected file whose every line
	// Kafka acknowledged is at its end in the registry: its offsets move
	// over whole events, to where each ends, as Kafka acknowledges them.
	// (A line written while its file was not collected need not have
	// been read before the stop, and then the registry is short of it.)
	if final := w.crashState(w.data); len(w.errs) == 0 {
		for name, f := range w.files {
			size := w.size(f)
			if !w.collects(name) || size == 0 || !w.allAcked(f, acked) {
				continue
			}
			var at []int64
			for _, e := range final.files {
				if e.Path == w.path(name) {
					at = append(at, e.Offset)
				}
			}
			if !slices.Contains(at, size) {
				w.failf("after the last stop the registry has %s at %v, not at its end (%d), though every line in it was acknowledged", name, at, size)
			}
		}
	}
	// 5. Nothing outside the allowlist was opened: the file c.log leads
	// to was not (the one h.log links to is opened by its allowed name,
	// and refused; 1. shows neither was read).
	if n := w.opens(); n > 0 {
		w.failf("the file outside the allowlist that c.log leads to was opened (%d opens seen)", n)
	}
}

// checkSpan: a record starts where its first line starts in the file it
// was read from (its event id's offset), and a joined one (multi) is the
// lines that follow it there, each a continuation line, within the
// limits, and flagged multiline.
func (w *world) checkSpan(r *stored, parts []string) {
	_, start, ok := eventID(r)
	if !ok {
		w.failf("record %q has no event id", short(r.value))
		return
	}
	if len(parts) > 1 {
		if !strings.Contains(r.headers[record.HeaderFlags], record.FlagMultiline) {
			w.failf("a joined event of %d lines is not flagged multiline: %q", len(parts), r.headers[record.HeaderFlags])
		}
		if len(parts) > simMultiLines || len(r.value) > simMultiBytes {
			w.failf("a joined event of %d lines and %d bytes, past the limits (%d lines, %d bytes): %q", len(parts), len(r.value), simMultiLines, simMultiBytes, short(r.value))
		}
		for _, p := range parts[1:] {
			if !strings.HasPrefix(p, "\t") {
				w.failf("line %s, which starts an event, was joined to the one before it", lineID([]byte(p)))
			}
		}
	}
	first := w.lines[lineID([]byte(parts[0]))]
	if first == nil {
		return // reported by check
	}
	for _, g := range w.gens {
		for i, sp := range g.lines {
			if sp.l != first || sp.start != start {
				continue
			}
			if w.follow(g, i, parts) {
				return
			}
		}
	}
	w.failf("record of %d line(s) from %s says it starts at offset %d: no file held those lines, one after the other, from there", len(parts), first.id, start)
}

// follow reports whether parts are g's lines from i on, each starting
// where the one before it ended.
func (w *world) follow(g *gen, i int, parts []string) bool {
	for j := 1; j < len(parts); j++ {
		if i+j >= len(g.lines) {
			return false
		}
		prev, sp := g.lines[i+j-1], g.lines[i+j]
		if sp.l.id != lineID([]byte(parts[j])) || sp.start != prev.end {
			return false
		}
	}
	return true
}

// resentAfterCrash: some crash found the line delivered, not covered by
// the registry it left on disk, and not durably due (see due): lines
// acknowledged more than saveBound before a crash, with every line before
// them in their stream, are on disk by then and never come again. If a
// crash had the line uncovered but due, why says so.
func (w *world) resentAfterCrash(id string, recs []*stored) (bool, string) {
	why := ""
	for _, cs := range w.crashes {
		if cs.delivered[id] == 0 {
			continue
		}
		covered := false
		var before []*stored // its records the crashed incarnation or one before it sent
		for _, r := range recs {
			if !slices.Contains(idsOf(nil, r.value), id) {
				continue
			}
			inst, start, ok := eventID(r)
			if !ok {
				continue
			}
			if r.epoch <= cs.epoch {
				before = append(before, r)
			}
			for _, e := range cs.files {
				if e.Instance == inst && e.Offset >= start+int64(len(r.value))+1 {
					covered = true
				}
			}
		}
		if covered {
			continue
		}
		if l := w.lines[id]; l != nil && !l.long && len(before) > 0 {
			var at time.Time
			due := true
			for _, r := range before {
				t, ok := w.due(cs, r, recs)
				due, at = due && ok, later(at, t)
			}
			if due {
				why = fmt.Sprintf(": crash %d came %v after its incarnation had Kafka's acknowledgement of it and of every line before it in its stream (the registry saves every second), yet the registry on disk did not cover it", cs.epoch, cs.at.Sub(at))
				continue
			}
		}
		return true, ""
	}
	return false, why
}

// due reports whether the event r is was durable by crash cs: every line
// of its stream up to its end either covered by the registry the crashed
// incarnation started from, or acknowledged to that incarnation more than
// saveBound before the crash; at is the latest such acknowledgement.
func (w *world) due(cs crashState, r *stored, recs []*stored) (time.Time, bool) {
	inst, start, _ := eventID(r)
	end := start + int64(len(r.value)) + 1
	g, first := w.genOf(inst, recs)
	if g == nil {
		return time.Time{}, false
	}
	acks := w.ackTimes(cs.epoch, recs)
	var latest time.Time
	for _, s := range g.lines {
		if s.start < first || s.end > end {
			continue
		}
		if coveredBy(cs.from, inst, s.end) || s.l.dropped() {
			continue
		}
		t, ok := acks[s.l.id]
		if !ok || !t.Before(cs.at.Add(-saveBound)) {
			return time.Time{}, false
		}
		latest = later(latest, t)
	}
	return latest, !latest.IsZero()
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func coveredBy(files []diskEntry, inst string, end int64) bool {
	for _, e := range files {
		if e.Instance == inst && e.Offset >= end {
			return true
		}
	}
	return false
}

// ackTimes is when each line was first acknowledged to incarnation epoch
// (a long line: once its last piece was).
func (w *world) ackTimes(epoch int, recs []*stored) map[string]time.Time {
	ix := w.pieces()
	out := map[string]time.Time{}
	pieces := map[piece]time.Time{}
	earliest := func(m map[string]time.Time, k string, t time.Time) {
		if old, ok := m[k]; !ok || t.Before(old) {
			m[k] = t
		}
	}
	for _, r := range recs {
		if !r.acked || r.epoch != epoch {
			continue
		}
		if p, ok := ix[string(r.value)]; ok {
			if old, ok := pieces[p]; !ok || r.ackedAt.Before(old) {
				pieces[p] = r.ackedAt
			}
			continue
		}
		for _, id := range idsOf(nil, r.value) {
			earliest(out, id, r.ackedAt)
		}
	}
	for _, l := range w.lines {
		if !l.long {
			continue
		}
		var last time.Time
		all := true
		for i := range nPieces(l) {
			t, ok := pieces[piece{l, i}]
			all = all && ok
			last = later(last, t)
		}
		if all {
			out[l.id] = last
		}
	}
	return out
}

func eventID(r *stored) (string, int64, bool) {
	ev := r.headers[record.HeaderEventID]
	i := strings.LastIndexByte(ev, '-')
	if i < 0 {
		return "", 0, false
	}
	off, err := strconv.ParseInt(ev[i+1:], 10, 64)
	return ev[:i], off, err == nil
}

// checkRegistry: for every file the registry on disk had at a crash,
// every line before its offset, from the first this stream sent, was
// acknowledged by then. (A stream may start past its file's start, with
// nothing of its own before: a copytruncate copy whose content went out
// under the truncated file's stream, an entry read from the end.)
func (w *world) checkRegistry(i int, cs crashState, recs []*stored) {
	for _, e := range cs.files {
		g, first := w.genOf(e.Instance, recs)
		if g == nil {
			continue
		}
		for _, s := range g.lines {
			if s.start >= first && s.end <= e.Offset && !cs.acked[s.l.id] && !s.l.dropped() {
				w.failf("crash %d: the registry had %s at offset %d, past line %s (ends at %d), which Kafka had not acknowledged", i, e.Path, e.Offset, s.l.id, s.end)
				return
			}
		}
	}
}

// genOf finds the generation the records of instance inst were read from,
// and where the first of them starts.
func (w *world) genOf(inst string, recs []*stored) (*gen, int64) {
	var g *gen
	first := int64(-1)
	for _, r := range recs {
		ri, start, ok := eventID(r)
		if !ok || ri != inst {
			continue
		}
		if first < 0 || start < first {
			first = start
		}
		if g != nil {
			continue
		}
		id := lineID(r.value)
		for _, cand := range w.gens {
			for _, s := range cand.lines {
				if s.l.id == id && s.start == start {
					g = cand
				}
			}
		}
	}
	return g, first
}
