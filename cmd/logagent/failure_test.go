package main

// Failure tests: the real logagent binary runs as a subprocess against an
// embedded etcd and a broker over TCP (kfake, and for the tests that run on
// both backends, Apache Kafka itself), while a writer appends numbered
// lines. Every test counts each line written against the records consumed
// from Kafka: lost must be 0.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var bins = map[string]string{}

func TestMain(m *testing.M) { testutil.MainWithBinaries(m, bins, "./cmd/logagent") }

type stack struct {
	t     *testing.T
	etcd  *testutil.Etcd
	kafka testutil.Broker
	dir   string // log files
	data  string // agent data_dir
	ini   string
	ip    string
	http  string // the agent's /status and /metrics
	runs  int
}

func newStack(t *testing.T, extraIni string) *stack {
	return newStackOn(t, extraIni, testutil.StartKafka(t, 4))
}

// backends are the brokers the tests that matter most run against: kfake
// (fast) and Apache Kafka (the reference), each started per test so it can
// be stopped and restarted on its log directory.
var backends = []struct {
	name  string
	start func(t *testing.T) testutil.Broker
}{
	{"kfake", func(t *testing.T) testutil.Broker { return testutil.StartKafka(t, 4) }},
	{"kafka", func(t *testing.T) testutil.Broker { return testutil.StartRealKafka(t, testutil.RealKafkaOpts{}) }},
}

func newStackOn(t *testing.T, extraIni string, broker testutil.Broker) *stack {
	s := &stack{t: t, etcd: testutil.StartEtcd(t), kafka: broker, dir: t.TempDir(), data: t.TempDir(), ip: "10.9.8.7",
		http: fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))}
	s.ini = filepath.Join(t.TempDir(), "logagent.ini")
	ini := fmt.Sprintf(`[kafka]
address = %s
chan_max_size = 2000
[etcd]
address = %s
timeout = 2s
[agent]
; tests read files under temp dirs
allowed_paths = /**
ip = %s
data_dir = %s
poll_interval = 50ms
scan_interval = 500ms
shutdown_timeout = 5s
[http]
addr = %s
[log]
level = info
`, s.kafka.Addr(), s.etcd.Endpoint(), s.ip, s.data, s.http)
	ini = mergeIni(ini, extraIni)
	if err := os.WriteFile(s.ini, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *stack) key() string { return "/logagent/" + s.ip + "/collect_config" }

func (s *stack) start() *testutil.Proc {
	s.t.Helper()
	s.runs++
	return testutil.StartProc(s.t, filepath.Join(s.data, fmt.Sprintf("agent-%d.log", s.runs)), bins["logagent"], "-config", s.ini)
}

type result struct {
	written, consumed, distinct, lost, dups int
}

// verify waits until every written line was consumed, then checks each
// line's headers and that duplicates carry the same event id.
func verify(t *testing.T, s *stack, cons *testutil.Consumer, w *testutil.LineWriter, timeout time.Duration) result {
	t.Helper()
	total := w.Total()
	distinct := func() map[string][]testutil.Record {
		m := map[string][]testutil.Record{}
		for _, r := range cons.Records() {
			v := testutil.LineKey(string(r.Value))
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
	for n, written := range w.Written() {
		for i := 0; i < written; i++ {
			k := testutil.Line(n, i)
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
				if _, hasOffset := record.OffsetOf([]byte(r.Headers["event.id"])); r.Headers["host.ip"] != s.ip || !strings.Contains(string(r.Key), "/"+n) /* a rotated name (a.log.2) when a glob matches it */ || !hasOffset {
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
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { sigkillRestart(t, b.name, b.start(t)) })
	}
}

func sigkillRestart(t *testing.T, backend string, broker testutil.Broker) {
	s := newStackOn(t, "", broker)
	s.putConfig("a.log", "b.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 4000)
	var rss int64
	for i := 0; i < 5; i++ {
		p := s.start()
		before := cons.Len()
		waitForLines(t, cons, before+500) // it is really shipping
		time.Sleep(time.Duration(200+100*i) * time.Millisecond)
		rss = max(rss, p.PeakRSS())
		p.Kill()
	}
	w.Stop()
	p := s.start()
	res := verify(t, s, cons, w, 60*time.Second)
	rss = max(rss, p.PeakRSS())
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.LogText())
	}
	report(t, "sigkill x5 ("+backend+")", res, rss)
}

// A SIGTERM while a produce request is in flight (held by the broker
// until the agent says it is waiting for it) is a graceful stop: the agent
// waits for the acknowledgement, persists it, and the next run sends
// nothing twice. The request is in flight at the signal by construction,
// not by luck.
func TestSIGTERMFlushesAndResumesExactly(t *testing.T) {
	k := testutil.StartKafka(t, 4)
	s := newStackOn(t, "", k)
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, 2000)
	for i := 0; i < 3; i++ {
		p := s.start()
		waitForLines(t, cons, cons.Len()+300)
		var armed atomic.Bool
		held := make(chan struct{})
		release := make(chan struct{})
		c := k.Cluster()
		c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			if armed.CompareAndSwap(true, false) {
				close(held)
				c.SleepControl(func() { <-release })
			}
			c.KeepControl()
			return nil, nil, false // then answered as usual
		})
		armed.Store(true)
		<-held
		p.Signal(syscall.SIGTERM)
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(p.LogText(), "waiting for Kafka to acknowledge in-flight events") },
			testutil.Msg("the agent waiting for its request in flight"))
		close(release)
		if code := p.Wait(); code != 0 {
			t.Fatalf("exit code %d after SIGTERM\n%s", code, p.LogText())
		}
		if strings.Contains(p.LogText(), "shutdown timeout") {
			t.Fatalf("the agent gave up on its request in flight:\n%s", p.LogText())
		}
	}
	w.Stop()
	p := s.start()
	res := verify(t, s, cons, w, 60*time.Second)
	p.Term()
	if res.dups != 0 {
		t.Errorf("a graceful stop must flush and persist: %d duplicates", res.dups)
	}
	report(t, "sigterm x3, a request in flight", res, 0)
}

