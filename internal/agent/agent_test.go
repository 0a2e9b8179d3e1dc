package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/ctl"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

type env struct {
	allow string // [agent] allowed_paths; default /**
	t     *testing.T
	etcd  *testutil.Etcd
	kafka *testutil.Kafka
	dir   string
	data  string
}

func newEnv(t *testing.T) *env {
	return &env{t: t, etcd: testutil.StartEtcd(t), kafka: testutil.StartKafka(t, 3), dir: t.TempDir(), data: t.TempDir()}
}

func (e *env) config(extra string) *config.AgentConfig {
	e.t.Helper()
	ini := fmt.Sprintf(`
[kafka]
address = %s
chan_max_size = 1000
flush_interval = 5ms
[etcd]
address = %s
timeout = 2s
[agent]
; tests read files under temp dirs
allowed_paths = %s
ip = 10.1.2.3
hostname = testhost
data_dir = %s
poll_interval = 20ms
scan_interval = 200ms
[http]
addr = 127.0.0.1:0
[log]
level = warn
%s`, e.kafka.Addr(), e.etcd.Endpoint(), cmpOr(e.allow, "/**"), e.data, extra)
	cfg, err := config.ParseAgent("test.ini", []byte(ini))
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// start runs an agent in-process until the returned stop is called.
func (e *env) start(cfg *config.AgentConfig) (*Agent, func()) {
	e.t.Helper()
	a, err := New(cfg, Options{Version: "test"}, testutil.Logger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("agent Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Fatal("agent did not stop")
		}
	}
	e.t.Cleanup(stop)
	return a, stop
}

func appendLines(t *testing.T, path, prefix string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func TestTwoFilesTwoTopics(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	web, app := filepath.Join(e.dir, "web.log"), filepath.Join(e.dir, "app.log")
	appendLines(t, web, "web", 0, 50)
	appendLines(t, app, "app", 0, 30)
	e.etcd.Put(a.Key(), fmt.Sprintf(`[{"path":%q,"topic":"web_log"},{"path":%q,"topic":"app_log","fields":{"service":"shop"}}]`, web, app))
	cons := testutil.Consume(t, e.kafka.Addr(), "web_log", "app_log")
	appendLines(t, web, "web", 50, 50)
	testutil.Eventually(t, 20*time.Second, func() bool { return cons.Len() >= 130 }, func() string { return fmt.Sprintf("130 records, have %d", cons.Len()) })
	byTopic := map[string]int{}
	for _, r := range cons.Records() {
		byTopic[r.Topic]++
		if r.Headers["host.name"] != "testhost" || r.Headers["host.ip"] != "10.1.2.3" {
			t.Fatalf("bad host headers %v", r.Headers)
		}
		if r.Topic == "app_log" && r.Headers["fields"] != `{"service":"shop"}` {
			t.Fatalf("fields header = %q", r.Headers["fields"])
		}
	}
	if byTopic["web_log"] != 100 || byTopic["app_log"] != 30 {
		t.Fatalf("per topic %v", byTopic)
	}
}

// lines returns the consumed values of topic that start with prefix.
func lines(cons *testutil.Consumer, topic, prefix string) []testutil.Record {
	var out []testutil.Record
	for _, r := range cons.Records() {
		if r.Topic == topic && strings.HasPrefix(string(r.Value), prefix) {
			out = append(out, r)
		}
	}
	return out
}

func waitLines(t *testing.T, cons *testutil.Consumer, topic, prefix string, n int) []testutil.Record {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() bool { return len(lines(cons, topic, prefix)) >= n },
		func() string {
			return fmt.Sprintf("%d %s lines in %s, have %d", n, prefix, topic, len(lines(cons, topic, prefix)))
		})
	return lines(cons, topic, prefix)
}

func entryJSON(path, topic, extra string) string {
	return fmt.Sprintf(`{"path":%q,"topic":%q%s}`, path, topic, extra)
}

func TestConfigUpdateReconciles(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	keep, drop, change, add := filepath.Join(e.dir, "keep.log"), filepath.Join(e.dir, "drop.log"), filepath.Join(e.dir, "change.log"), filepath.Join(e.dir, "add.log")
	for _, p := range []string{keep, drop, change} {
		appendLines(t, p, filepath.Base(p), 0, 10)
	}
	cons := testutil.Consume(t, e.kafka.Addr(), "t1", "t2", "t3", "t4")
	e.etcd.Put(a.Key(), "["+strings.Join([]string{entryJSON(keep, "t1", ""), entryJSON(drop, "t2", ""), entryJSON(change, "t3", "")}, ",")+"]")
	waitLines(t, cons, "t1", "keep.log", 10)
	waitLines(t, cons, "t2", "drop.log", 10)
	waitLines(t, cons, "t3", "change.log", 10)
	if n := testutil.OpenFDs(t, drop); n != 1 {
		t.Fatalf("drop.log open %d times, want 1", n)
	}

	// One entry removed, one changed (fields added), one added, one kept.
	appendLines(t, add, "add.log", 0, 5)
	e.etcd.Put(a.Key(), "["+strings.Join([]string{entryJSON(keep, "t1", ""), entryJSON(change, "t3", `,"fields":{"v":"2"}`), entryJSON(add, "t4", "")}, ",")+"]")
	waitLines(t, cons, "t4", "add.log", 5)
	testutil.Eventually(t, 10*time.Second, func() bool { return testutil.OpenFDs(t, drop) == 0 }, testutil.Msg("removed entry's file closed"))

	appendLines(t, drop, "drop.log", 10, 10)
	appendLines(t, keep, "keep.log", 10, 10)
	appendLines(t, change, "change.log", 10, 10)
	appendLines(t, add, "add.log", 5, 5)
	waitLines(t, cons, "t4", "add.log", 10)
	kept := waitLines(t, cons, "t1", "keep.log", 20)
	changed := waitLines(t, cons, "t3", "change.log", 20)
	if n := len(lines(cons, "t2", "drop.log")); n != 10 {
		t.Fatalf("removed entry still shipped: %d lines", n)
	}
	// Neither the kept nor the restarted entry re-read or skipped a line.
	for name, recs := range map[string][]testutil.Record{"keep.log": kept, "change.log": changed} {
		seen := map[string]bool{}
		for _, r := range recs {
			if seen[string(r.Value)] {
				t.Fatalf("%s: line %q sent twice", name, r.Value)
			}
			seen[string(r.Value)] = true
		}
		if len(seen) != 20 {
			t.Fatalf("%s: %d distinct lines, want 20", name, len(seen))
		}
	}
	for _, r := range changed {
		var n int
		fmt.Sscanf(string(r.Value), "change.log %d", &n)
		if want := n >= 10; (r.Headers["fields"] == `{"v":"2"}`) != want {
			t.Fatalf("line %q fields header %q", r.Value, r.Headers["fields"])
		}
	}
	if st := a.Status(); len(st.Tasks) != 3 {
		t.Fatalf("status lists %d tasks, want 3", len(st.Tasks))
	}
}

func TestInvalidConfigKeepsRunningConfig(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	p := filepath.Join(e.dir, "a.log")
	appendLines(t, p, "a", 0, 5)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p, "t1", "")+"]")
	waitLines(t, cons, "t1", "a", 5)

	failures := func() float64 {
		return testutil.MetricValue(a.Prometheus(), "logagent_config_reloads_total", map[string]string{"result": "failure"})
	}
	heavy := `"a{0,999}b{0,999}c{0,999}d{0,999}"` // about 8,000 instructions: two pass an entry's budget
	overBudget := `[{"path":"/x","topic":"t1","include_lines":[` + heavy + `,` + heavy + `]}]`
	for i, bad := range []string{`[{"path":"/x","topic":"t1"`, `[{"path":"relative.log","topic":"t1"}]`, overBudget, `[{"path":"/x","topic":"bad topic"}]`} {
		e.etcd.Put(a.Key(), bad)
		testutil.Eventually(t, 10*time.Second, func() bool { return failures() == float64(i+1) },
			func() string { return fmt.Sprintf("failure count %d, have %v", i+1, failures()) })
	}
	if ok := testutil.MetricValue(a.Prometheus(), "logagent_config_last_reload_successful", nil); ok != 0 {
		t.Fatalf("last_reload_successful = %v", ok)
	}
	if st := a.Status(); !strings.Contains(st.ConfigError, "bad topic") || len(st.Tasks) != 1 {
		t.Fatalf("status %+v", st)
	}
	appendLines(t, p, "a", 5, 5)
	waitLines(t, cons, "t1", "a", 10)
}

