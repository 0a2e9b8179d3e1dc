package main

// Failure tests: the real logagent binary runs as a subprocess against an
// embedded etcd and a kfake broker over TCP, while a writer appends
// numbered lines. Every test counts each line written against the records
// consumed from Kafka: lost must be 0.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/testutil"
)

var agentBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logagent-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	agentBin, err = testutil.BuildBinary("./cmd/logagent", dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one logagent subprocess.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	done chan error
	log  string
}

type stack struct {
	t     *testing.T
	etcd  *testutil.Etcd
	kafka *testutil.Kafka
	dir   string // log files
	data  string // agent data_dir
	ini   string
	ip    string
	runs  int
}

func newStack(t *testing.T, extraIni string) *stack {
	s := &stack{t: t, etcd: testutil.StartEtcd(t), kafka: testutil.StartKafka(t, 4), dir: t.TempDir(), data: t.TempDir(), ip: "10.9.8.7"}
	s.ini = filepath.Join(t.TempDir(), "logagent.ini")
	ini := fmt.Sprintf(`[kafka]
address = %s
chan_max_size = 2000
[etcd]
address = %s
timeout = 2s
[agent]
ip = %s
data_dir = %s
poll_interval = 50ms
scan_interval = 500ms
shutdown_timeout = 5s
[http]
addr = 127.0.0.1:0
[log]
level = info
%s`, s.kafka.Addr(), s.etcd.Endpoint(), s.ip, s.data, extraIni)
	if err := os.WriteFile(s.ini, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) key() string { return "/logagent/" + s.ip + "/collect_config" }

func (s *stack) start() *proc {
	s.t.Helper()
	s.runs++
	logPath := filepath.Join(s.data, fmt.Sprintf("agent-%d.log", s.runs))
	lf, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(agentBin, "-config", s.ini)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{t: s.t, cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); lf.Close() }()
	s.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// term sends SIGTERM and returns the exit code.
func (p *proc) term() int {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Fatal("logagent did not exit after SIGTERM")
	}
	return p.cmd.ProcessState.ExitCode()
}

// peakRSS returns the process's peak resident set (VmHWM) in bytes.
func (p *proc) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func (p *proc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// writer appends numbered lines to files at a steady rate, and performs
// rotations between writes the way a well-behaved application and
// logrotate would.
type writer struct {
	dir     string
	names   []string
	perTick int // lines per file per 10 ms tick
	mu      sync.Mutex
	fds     map[string]*os.File
	next    map[string]int
	rotated int
	pad     string
	stopped chan struct{}
	cancel  context.CancelFunc
}

func startWriter(t *testing.T, dir string, names []string, linesPerSec int) *writer {
	w := &writer{dir: dir, names: names, perTick: max(linesPerSec/100/len(names), 1), fds: map[string]*os.File{}, next: map[string]int{},
		pad: strings.Repeat("x", 80), stopped: make(chan struct{})}
	for _, n := range names {
		w.open(t, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(ctx)
	t.Cleanup(w.stop)
	return w
}

func (w *writer) path(name string) string { return filepath.Join(w.dir, name) }

func (w *writer) open(t *testing.T, name string) {
	f, err := os.OpenFile(w.path(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w.fds[name] = f
}

func (w *writer) run(ctx context.Context) {
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
			b = b[:0]
			for i := 0; i < w.perTick; i++ {
				b = fmt.Appendf(b, "%s %08d %s\n", n, w.next[n], w.pad)
				w.next[n]++
			}
			if _, err := w.fds[n].Write(b); err != nil {
				panic(err)
			}
		}
		w.mu.Unlock()
	}
}

func (w *writer) stop() {
	w.cancel()
	<-w.stopped
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.fds {
		f.Close()
	}
	w.fds = map[string]*os.File{}
}

func (w *writer) total() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.next {
		n += v
	}
	return n
}

// renameRotate moves name to name.<k> and reopens a fresh name, as
// logrotate's `create` plus an application reopen do.
func (w *writer) renameRotate(t *testing.T, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rotated++
	w.fds[name].Close()
	if err := os.Rename(w.path(name), fmt.Sprintf("%s.%d", w.path(name), w.rotated)); err != nil {
		t.Fatal(err)
	}
	w.open(t, name)
}

// copyTruncate shifts name.1..name.3, copies name to name.1 and truncates
// name, as logrotate's `copytruncate` does (with the writer paused, so no
// line falls between the copy and the truncation).
func (w *writer) copyTruncate(t *testing.T, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.path(name)
	for i := 3; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1))
	}
	src, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.Create(p + ".1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	if err := w.fds[name].Truncate(0); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	written, consumed, distinct, lost, dups int
}