func TestRenameRotationUnderLoad(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 500)
	for i := 0; i < 25; i++ { // every 200 ms for 5 s
		time.Sleep(200 * time.Millisecond)
		w.RenameRotate("a.log")
	}
	w.Stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.PeakRSS()
	p.Term()
	report(t, "rename+create every 200ms", res, rss)
}

func TestCopyTruncateUnderLoad(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 500)
	for i := 0; i < 10; i++ { // every 500 ms for 5 s
		time.Sleep(500 * time.Millisecond)
		w.CopyTruncate("a.log")
	}
	w.Stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.PeakRSS()
	p.Term()
	report(t, "copytruncate every 500ms", res, rss)
}

func TestGlobMatchingRotatedNames(t *testing.T) {
	// A glob that also matches the rotated names (a common setup):
	// every file is still read exactly once across rotations.
	s := newStack(t, "")
	s.etcd.Put(s.key(), fmt.Sprintf(`[{"path":%q,"topic":"failure_test"}]`, filepath.Join(s.dir, "a.log*")))
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, 3000)
	p := s.start()
	waitForLines(t, cons, 300)
	for i := 0; i < 10; i++ {
		time.Sleep(300 * time.Millisecond)
		w.RenameRotate("a.log")
	}
	w.Stop()
	res := verify(t, s, cons, w, 60*time.Second)
	rss := p.PeakRSS()
	p.Term()
	report(t, "glob a.log*, rotate 300ms", res, rss)
	if res.dups != 0 {
		t.Errorf("%d duplicates: a rotated file was read twice", res.dups)
	}
}

func TestBrokerOutage(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { brokerOutage(t, b.name, b.start(t)) })
	}
}

func brokerOutage(t *testing.T, backend string, broker testutil.Broker) {
	s := newStackOn(t, "", broker)
	s.putConfig("a.log", "b.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 1000)
	s.kafka.Stop()
	outage := time.Now()
	var rss int64
	for time.Since(outage) < 10*time.Second {
		time.Sleep(500 * time.Millisecond)
		rss = max(rss, p.PeakRSS())
	}
	s.kafka.Start()
	time.Sleep(2 * time.Second) // keep writing after the broker is back
	w.Stop()
	res := verify(t, s, cons, w, 90*time.Second)
	rss = max(rss, p.PeakRSS())
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.LogText())
	}
	report(t, "broker down 10s ("+backend+")", res, rss)
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MB during the outage: memory is not bounded", rss>>20)
	}
}

// In a three-broker Apache Kafka cluster (replication factor 3,
// min.insync.replicas=2, acks=all), the broker leading the partitions the
// agent writes to is SIGKILLed under 5k lines/s and restarted later: no
// line is lost, and a re-sent line keeps its event id.
func TestClusterLeaderKilled(t *testing.T) {
	k := testutil.StartRealKafka(t, testutil.RealKafkaOpts{Nodes: 3})
	if err := k.K.CreateTopic("failure_test", 4); err != nil {
		t.Fatal(err)
	}
	s := newStackOn(t, "", k)
	s.putConfig("a.log", "b.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 5000)
	p := s.start()
	waitForLines(t, cons, 2000)
	// The partition a.log's lines go to, and its leader.
	part := cons.Records()[0].Partition
	for _, r := range cons.Records() {
		if strings.HasSuffix(string(r.Key), "/a.log") {
			part = r.Partition
			break
		}
	}
	leader, err := k.K.Leader("failure_test", part)
	if err != nil || leader < 0 {
		t.Fatalf("leader of partition %d: %d, %v", part, leader, err)
	}
	before := cons.Len()
	k.K.KillNode(leader)
	killed := time.Now()
	// Lines keep arriving through the new leader while the old one is down.
	waitForLines(t, cons, before+5000)
	t.Logf("node %d (leader of partition %d) killed; %d more records %s later", leader+1, part, cons.Len()-before, time.Since(killed).Round(time.Millisecond))
	if err := k.K.StartNode(context.Background(), leader); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // keep writing after the broker is back
	w.Stop()
	res := verify(t, s, cons, w, 90*time.Second)
	rss := p.PeakRSS()
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.LogText())
	}
	report(t, "3 brokers, leader SIGKILLed", res, rss)
}