func TestKeyDeletedStopsAll(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	p1, p2 := filepath.Join(e.dir, "a.log"), filepath.Join(e.dir, "b.log")
	appendLines(t, p1, "a", 0, 1)
	appendLines(t, p2, "b", 0, 1)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p1, "t1", "")+","+entryJSON(p2, "t1", "")+"]")
	waitLines(t, cons, "t1", "b", 1)
	testutil.Eventually(t, 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(e.data, "collect_config.json"))
		return err == nil
	}, func() string { return "the collect config cached" })
	checkPrivate(t, e.data)
	e.etcd.Delete(a.Key())
	testutil.Eventually(t, 10*time.Second, func() bool { return len(a.Status().Tasks) == 0 && testutil.OpenFDs(t, e.dir) == 0 },
		func() string { return fmt.Sprintf("all tasks stopped, have %+v", a.Status().Tasks) })
	if _, err := os.Stat(filepath.Join(e.data, "collect_config.json")); !os.IsNotExist(err) {
		t.Fatalf("cached config should be removed with the key: %v", err)
	}
}

func TestEtcdRestartChangeApplied(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	p1, p2 := filepath.Join(e.dir, "a.log"), filepath.Join(e.dir, "b.log")
	appendLines(t, p1, "a", 0, 5)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p1, "t1", "")+"]")
	waitLines(t, cons, "t1", "a", 5)

	e.etcd.Stop()
	testutil.Eventually(t, 20*time.Second, func() bool { return testutil.MetricValue(a.Prometheus(), "logagent_etcd_up", nil) == 0 },
		testutil.Msg("agent notices etcd is down"))
	appendLines(t, p1, "a", 5, 5) // collection goes on without etcd
	waitLines(t, cons, "t1", "a", 10)
	e.etcd.Start()
	appendLines(t, p2, "b", 0, 5)
	e.etcd.Put(a.Key(), "["+entryJSON(p1, "t1", "")+","+entryJSON(p2, "t1", "")+"]")
	waitLines(t, cons, "t1", "b", 5)
}