// verify waits until every written line was consumed, then checks each
// line's headers and that duplicates carry the same event id.
func verify(t *testing.T, s *stack, cons *testutil.Consumer, w *writer, timeout time.Duration) result {
	t.Helper()
	total := w.total()
	distinct := func() map[string][]testutil.Record {
		m := map[string][]testutil.Record{}
		for _, r := range cons.Records() {
			v := string(r.Value)
			if i := strings.LastIndexByte(v, ' '); i > 0 {
				v = v[:i]
			}
			m[v] = append(m[v], r)
		}
		return m
	}
	var got map[string][]testutil.Record
	deadline := time.Now().Add(timeout)
	for {
		got = distinct()
		if len(got) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	res := result{written: total, consumed: cons.Len(), distinct: len(got)}
	var missing []string
	for _, n := range w.names {
		for i := 0; i < w.next[n]; i++ {
			k := fmt.Sprintf("%s %08d", n, i)
			recs, ok := got[k]
			if !ok {
				res.lost++
				if len(missing) < 10 {
					missing = append(missing, k)
				}
				continue
			}
			res.dups += len(recs) - 1
			for _, r := range recs {
				if r.Headers["event.id"] != recs[0].Headers["event.id"] {
					t.Errorf("line %q re-sent with a different event id: %s vs %s", k, r.Headers["event.id"], recs[0].Headers["event.id"])
				}
				if r.Headers["host.ip"] != s.ip || !strings.HasSuffix(r.Headers["log.file.path"], "/"+n) || r.Headers["log.offset"] == "" {
					t.Fatalf("line %q has bad headers %v", k, r.Headers)
				}
			}
		}
	}
	if res.lost > 0 {
		t.Errorf("lost %d of %d lines, e.g. %v", res.lost, total, missing)
	}
	return res
}

func (s *stack) putConfig(names ...string) {
	var es []string
	for _, n := range names {
		es = append(es, fmt.Sprintf(`{"path":%q,"topic":"failure_test"}`, filepath.Join(s.dir, n)))
	}
	s.etcd.Put(s.key(), "["+strings.Join(es, ",")+"]")
}

func report(t *testing.T, name string, r result, rss int64) {
	t.Logf("RESULT %-28s written=%d consumed=%d distinct=%d lost=%d duplicated=%d peak_rss_mb=%.1f",
		name, r.written, r.consumed, r.distinct, r.lost, r.dups, float64(rss)/(1<<20))
}

func waitForLines(t *testing.T, cons *testutil.Consumer, n int) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() bool { return cons.Len() >= n },
		func() string { return fmt.Sprintf("%d records, have %d", n, cons.Len()) })
}

func TestSIGKILLRestartLosesNothing(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log", "b.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log", "b.log"}, 4000)
	var rss int64
	for i := 0; i < 5; i++ {
		p := s.start()
		before := cons.Len()
		waitForLines(t, cons, before+500) // it is really shipping
		time.Sleep(time.Duration(200+100*i) * time.Millisecond)
		rss = max(rss, p.peakRSS())
		p.kill()
	}
	w.stop()
	p := s.start()
	res := verify(t, s, cons, w, 60*time.Second)
	rss = max(rss, p.peakRSS())
	if code := p.term(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.logText())
	}
	report(t, "sigkill x5", res, rss)
}

func TestSIGTERMFlushesAndResumesExactly(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log"}, 2000)
	for i := 0; i < 3; i++ {
		p := s.start()
		waitForLines(t, cons, cons.Len()+300)
		if code := p.term(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM\n%s", code, p.logText())
		}
	}
	w.stop()
	p := s.start()
	res := verify(t, s, cons, w, 60*time.Second)
	p.term()
	if res.dups != 0 {
		t.Errorf("a graceful stop must flush and persist: %d duplicates", res.dups)
	}
	report(t, "sigterm x3", res, 0)
}

func TestRenameRotationUnderLoad(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 500)
	for i := 0; i < 25; i++ { // every 200 ms for 5 s
		time.Sleep(200 * time.Millisecond)
		w.renameRotate(t, "a.log")
	}
	w.stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.peakRSS()
	p.term()
	report(t, "rename+create every 200ms", res, rss)
}

func TestCopyTruncateUnderLoad(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 500)
	for i := 0; i < 10; i++ { // every 500 ms for 5 s
		time.Sleep(500 * time.Millisecond)
		w.copyTruncate(t, "a.log")
	}
	w.stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.peakRSS()
	p.term()
	report(t, "copytruncate every 500ms", res, rss)
}

func TestGlobMatchingRotatedNames(t *testing.T) {
	// A glob that also matches the rotated names (a common setup):
	// every file is still read exactly once across rotations.
	s := newStack(t, "")
	s.etcd.Put(s.key(), fmt.Sprintf(`[{"path":%q,"topic":"failure_test"}]`, filepath.Join(s.dir, "a.log*")))
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log"}, 3000)
	p := s.start()
	waitForLines(t, cons, 300)
	for i := 0; i < 10; i++ {
		time.Sleep(300 * time.Millisecond)
		w.renameRotate(t, "a.log")
	}
	w.stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.peakRSS()
	p.term()
	report(t, "glob a.log*, rotate 300ms", res, rss)
	if res.dups != 0 {
		t.Errorf("%d duplicates: a rotated file was read twice", res.dups)
	}
}

func TestBrokerOutage(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log", "b.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := startWriter(t, s.dir, []string{"a.log", "b.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 1000)
	s.kafka.Stop()
	outage := time.Now()
	var rss int64
	for time.Since(outage) < 10*time.Second {
		time.Sleep(500 * time.Millisecond)
		rss = max(rss, p.peakRSS())
	}
	s.kafka.Start()
	time.Sleep(2 * time.Second) // keep writing after the broker is back
	w.stop()
	res := verify(t, s, cons, w, 90*time.Second)
	rss = max(rss, p.peakRSS())
	if code := p.term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.logText())
	}
	report(t, "broker down 10s", res, rss)
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MB during the outage: memory is not bounded", rss>>20)
	}
}