// get fetches one of the agent's HTTP pages ("" while it does not answer).
func (s *stack) get(path string) string {
	resp, err := http.Get("http://" + s.http + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A broker without topic auto-creation, and one collect entry naming a
// topic that does not exist: the healthy topic's file keeps flowing, the
// other file is paused (shown in /status and the metrics) with its lines
// kept, and it resumes once the topic is created. Nothing is lost.
func TestMissingTopicBesideHealthyOne(t *testing.T) {
	k := testutil.StartRealKafka(t, testutil.RealKafkaOpts{Props: map[string]string{"auto.create.topics.enable": "false"}})
	if err := k.K.CreateTopic("healthy", 4); err != nil {
		t.Fatal(err)
	}
	s := newStackOn(t, "", k)
	s.etcd.Put(s.key(), fmt.Sprintf(`[{"path":%q,"topic":"healthy"},{"path":%q,"topic":"missing_topic"}]`,
		filepath.Join(s.dir, "a.log"), filepath.Join(s.dir, "b.log")))
	cons := testutil.Consume(t, s.kafka.Addr(), "healthy", "missing_topic")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 4000)
	p := s.start()
	waitForLines(t, cons, 2000)
	testutil.Eventually(t, 30*time.Second, func() bool {
		st := s.get("/status")
		return strings.Contains(st, `"state": "paused"`) && strings.Contains(st, "topic missing_topic refused by Kafka")
	}, func() string { return "b.log shown as paused in /status:\n" + s.get("/status") })
	if m := s.get("/metrics"); !strings.Contains(m, `logagent_topic_blocked{topic="missing_topic"} 1`) {
		t.Errorf("metrics lack the blocked topic:\n%s", m)
	}
	// The healthy file keeps flowing while the other is paused.
	for i := 0; i < 2; i++ {
		before := cons.Len()
		waitForLines(t, cons, before+3000)
	}
	for _, r := range cons.Records() {
		if r.Topic != "healthy" {
			t.Fatalf("a record reached %s before it existed", r.Topic)
		}
	}
	if err := k.K.CreateTopic("missing_topic", 4); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		for _, r := range cons.Records() {
			if r.Topic == "missing_topic" {
				return true
			}
		}
		return false
	}, testutil.Msg("b.log resumed once its topic exists"))
	w.Stop()
	res := verify(t, s, cons, w, 90*time.Second)
	rss := p.PeakRSS()
	if strings.Contains(s.get("/status"), `"paused"`) {
		t.Errorf("still paused after the topic was created:\n%s", s.get("/status"))
	}
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.LogText())
	}
	report(t, "missing topic beside healthy", res, rss)
}

// mergeIni sets, in base, every key of extra: a key base has in the same
// section gets extra's value, others are added to their section.
func mergeIni(base, extra string) string {
	type kv struct{ section, key, line string }
	var adds []kv
	sec := ""
	for _, line := range strings.Split(extra, "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "" || strings.HasPrefix(l, ";") || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "["):
			sec = l
		default:
			k, _, _ := strings.Cut(l, "=")
			adds = append(adds, kv{sec, strings.TrimSpace(k), l})
		}
	}
	lines := strings.Split(base, "\n")
	for _, a := range adds {
		sec, done, end := "", false, -1
		for i, line := range lines {
			l := strings.TrimSpace(line)
			if strings.HasPrefix(l, "[") {
				if sec == a.section {
					end = i
				}
				sec = l
				continue
			}
			if k, _, ok := strings.Cut(l, "="); ok && sec == a.section && strings.TrimSpace(k) == a.key {
				lines[i], done = a.line, true
				break
			}
		}
		if done {
			continue
		}
		if sec == a.section && end < 0 {
			end = len(lines)
		}
		if end < 0 {
			lines = append(lines, a.section, a.line)
			continue
		}
		lines = append(lines[:end], append([]string{a.line}, lines[end:]...)...)
	}
	return strings.Join(lines, "\n")
}