func TestCachedConfigWhenEtcdDownAtStart(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("")
	a, stop := e.start(cfg)
	p := filepath.Join(e.dir, "a.log")
	appendLines(t, p, "a", 0, 5)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p, "t1", "")+"]")
	waitLines(t, cons, "t1", "a", 5)
	stop()

	e.etcd.Stop()
	appendLines(t, p, "a", 5, 5)
	e.start(cfg)
	recs := waitLines(t, cons, "t1", "a", 10)
	if len(recs) != 10 {
		t.Fatalf("%d records, want exactly 10 (resumed at the acked offset)", len(recs))
	}
}

func TestGlobPicksUpNewFiles(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	appendLines(t, filepath.Join(e.dir, "x1.log"), "x1", 0, 3)
	appendLines(t, filepath.Join(e.dir, "ignored.txt"), "ignored", 0, 3)
	cons := testutil.Consume(t, e.kafka.Addr(), "g")
	e.etcd.Put(a.Key(), "["+entryJSON(filepath.Join(e.dir, "*.log"), "g", `,"from":"end"`)+"]")
	testutil.Eventually(t, 10*time.Second, func() bool {
		st := a.Status()
		return len(st.Tasks) == 1 && len(st.Tasks[0].Files) == 1 && st.Tasks[0].Files[0].State == "running"
	}, func() string { return fmt.Sprintf("glob task running x1.log: %+v", a.Status()) })
	appendLines(t, filepath.Join(e.dir, "x1.log"), "x1", 3, 2)
	appendLines(t, filepath.Join(e.dir, "x2.log"), "x2", 0, 4) // appears later: read from its start
	waitLines(t, cons, "g", "x1", 2)
	waitLines(t, cons, "g", "x2", 4)
	recs := cons.Records()
	for _, r := range recs {
		if strings.HasPrefix(string(r.Value), "ignored") {
			t.Fatal("file outside the glob shipped")
		}
		if v := string(r.Value); v == "x1 0" || v == "x1 1" || v == "x1 2" {
			t.Fatalf("from=end entry re-read existing line %q", v)
		}
	}
}

func TestMultilineAndFieldsEndToEnd(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	p := filepath.Join(e.dir, "app.log")
	os.WriteFile(p, []byte("2026-01-01 ERROR boom\njava.lang.RuntimeException: x\n\tat A.b(A.java:1)\n2026-01-01 INFO ok\n"), 0o644)
	cons := testutil.Consume(t, e.kafka.Addr(), "app")
	e.etcd.Put(a.Key(), "["+entryJSON(p, "app", `,"multiline":{"pattern":"^\\d{4}-","timeout":"100ms"},"fields":{"service":"shop"}`)+"]")
	recs := waitLines(t, cons, "app", "2026", 2)
	if string(recs[0].Value) != "2026-01-01 ERROR boom\njava.lang.RuntimeException: x\n\tat A.b(A.java:1)" || recs[0].Headers["log.flags"] != "multiline" {
		t.Fatalf("first event %q flags %q", recs[0].Value, recs[0].Headers["log.flags"])
	}
	off := func(r testutil.Record) int64 { n, _ := record.OffsetOf([]byte(r.Headers["event.id"])); return n }
	if off(recs[1]) != 70 || off(recs[0]) != 0 || !strings.HasSuffix(recs[0].Headers["event.id"], "-0") || recs[0].Headers["fields"] != `{"service":"shop"}` {
		t.Fatalf("headers %v / %v", recs[0].Headers, recs[1].Headers)
	}
	if recs[0].Headers["event.id"] == recs[1].Headers["event.id"] || !strings.HasSuffix(recs[1].Headers["event.id"], "-70") {
		t.Fatalf("event ids %q %q", recs[0].Headers["event.id"], recs[1].Headers["event.id"])
	}
	if string(recs[0].Key) != p {
		t.Fatalf("record key %q, want the path", recs[0].Key)
	}
}

func TestKafkaDownAtStart(t *testing.T) {
	e := newEnv(t)
	e.kafka.Stop()
	a, _ := e.start(e.config(""))
	p := filepath.Join(e.dir, "a.log")
	appendLines(t, p, "a", 0, 100)
	e.etcd.Put(a.Key(), "["+entryJSON(p, "t1", "")+"]")
	testutil.Eventually(t, 10*time.Second, func() bool { return len(a.Status().Tasks) == 1 }, testutil.Msg("config applied"))
	e.kafka.Start()
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	if recs := waitLines(t, cons, "t1", "a", 100); len(recs) != 100 {
		t.Fatalf("%d records, want 100", len(recs))
	}
}

func TestDetectIP(t *testing.T) {
	ip, err := DetectIP([]string{"127.0.0.1:2379"})
	if err != nil || ip != "127.0.0.1" {
		t.Fatalf("route to loopback etcd: %q, %v", ip, err)
	}
	ip, err = DetectIP([]string{"http://127.0.0.1:2379"})
	if err != nil || ip != "127.0.0.1" {
		t.Fatalf("endpoint with scheme: %q, %v", ip, err)
	}
	// No usable endpoint: the first non-loopback interface address, if
	// this machine has one.
	ip, err = DetectIP([]string{"not-an-endpoint"})
	if err == nil && (ip == "" || ip == "127.0.0.1") {
		t.Fatalf("fallback returned %q", ip)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAllowlist(t *testing.T) {
	e := newEnv(t)
	allowed := filepath.Join(e.dir, "allowed")
	os.Mkdir(allowed, 0o755)
	e.allow = allowed + "/**"
	a, _ := e.start(e.config(""))
	ok := filepath.Join(allowed, "ok.log")
	appendLines(t, ok, "ok", 0, 3)
	secret := filepath.Join(e.dir, "secret.txt")
	os.WriteFile(secret, []byte("secret line\n"), 0o600)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")

	// An entry outside the allowlist (also via "..") rejects the config.
	for _, p := range []string{secret, allowed + "/../secret.txt"} {
		e.etcd.Put(a.Key(), "["+entryJSON(ok, "t1", "")+","+entryJSON(p, "t1", "")+"]")
		testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(a.Status().ConfigError, "outside [agent] allowed_paths") },
			func() string { return fmt.Sprintf("config with %s rejected: %+v", p, a.Status()) })
		if len(a.Status().Tasks) != 0 {
			t.Fatal("rejected config started tasks")
		}
		e.etcd.Put(a.Key(), "[]") // reset the rejection for the next round
		testutil.Eventually(t, 10*time.Second, func() bool { return a.Status().ConfigError == "" }, testutil.Msg("reset"))
	}

	// A symlink inside the allowed directory that points outside is
	// refused when opened; the other file keeps flowing.
	link := filepath.Join(allowed, "evil.log")
	os.Symlink(secret, link)
	e.etcd.Put(a.Key(), "["+entryJSON(ok, "t1", "")+","+entryJSON(link, "t1", "")+"]")
	waitLines(t, cons, "t1", "ok", 3)
	testutil.Eventually(t, 10*time.Second, func() bool {
		for _, ts := range a.Status().Tasks {
			for _, f := range ts.Files {
				if f.Path == link && strings.Contains(f.Reason, "resolves to "+secret) {
					return true
				}
			}
		}
		return false
	}, func() string { return fmt.Sprintf("symlink refused: %+v", a.Status().Tasks) })
	if n := len(lines(cons, "t1", "secret")); n != 0 {
		t.Fatalf("%d lines shipped from a file outside the allowlist", n)
	}
}

func TestInventoryAndFileMetrics(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("")
	// Progress (acked offset, bytes behind) reaches the inventory at the
	// next refresh, not with each ack (inventory_refresh, 1 min by default).
	cfg.Etcd.InventoryRefresh = time.Second
	a, stop := e.start(cfg)
	p := filepath.Join(e.dir, "inv.log")
	appendLines(t, p, "inv", 0, 100)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p, "t1", "")+","+entryJSON(filepath.Join(e.dir, "missing.log"), "t1", "")+"]")
	waitLines(t, cons, "t1", "inv", 100)
	size := fileSize(t, p)
	behind := func() float64 {
		return testutil.MetricValue(a.Prometheus(), "logagent_file_bytes_behind", map[string]string{"path": p, "topic": "t1"})
	}
	testutil.Eventually(t, 10*time.Second, func() bool {
		return behind() == 0 && testutil.MetricValue(a.Prometheus(), "logagent_file_acked_offset", map[string]string{"path": p}) == float64(size)
	}, func() string { return fmt.Sprintf("bytes behind 0, have %v", behind()) })

	run := func(args ...string) string {
		var out, errOut strings.Builder
		if code := ctl.Run(append([]string{"--endpoints", e.etcd.Endpoint()}, args...), strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("logctl %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	var agents, status string
	testutil.Eventually(t, 15*time.Second, func() bool {
		agents, status = run("agents"), run("status", a.IP())
		for _, line := range strings.Split(status, "\n") {
			if f := strings.Fields(line); len(f) >= 5 && f[0] == p {
				return f[1] == "t1" && f[2] == "running" && f[3] == fmt.Sprint(size) && f[4] == "0"
			}
		}
		return false
	}, func() string { return "inventory shows the file running and acked:\n" + agents + status })
	if !strings.Contains(agents, "10.1.2.3") || !strings.Contains(agents, "testhost") || !strings.Contains(status, "waiting for file") {
		t.Fatalf("agents:\n%s\nstatus:\n%s", agents, status)
	}
	t.Logf("logctl agents:\n%s\nlogctl status %s:\n%s", agents, a.IP(), status)

	// While Kafka is down new lines pile up as bytes behind.
	e.kafka.Stop()
	appendLines(t, p, "inv", 100, 50)
	testutil.Eventually(t, 15*time.Second, func() bool { return behind() > 0 }, testutil.Msg("bytes behind grow while Kafka is down"))
	e.kafka.Start()
	testutil.Eventually(t, 30*time.Second, func() bool { return behind() == 0 }, testutil.Msg("caught up"))

	// A clean stop removes the inventory entry at once.
	stop()
	if out := run("agents"); !strings.Contains(out, "no live agents") {
		t.Fatalf("entry left after stop:\n%s", out)
	}
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestDashboardMetricsExist checks that every logagent_* metric the
// Grafana dashboard uses (deploy/grafana/metrics.txt) is exported.
func TestDashboardMetricsExist(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	p := filepath.Join(e.dir, "m.log")
	appendLines(t, p, "m", 0, 10)
	cons := testutil.Consume(t, e.kafka.Addr(), "t1")
	e.etcd.Put(a.Key(), "["+entryJSON(p, "t1", "")+"]")
	waitLines(t, cons, "t1", "m", 10)
	testutil.CheckMetricsListed(t, a.Prometheus(), "../../deploy/grafana/metrics.txt", "logagent_")
}

func TestFIFOInGlobbedDirDuringConfigChanges(t *testing.T) {
	// A FIFO matching a glob must neither hang its tailer (an open of a
	// FIFO without a writer blocks) nor hold back config changes or
	// shutdown; the regular files beside it keep flowing.
	e := newEnv(t)
	a, stop := e.start(e.config(""))
	if err := syscall.Mkfifo(filepath.Join(e.dir, "pipe.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	appendLines(t, filepath.Join(e.dir, "a.log"), "a", 0, 5)
	cons := testutil.Consume(t, e.kafka.Addr(), "f1", "f2")
	glob := filepath.Join(e.dir, "*.log")
	for i, topic := range []string{"f1", "f2", "f1"} {
		e.etcd.Put(a.Key(), "["+entryJSON(glob, topic, fmt.Sprintf(`,"fields":{"round":"%d"}`, i))+"]")
		testutil.Eventually(t, 10*time.Second, func() bool {
			st := a.Status()
			if len(st.Tasks) != 1 || st.Tasks[0].Entry.Topic != topic || len(st.Tasks[0].Files) != 2 {
				return false
			}
			states := map[string]string{}
			for _, f := range st.Tasks[0].Files {
				states[filepath.Base(f.Path)] = f.State + ": " + f.Reason
			}
			return strings.HasPrefix(states["a.log"], "running") && strings.Contains(states["pipe.log"], "not a regular file")
		}, func() string { return fmt.Sprintf("round %d: a.log running, pipe.log refused: %+v", i, a.Status()) })
		appendLines(t, filepath.Join(e.dir, "a.log"), "a", 5+i, 1)
	}
	waitLines(t, cons, "f1", "a", 7)
	waitLines(t, cons, "f2", "a", 1)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("agent did not stop with a FIFO in a tailed glob")
	}
}

func TestMaxFiles(t *testing.T) {
	// max_files = 2: a config with three file entries is rejected whole;
	// a glob matching four files tails two and counts the others.
	e := newEnv(t)
	a, _ := e.start(e.config("[agent]\nmax_files = 2\n"))
	var plain []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(e.dir, fmt.Sprintf("p%d.txt", i))
		plain = append(plain, entryJSON(p, "m", ""))
	}
	e.etcd.Put(a.Key(), "["+strings.Join(plain, ",")+"]")
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(a.Status().ConfigError, "max_files") },
		func() string { return fmt.Sprintf("config error naming max_files, have %+v", a.Status()) })
	for i := 0; i < 4; i++ {
		appendLines(t, filepath.Join(e.dir, fmt.Sprintf("g%d.log", i)), fmt.Sprintf("g%d", i), 0, 1)
	}
	e.etcd.Put(a.Key(), "["+entryJSON(filepath.Join(e.dir, "*.log"), "m", "")+"]")
	testutil.Eventually(t, 10*time.Second, func() bool {
		st := a.Status()
		return len(st.Tasks) == 1 && len(st.Tasks[0].Files) == 2 && st.Tasks[0].FilesOverLimit == 2 &&
			testutil.MetricValue(a.Prometheus(), "logagent_files_over_limit", nil) == 2
	}, func() string { return fmt.Sprintf("2 files tailed, 2 over the limit: %+v", a.Status()) })
}

// checkPrivate fails unless dir is 0700 and everything in it is 0600 (or
// a 0700 directory): the registry, the lock and the cached collect config
// name the host's files.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want %v", p, fi.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 { // dir, LOCK, registry.json, collect_config.json
		t.Fatalf("only %d entries checked in %s", n, dir)
	}
}
