// Package e2e is the process-level fault suite: the real logagent and
// logtransfer binaries run as subprocesses, while a writer appends numbered
// lines to several files. Every scenario runs on two backends:
//
//   - fake: devstack's etcd and kfake as separate processes (so each can be
//     stopped alone) and the fake Elasticsearch of this test process (fast,
//     faults on demand);
//   - real: devstack's etcd, Apache Kafka and Elasticsearch 7.17 (JVM
//     processes from internal/dev/realstack; one search node for the run, each
//     scenario on its own topic and indices).
//
// Each scenario injects one kind of failure; at the end every line must be
// stored exactly once (by _id), and the suite prints a table of lines
// written, stored, lost, duplicated and overwritten per backend.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/realstack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

var bins = map[string]string{}

func TestMain(m *testing.M) {
	testutil.MainWithBinaries(m, bins, "./cmd/logagent", "./cmd/logtransfer", "./cmd/devstack")
}

const rate = 3000 // lines per second over all files

// The bounds the README states for the fault suite (section "What make
// test runs"). "Already stored" counts re-deliveries of an _id that was
// stored (creates answered 409): 0 where nothing is killed or cut off;
// after a kill, at most about what the registry (1 s) or the consumer's
// commits had not yet recorded. Overwrites (a stored document rewritten)
// must be 0 in every scenario.
const maxAgentRSS = 80 << 20

var resendBounds = map[string]int{
	"agent SIGKILL+restart x10":          10 * 3 * rate / 2, // 1.5 s of lines per kill
	"transfer SIGKILL+restart x10":       10 * 3 * rate,     // 3 s of records per kill
	"broker down 10s":                    10 * rate,         // the outage's worth
	"ES 503 5s, then 429 on 20% 5s":      10 * rate,
	"ES stopped 5s, then hung 5s":        10 * rate,
	"rename+create rotation every 1s":    0,
	"copytruncate every 1s":              0,
	"collect config changed every 1s":    0,
	"etcd down 10s":                      0,
	"copytruncate x2 while broker down":  10 * rate,
	"rotated x2 while agent stopped":     0,
	"FIFO in glob during config changes": 0,
	"bad inputs while running":           0,
	// the transfer rejoins its group when the missing topic appears and
	// re-reads what was in flight then
	"missing topic+overlapping names+401 5s": 10 * rate,
	"host metrics through broker down 10s":   10 * rate,
}

// row is one line of the result table.
type row struct {
	scenario, backend                               string
	written, stored, lost, dups, resent, overwrites int
	agentRSS                                        int64
}

var (
	tableMu sync.Mutex
	table   []row
)

func printTable(t *testing.T) {
	tableMu.Lock()
	defer tableMu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-40s %-10s %9s %9s %5s %11s %15s %11s %13s\n", "scenario", "backend", "written", "stored", "lost", "duplicated", "already stored", "overwrites", "agent RSS MB")
	for _, r := range table {
		fmt.Fprintf(&b, "%-40s %-10s %9d %9d %5d %11d %15d %11d %13.1f\n", r.scenario, r.backend, r.written, r.stored, r.lost, r.dups, r.resent, r.overwrites, float64(r.agentRSS)/(1<<20))
	}
	t.Log(b.String())
	fmt.Print("E2E RESULTS" + b.String())
}

// sys is one running pipeline.
type sys struct {
	t          *testing.T
	backend    string // "fake", "real" (Elasticsearch) or "opensearch"
	topic      string
	dir        string
	logs       string
	etcdAddr   string
	etcdPeer   string
	kafkaPort  int
	agentHTTP  string
	store      store
	es         *fakees.Server      // fake backend
	realES     *testutil.RealES    // real backend
	realKafka  *testutil.RealKafka // real backend
	etcd       *testutil.Proc
	kafka      *testutil.Proc // fake backend: devstack running kfake
	agent      *testutil.Proc
	transfer   *testutil.Proc
	agentIni   string
	transIni   string
	runs       int
	rssMu      sync.Mutex
	rss        int64
	stopSample chan struct{}
	cli        *clientv3.Client
	deny       atomic.Bool // the proxy in front of the store answers 401
	// noAutoCreate: the broker refuses to create topics on first use.
	noAutoCreate bool
}

// sysOpts shape a pipeline beyond the defaults.
type sysOpts struct {
	transferExtra string // appended to the transfer's ini
	noAutoCreate  bool   // the broker refuses to create topics on first use
	esProxy       bool   // the transfer reaches the store through a proxy that can answer 401
	kafkaExtra    string // more [kafka] keys for the agent
}

func newSys(t *testing.T, backend, transferExtra string) *sys {
	return newSysWith(t, backend, sysOpts{transferExtra: transferExtra})
}

func newSysWith(t *testing.T, backend string, o sysOpts) *sys {
	transferExtra := o.transferExtra
	s := &sys{t: t, backend: backend, topic: "e2e_log", dir: t.TempDir(), stopSample: make(chan struct{})}
	var esURL string
	if backend != "fake" {
		// One search node for the run: each scenario gets its own topic,
		// hence its own indices.
		s.topic = "e2e_" + strings.ToLower(strings.NewReplacer("/", "_", "+", "_", "%", "").Replace(t.Name()[strings.LastIndex(t.Name(), "/")+1:]))
		engine := realstack.Elasticsearch
		if backend == "opensearch" {
			engine = realstack.OpenSearch
		}
		s.realES = testutil.SharedRealSearch(t, engine)
		esURL = s.realES.URL()
		s.store = &realStore{es: testutil.ESClient{URL: esURL}, t: t, index: s.topic + "-*"}
	} else {
		s.es = fakees.New(t)
		esURL = s.es.URL()
		s.store = fakeStore{s.es}
	}
	if o.esProxy {
		esURL = s.authProxy(esURL)
	}
	s.logs = filepath.Join(s.dir, "logs")
	os.MkdirAll(s.logs, 0o755)
	s.etcdAddr = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	s.etcdPeer = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	s.kafkaPort = testutil.FreePort(t)
	s.agentHTTP = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	s.agentIni = filepath.Join(s.dir, "logagent.ini")
	os.WriteFile(s.agentIni, []byte(fmt.Sprintf(`[kafka]
address = 127.0.0.1:%d
`+o.kafkaExtra+`
[etcd]
address = %s
timeout = 2s
[agent]
; tests read files under temp dirs
allowed_paths = /**
ip = 10.20.30.40
data_dir = %s
poll_interval = 100ms
scan_interval = 500ms
shutdown_timeout = 5s
[http]
addr = %s
`, s.kafkaPort, s.etcdAddr, filepath.Join(s.dir, "agent-data"), s.agentHTTP)), 0o644)
	s.transIni = filepath.Join(s.dir, "logtransfer.ini")
	os.WriteFile(s.transIni, []byte(fmt.Sprintf(`[kafka]
address = 127.0.0.1:%d
session_timeout = 6s
[etcd]
discover_topics = true
address = %s
timeout = 2s
[es]
address = %s
workers = 4
bulk_actions = 500
flush_interval = 100ms
retry_backoff_max = 1s
shutdown_timeout = 5s
[transfer]
data_dir = %s
[log]
level = debug
[http]
addr = 127.0.0.1:0
%s`, s.kafkaPort, s.etcdAddr, esURL, filepath.Join(s.dir, "transfer-data"), transferExtra)), 0o644)
	s.startEtcd()
	s.noAutoCreate = o.noAutoCreate
	if backend != "fake" {
		ko := testutil.RealKafkaOpts{Partitions: 4}
		if o.noAutoCreate {
			ko.Props = map[string]string{"auto.create.topics.enable": "false"}
		}
		s.realKafka = testutil.StartRealKafkaOn(t, s.kafkaPort, ko)
	} else {
		s.startKafka()
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.etcdAddr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{Backoff: grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, MaxDelay: time.Second}})}})
	if err != nil {
		t.Fatal(err)
	}
	s.cli = cli
	t.Cleanup(func() { close(s.stopSample); cli.Close() })
	go s.sampleRSS()
	return s
}

func (s *sys) logPath(name string) string {
	s.runs++
	return filepath.Join(s.dir, fmt.Sprintf("%02d-%s.log", s.runs, name))
}

func waitPort(t *testing.T, addr string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, testutil.Msg("%s listening", addr))
}

func (s *sys) startEtcd() {
	s.etcd = testutil.StartProc(s.t, s.logPath("etcd"), bins["devstack"], "-data", filepath.Join(s.dir, "etcd"), "-etcd", s.etcdAddr, "-etcd-peer", s.etcdPeer, "-kafka-port", "0")
	waitPort(s.t, s.etcdAddr)
}

// stopBroker stops the broker cleanly, keeping its data.
func (s *sys) stopBroker() {
	s.t.Helper()
	if s.realKafka != nil {
		s.realKafka.Stop()
		return
	}
	if code := s.kafka.Term(); code != 0 {
		s.t.Fatalf("broker exit %d", code)
	}
}

// startBroker starts it again on its data.
func (s *sys) startBroker() {
	s.t.Helper()
	if s.realKafka != nil {
		s.realKafka.Start()
		return
	}
	s.startKafka()
}

func (s *sys) startKafka() {
	args := []string{"-data", filepath.Join(s.dir, "kafka"), "-etcd", "", "-kafka-port", strconv.Itoa(s.kafkaPort), "-partitions", "4"}
	if s.noAutoCreate {
		args = append(args, "-no-auto-create")
	}
	s.kafka = testutil.StartProc(s.t, s.logPath("kafka"), bins["devstack"], args...)
	waitPort(s.t, fmt.Sprintf("127.0.0.1:%d", s.kafkaPort))
}

// startAgent starts the agent and waits until its HTTP endpoint answers,
// so a start that fails (and why) is reported where it happens, not later
// as an exit code.
func (s *sys) startAgent() {
	s.t.Helper()
	s.agent = testutil.StartProc(s.t, s.logPath("agent"), bins["logagent"], "-config", s.agentIni)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.agentHTTP + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		if !s.agent.Running() || time.Now().After(deadline) {
			s.t.Fatalf("agent did not start (running %v): %v; its log:\n%s", s.agent.Running(), err, tail(s.agent.LogText(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *sys) startTransfer() {
	s.transfer = testutil.StartProc(s.t, s.logPath("transfer"), bins["logtransfer"], "-config", s.transIni)
}

// sampleRSS keeps the agent's peak RSS across restarts.
func (s *sys) sampleRSS() {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stopSample:
			return
		case <-tick.C:
		}
		s.rssMu.Lock()
		if a := s.agent; a != nil {
			s.rss = max(s.rss, a.PeakRSS())
		}
		s.rssMu.Unlock()
	}
}

func (s *sys) killAgent() {
	s.rssMu.Lock()
	s.rss = max(s.rss, s.agent.PeakRSS())
	s.rssMu.Unlock()
	s.agent.Kill()
}

// put writes the collect config, retrying while etcd comes back (after a
// restart the client may still be waiting to reconnect).
func (s *sys) put(value string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.cli.Put(ctx, "/logagent/10.20.30.40/collect_config", value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd put: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *sys) config(names ...string) string {
	var es []string
	for _, n := range names {
		es = append(es, fmt.Sprintf(`{"path":%q,"topic":%q}`, filepath.Join(s.logs, n), s.topic))
	}
	return "[" + strings.Join(es, ",") + "]"
}

// agentMetric reads one value from the agent's /metrics.
func (s *sys) agentMetric(name string) float64 {
	resp, err := http.Get("http://" + s.agentHTTP + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+" ") {
			v, _ := strconv.ParseFloat(strings.TrimPrefix(line, name+" "), 64)
			return v
		}
	}
	return -1
}

// start brings the daemons up with files collected and a writer running,
// and waits until lines are flowing end to end.
func (s *sys) start(names ...string) *testutil.LineWriter {
	s.t.Helper()
	return s.startWith(s.config(names...), names...)
}

// startWith is start with a collect config of the test's own for the
// files names.
func (s *sys) startWith(config string, names ...string) *testutil.LineWriter {
	s.t.Helper()
	s.put(config)
	s.startTransfer()
	s.startAgent()
	w := testutil.StartLineWriter(s.t, s.logs, names, rate)
	testutil.Eventually(s.t, 90*time.Second, func() bool { return s.store.Count() >= 500 },
		func() string {
			return fmt.Sprintf("lines flowing end to end (stored %d)\n%s\n%s", s.store.Count(), tail(s.agent.LogText(), 20), tail(s.transfer.LogText(), 20))
		})
	return w
}

// finish stops the writer, waits for every line, verifies and records a
// table row.
func (s *sys) finish(name string, w *testutil.LineWriter, extra func(docs map[string]json.RawMessage)) {
	s.t.Helper()
	w.Stop()
	written := w.Written()
	total := w.Total()
	var r row
	deadline := time.Now().Add(120 * time.Second)
	for {
		if s.store.Count() >= total {
			r = s.verify(written)
			if r.lost == 0 || time.Now().After(deadline) {
				break
			}
		} else if time.Now().After(deadline) {
			r = s.verify(written)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.rssMu.Lock()
	if s.agent != nil {
		s.rss = max(s.rss, s.agent.PeakRSS())
	}
	r.agentRSS = s.rss
	s.rssMu.Unlock()
	r.scenario, r.backend, r.written = name, s.backend, total
	r.overwrites = s.store.Overwrites()
	r.resent = s.store.AlreadyStored()
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
	if b, ok := resendBounds[name]; ok && r.resent > b {
		s.t.Errorf("%s (%s): %d re-deliveries of stored documents, above the bound of %d the README states", name, s.backend, r.resent, b)
	}
	if r.overwrites != 0 {
		s.t.Errorf("%s (%s): %d stored documents rewritten by a re-delivery", name, s.backend, r.overwrites)
	}
	if r.agentRSS > maxAgentRSS {
		s.t.Errorf("%s (%s): agent peak RSS %.1f MB, above the bound of %d MB the README states", name, s.backend, float64(r.agentRSS)/(1<<20), maxAgentRSS>>20)
	}
	if r.lost != 0 || r.dups != 0 {
		s.t.Errorf("%s (%s): lost %d, duplicated %d of %d lines\nagent log:\n%s", name, s.backend, r.lost, r.dups, total, tail(s.agent.LogText(), 40))
	}
	if extra != nil {
		all := map[string]json.RawMessage{}
		for _, d := range s.store.Docs() {
			all[d.ID] = d.Source
		}
		extra(all)
	}
	if code := s.agent.Term(); code != 0 {
		s.t.Errorf("agent exit code %d; its log ends:\n%s", code, tail(s.agent.LogText(), 30))
	}
	if code := s.transfer.Term(); code != 0 {
		s.t.Errorf("transfer exit code %d", code)
	}
}

func (s *sys) transferLogs() string { return s.transfer.LogText() }

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// verify counts each written line among the stored documents.
func (s *sys) verify(written map[string]int) row {
	seen := map[string]int{}
	stored := 0
	for _, doc := range s.store.Docs() {
		stored++
		var d struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(doc.Source, &d) == nil {
			seen[testutil.LineKey(d.Message)]++
		}
	}
	r := row{stored: stored}
	for n, c := range written {
		for i := 0; i < c; i++ {
			switch k := seen[testutil.Line(n, i)]; {
			case k == 0:
				r.lost++
			case k > 1:
				r.dups += k - 1
			}
		}
	}
	return r
}

// backends are run in this order; the real ones need Java and Maven (CI
// installs them; elsewhere they are skipped without them). "real" is
// Apache Kafka and Elasticsearch 7.17; "opensearch" is Apache Kafka and
// OpenSearch 2.19, for the scenarios where the engine's answers are the
// behaviour (templates, overlapping patterns, 401s, errors).
var backends = []string{"fake", "real", "opensearch"}

func TestFaultSuite(t *testing.T) {
	defer printTable(t)
	scenarios := []struct {
		name string
		run  func(t *testing.T, backend string)
		// opensearch: run on the OpenSearch backend too.
		opensearch bool
	}{
		{name: "agent SIGKILL+restart x10", run: agentKill},
		{name: "transfer SIGKILL+restart x10", run: transferKill},
		{name: "broker down 10s", run: brokerDown},
		{name: "ES outage", run: esFaults},
		{name: "rename+create rotation every 1s", run: renameRotation},
		{name: "copytruncate every 1s", run: copyTruncate},
		{name: "collect config changed every 1s", run: configChurn},
		{name: "etcd down 10s", run: etcdDown},
		{name: "copytruncate x2 while broker down", run: copyTruncateOutage},
		{name: "rotated x2 while agent stopped", run: rotatedWhileStopped},
		{name: "FIFO in glob during config changes", run: fifoInGlob},
		{name: "bad inputs while running", run: badInputs},
		{name: "missing topic+overlapping names+401", run: topicFaults, opensearch: true},
		{name: "transfer SIGKILL x5 across pipeline changes", run: pipelineChanges},
		{name: "one topic refused 10s under load", run: topicRefused},
		{name: "forged records ahead of the agent", run: forgedRecords},
		{name: "host metrics through broker down 10s", run: metricsOutage},
	}
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			if be != "fake" {
				testutil.NeedReal(t)
			}
			for _, sc := range scenarios {
				if be == "opensearch" && !sc.opensearch {
					continue
				}
				t.Run(strings.ReplaceAll(sc.name, " ", "_"), func(t *testing.T) { sc.run(t, be) })
			}
		})
	}
}

func agentKill(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "c.log")
	for i := 0; i < 10; i++ {
		time.Sleep(2 * time.Second)
		s.killAgent()
		s.startAgent()
	}
	s.finish("agent SIGKILL+restart x10", w, nil)
}

func transferKill(t *testing.T, be string) {
	// Static membership lets each restarted instance take its
	// partitions back at once instead of waiting out the session.
	s := newSys(t, be, "[kafka]\ninstance_id = e2e-transfer\n")
	w := s.start("a.log", "b.log", "c.log")
	for i := 0; i < 10; i++ {
		time.Sleep(1500 * time.Millisecond)
		s.transfer.Kill()
		s.startTransfer()
	}
	s.finish("transfer SIGKILL+restart x10", w, nil)
}

func brokerDown(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "c.log")
	s.stopBroker()
	outage := time.Now()
	sawDown := false
	for time.Since(outage) < 10*time.Second { // the outage
		if s.agentMetric("logagent_kafka_up") == 0 {
			sawDown = true
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !sawDown {
		t.Error("the agent never reported Kafka down (logagent_kafka_up stayed 1) during the outage")
	}
	s.startBroker()
	time.Sleep(2 * time.Second)
	s.finish("broker down 10s", w, nil)
}

// esFaults: on the fake, 503 on every request for 5 s, then 429 on a fifth
// of the items for 5 s; on the real node, the node stopped for 5 s (nothing
// listens), then hung (SIGSTOP) for 5 s with requests in flight.
func esFaults(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "c.log")
	if be == "real" {
		if err := s.realES.E.Stop(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // the outage
		if err := s.realES.E.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		p := s.realES.E.Process()
		if err := p.Pause(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // hung with requests in flight
		if err := p.Resume(); err != nil {
			t.Fatal(err)
		}
		s.finish("ES stopped 5s, then hung 5s", w, nil)
		if !strings.Contains(s.transferLogs(), "bulk request failed; retrying with backoff") {
			t.Error("the transfer never saw the outage")
		}
		return
	}
	s.es.SetUnavailable(true)
	time.Sleep(5 * time.Second)
	s.es.SetUnavailable(false)
	var n int64
	var mu sync.Mutex
	s.es.SetItemFault(func(_, _ string, _ []byte) int {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n%5 == 0 {
			return 429
		}
		return 0
	})
	time.Sleep(5 * time.Second)
	s.es.SetItemFault(nil)
	s.finish("ES 503 5s, then 429 on 20% 5s", w, nil)
	if st := s.es.Stats(); st.Rejected503Requests == 0 || st.Rejected429 == 0 {
		t.Errorf("faults did not bite: %+v", st)
	}
}

func renameRotation(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	for i := 0; i < 10; i++ {
		time.Sleep(time.Second)
		w.RenameRotate("a.log")
		w.RenameRotate("b.log")
	}
	s.finish("rename+create rotation every 1s", w, nil)
}

func copyTruncate(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	for i := 0; i < 10; i++ {
		time.Sleep(time.Second)
		w.CopyTruncate("a.log")
		w.CopyTruncate("b.log")
	}
	s.finish("copytruncate every 1s", w, nil)
}

func configChurn(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "c.log")
	p := func(n string) string { return filepath.Join(s.logs, n) }
	topic := s.topic
	variants := []string{
		fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q}]`, p("a.log"), topic, p("b.log"), topic),                                                              // c removed
		fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q},{"path":%q,"topic":%q,"fields":{"v":"2"}}]`, p("a.log"), topic, p("b.log"), topic, p("c.log"), topic), // c back, changed
		fmt.Sprintf(`[{"path":%q,"topic":%q,"fields":{"v":"3"}},{"path":%q,"topic":%q,"fields":{"v":"2"}}]`, p("a.log"), topic, p("c.log"), topic),                        // a changed, b removed
		fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q},{"path":%q,"topic":%q}]`, p("a.log"), topic, p("b.log"), topic, p("c.log"), topic),                    // all back
		fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q,"from":"end"},{"path":%q,"topic":%q}]`, p("a.log"), topic, p("b.log"), topic, p("c.log"), topic),       // b changed (from)
	}
	for i := 0; i < 10; i++ {
		time.Sleep(time.Second)
		s.put(variants[i%len(variants)])
	}
	s.put(s.config("a.log", "b.log", "c.log"))
	s.finish("collect config changed every 1s", w, nil)
}

// copyTruncateOutage: the broker is down long enough for the agent to be
// held mid-file, and logrotate copytruncates twice (rotate 3): the unread
// rest of the first generation is in FILE.2 by the time Kafka is back, the
// second only in FILE.1.
func copyTruncateOutage(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	s.stopBroker()
	time.Sleep(3 * time.Second) // the buffer fills; reading is held
	w.CopyTruncate("a.log")
	w.CopyTruncate("b.log")
	time.Sleep(2 * time.Second)
	w.CopyTruncate("a.log")
	w.CopyTruncate("b.log")
	time.Sleep(2 * time.Second)
	s.startBroker()
	s.finish("copytruncate x2 while broker down", w, nil)
}

// rotatedWhileStopped: the agent is stopped and each file is rotated twice
// before it starts again; the middle file was never seen by the registry.
func rotatedWhileStopped(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	if code := s.agent.Term(); code != 0 {
		t.Fatalf("agent exit code %d", code)
	}
	time.Sleep(time.Second)
	w.RenameRotate("a.log")
	w.RenameRotate("b.log")
	time.Sleep(time.Second)
	w.RenameRotate("a.log")
	w.RenameRotate("b.log")
	time.Sleep(time.Second)
	s.startAgent()
	s.finish("rotated x2 while agent stopped", w, nil)
}

// fifoInGlob: a FIFO matches the collect glob (an open of it would block)
// while the config changes every second; the files beside it flow, every
// change is applied, and the agent still stops at once.
func fifoInGlob(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	if err := syscall.Mkfifo(filepath.Join(s.logs, "pipe.log"), 0o644); err != nil {
		t.Fatal(err)
	}
	glob := filepath.Join(s.logs, "*.log")
	for i := 0; i < 6; i++ {
		time.Sleep(time.Second)
		s.put(fmt.Sprintf(`[{"path":%q,"topic":%q,"fields":{"round":"%d"}}]`, glob, s.topic, i))
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return s.agentMetric("logagent_config_reloads_total{result=\"success\"}") >= 4 },
		testutil.Msg("the config changes applied"))
	if !strings.Contains(s.agent.LogText(), "is not a regular file") {
		t.Error("the FIFO was not reported")
	}
	s.finish("FIFO in glob during config changes", w, nil)
}

func etcdDown(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "d.log") // d.log is written but not yet collected
	s.put(s.config("a.log", "b.log"))
	if code := s.etcd.Term(); code != 0 {
		t.Fatalf("etcd exit %d", code)
	}
	before := s.store.Count()
	time.Sleep(10 * time.Second) // the outage
	// Collection went on without etcd: lines written during the outage are
	// stored before it ends (10 s at 3k lines/s; ask for a third).
	if during := s.store.Count() - before; during < rate*10/3 {
		t.Errorf("only %d lines stored during the 10 s etcd outage: collection stopped", during)
	}
	s.startEtcd()
	s.put(s.config("a.log", "b.log", "d.log")) // a change after the restart is applied
	s.finish("etcd down 10s", w, nil)
}

func badInputs(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log", "c.log", "d.log")
	os.Mkdir(filepath.Join(s.logs, "dir.log"), 0o755) // not a file: cannot be read
	// Invalid JSON and an illegal topic are rejected whole; the running
	// config stays.
	// (One at a time: two puts in quick succession may reach the agent as
	// one watch response, of which only the latest revision is applied.)
	s.put(`[{"path": "/x", "topic": `)
	testutil.Eventually(t, 20*time.Second, func() bool { return s.agentMetric(`logagent_config_reloads_total{result="failure"}`) >= 1 },
		testutil.Msg("the invalid JSON rejected and counted"))
	s.put(fmt.Sprintf(`[{"path":%q,"topic":"bad topic"}]`, filepath.Join(s.logs, "a.log")))
	testutil.Eventually(t, 20*time.Second, func() bool { return s.agentMetric(`logagent_config_reloads_total{result="failure"}`) >= 2 },
		testutil.Msg("the illegal topic rejected and counted"))
	s.put(s.config("a.log", "b.log", "c.log", "d.log", "dir.log"))
	testutil.Eventually(t, 20*time.Second, func() bool { return s.agentMetric("logagent_file_errors_total") >= 1 },
		testutil.Msg("unreadable path counted"))
	big := strings.Repeat("0123456789abcdef", 10<<20/16) // a 10 MB line
	w.WriteRaw("b.log", []byte("BIG "+big+"\n"))
	w.WriteRaw("c.log", []byte("NONUTF8 \xff\xfe bytes\n"))
	time.Sleep(time.Second)
	w.Remove("d.log") // deleted while tailed; the writer keeps appending for a while
	time.Sleep(2 * time.Second)
	w.Close("d.log")
	time.Sleep(time.Second)
	s.finish("bad inputs while running", w, func(docs map[string]json.RawMessage) {
		bigBytes, pieces, nonUTF8 := 0, 0, false
		for _, raw := range docs {
			var d struct {
				Message string
				Log     struct{ Flags []string }
			}
			json.Unmarshal(raw, &d)
			if strings.HasPrefix(d.Message, "BIG ") || (len(d.Log.Flags) > 0 && strings.Trim(d.Message, "0123456789abcdef") == "") {
				bigBytes += len(d.Message)
				pieces++
			}
			if strings.HasPrefix(d.Message, "NONUTF8") {
				nonUTF8 = d.Message == "NONUTF8 \ufffd\ufffd bytes"
			}
		}
		if bigBytes != len(big)+4 {
			t.Errorf("10 MB line stored as %d pieces of %d bytes in all, want %d", pieces, bigBytes, len(big)+4)
		}
		if !nonUTF8 {
			t.Error("non-UTF-8 line missing or not replaced with U+FFFD")
		}
		if n := s.agentMetric("logagent_line_pieces_split_total"); n < 40 {
			t.Errorf("split pieces counted: %v", n)
		}
		for _, want := range []string{"invalid collect config rejected", "is not a regular file", "file removed or renamed away"} {
			if !strings.Contains(s.agent.LogText(), want) {
				t.Errorf("agent log lacks %q", want)
			}
		}
	})
}

// authProxy starts a reverse proxy to the store at target that answers
// every request with Elasticsearch's 401 (an expired or revoked
// credential) while s.deny is set, and returns its URL.
func (s *sys) authProxy(target string) string {
	u, err := url.Parse(target)
	if err != nil {
		s.t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.deny.Load() {
			w.Header().Set("WWW-Authenticate", `Basic realm="security" charset="UTF-8"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			reason := fmt.Sprintf("unable to authenticate user [logpipe] for REST request [%s]", r.URL.Path)
			fmt.Fprintf(w, `{"error":{"root_cause":[{"type":"security_exception","reason":%q}],"type":"security_exception","reason":%q},"status":401}`, reason, reason)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	go srv.Serve(ln)
	s.t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// kafkaAdmin is a client for the scenario's broker (fake or real).
func (s *sys) kafkaAdmin() (sarama.Client, sarama.ClusterAdmin) {
	s.t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	addr := fmt.Sprintf("127.0.0.1:%d", s.kafkaPort)
	cl, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		cl.Close()
		s.t.Fatal(err)
	}
	return cl, adm
}

func (s *sys) createTopics(names ...string) {
	s.t.Helper()
	cl, adm := s.kafkaAdmin()
	defer cl.Close()
	for _, n := range names {
		if err := adm.CreateTopic(n, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
			s.t.Fatalf("creating topic %s: %v", n, err)
		}
	}
}

// records is how many records topic holds (the sum of its partitions' end
// offsets).
func (s *sys) records(topic string) int64 {
	s.t.Helper()
	cl, _ := s.kafkaAdmin()
	defer cl.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		s.t.Fatalf("partitions of %s: %v", topic, err)
	}
	var n int64
	for _, p := range parts {
		off, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			s.t.Fatalf("end offset of %s/%d: %v", topic, p, err)
		}
		n += off
	}
	return n
}

// indexCounts is the number of documents per index of the scenario.
func (s *sys) indexCounts() map[string]int {
	out := map[string]int{}
	if s.es != nil {
		for idx, docs := range s.es.Docs() {
			out[idx] = len(docs)
		}
		return out
	}
	es := testutil.ESClient{URL: s.realES.URL()}
	var rows []struct {
		Index string `json:"index"`
		Count string `json:"docs.count"`
	}
	es.JSON(s.t, 200, "GET", "/_cat/indices/"+s.topic+"-*?format=json&h=index,docs.count", "", &rows)
	for _, r := range rows {
		n, _ := strconv.Atoi(r.Count)
		out[r.Index] = n
	}
	return out
}

// topicFaults: the brokers refuse to create topics, one collect entry names
// a topic that does not exist yet, two topics have overlapping index
// patterns (T-* and T-error-*, whose templates conflict at one priority),
// and the store answers 401 to everything for 5 s. The healthy topics flow
// throughout; the missing one waits in the agent (nothing dropped) and
// flows once created; nothing reaches a dead-letter topic; every line is
// stored once.
func topicFaults(t *testing.T, be string) {
	s := newSysWith(t, be, sysOpts{noAutoCreate: true, esProxy: true})
	healthy, overlap, late := s.topic, s.topic+"-error", s.topic+"-late"
	dlqs := []string{healthy + ".dlq", overlap + ".dlq", late + ".dlq"}
	s.createTopics(append([]string{healthy, overlap}, dlqs...)...)
	p := func(n string) string { return filepath.Join(s.logs, n) }
	cfg := fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q},{"path":%q,"topic":%q}]`,
		p("a.log"), healthy, p("b.log"), overlap, p("c.log"), late)
	w := s.startWith(cfg, "a.log", "b.log", "c.log")
	counts := func() string { return fmt.Sprintf("indices %v", s.indexCounts()) }
	// Both overlapping topics are indexed; the missing one holds only its
	// own file in the agent.
	var idx map[string]int
	testutil.Eventually(t, 60*time.Second, func() bool {
		idx = s.indexCounts()
		var h, o int
		for name, n := range idx {
			switch {
			case strings.HasPrefix(name, overlap+"-"):
				o += n
			case strings.HasPrefix(name, late+"-"):
			case strings.HasPrefix(name, healthy+"-"):
				h += n
			}
		}
		return h > 0 && o > 0
	}, counts)
	testutil.Eventually(t, 30*time.Second, func() bool {
		return s.agentMetric(fmt.Sprintf(`logagent_topic_blocked{topic=%q}`, late)) == 1
	}, testutil.Msg("the agent reports %s blocked", late))
	// The 401 window, while the topic is still missing.
	s.deny.Store(true)
	time.Sleep(5 * time.Second) // the window: the scenario, not synchronisation
	s.deny.Store(false)
	before := s.store.Count()
	testutil.Eventually(t, 30*time.Second, func() bool { return s.store.Count() > before+rate },
		testutil.Msg("indexing resumes after the 401 window"))
	s.createTopics(late)
	s.finish("missing topic+overlapping names+401 5s", w, func(map[string]json.RawMessage) {
		for _, q := range dlqs {
			if n := s.records(q); n != 0 {
				t.Errorf("%d records in the dead-letter topic %s", n, q)
			}
		}
		tl := s.transferLogs()
		for _, want := range []string{"topic does not exist in Kafka; consuming the others", "topic now exists in Kafka; consuming it", "bulk request failed; retrying with backoff"} {
			if !strings.Contains(tl, want) {
				t.Errorf("transfer log lacks %q", want)
			}
		}
		if !strings.Contains(tl, `status=401`) && !strings.Contains(tl, `"status":401`) {
			t.Error("the transfer never saw the 401")
		}
		idx := s.indexCounts()
		for _, tp := range []string{healthy, overlap, late} {
			n := 0
			for name, c := range idx {
				if i := strings.LastIndexByte(name, '-'); i > 0 && name[:i] == tp { // <topic>-<day>
					n += c
				}
			}
			if n == 0 {
				t.Errorf("no documents in the indices of %s: %v", tp, idx)
			}
		}
	})
}

// pipelineChanges: every line names the custom pipeline app, whose version
// changes at every transfer kill between one that leaves @timestamp alone
// and one that dates every line 2019-11-23. What the killed transfer had
// not committed is delivered again under the other version: it must meet
// its _id in the same index (when a parsed time chose the index, those
// re-deliveries were stored a second time, in the 2019 index).
func pipelineChanges(t *testing.T, be string) {
	s := newSys(t, be, "[kafka]\ninstance_id = e2e-transfer\n")
	versions := []string{
		`[{"set":{"field":"labels.v","value":"1"}}]`,
		`[{"set":{"field":"labels.v","value":"2"}},{"set":{"field":"labels.d","value":"2019-11-23"}},{"timestamp":{"field":"labels.d","layouts":["2006-01-02"]}}]`,
	}
	putPipeline := func(v string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.cli.Put(ctx, "/logtransfer/pipelines/app", v); err != nil {
			t.Fatal(err)
		}
	}
	putPipeline(versions[0])
	var entries []string
	for _, n := range []string{"a.log", "b.log"} {
		entries = append(entries, fmt.Sprintf(`{"path":%q,"topic":%q,"pipeline":"app"}`, filepath.Join(s.logs, n), s.topic))
	}
	w := s.startWith("["+strings.Join(entries, ",")+"]", "a.log", "b.log")
	for i := 0; i < 5; i++ {
		time.Sleep(1500 * time.Millisecond)
		s.transfer.Kill()
		putPipeline(versions[(i+1)%2])
		s.startTransfer()
	}
	s.finish("transfer SIGKILL x5 across pipeline changes", w, nil)
	dated := false
	for idx := range s.indexCounts() {
		if strings.HasSuffix(idx, "-2019.11.23") {
			t.Errorf("index %s exists: a parsed time chose the index", idx)
		}
	}
	for _, d := range s.store.Docs() {
		if strings.Contains(string(d.Source), `"@timestamp":"2019-11-23T`) {
			dated = true
			break
		}
	}
	if !dated {
		t.Error("no document was dated by version 2: the pipeline change never applied")
	}
}

// topicRefused: the agent ships a.log to one topic and b.log to another;
// the second starts refusing writes while busy (its max.message.bytes
// below any record batch: every produce to it fails, nothing is deleted)
// for 10 s. The first topic keeps being stored meanwhile; afterwards every
// line of both is stored once. Apache Kafka only: kfake does not enforce
// topic configs.
func topicRefused(t *testing.T, be string) {
	if be != "real" {
		t.Skip("kfake does not enforce topic configs")
	}
	// A bound the refused topic fills within a second or two (b.log gets
	// half of the writer's 3,000 lines/s), so the check below sees
	// whether the other topic still flows once it is full.
	s := newSysWith(t, be, sysOpts{kafkaExtra: "chan_max_size = 2000"})
	other := s.topic + "-b" // its indices match the scenario's store pattern too
	s.createTopics(s.topic, other)
	cfg := fmt.Sprintf(`[{"path":%q,"topic":%q},{"path":%q,"topic":%q}]`, filepath.Join(s.logs, "a.log"), s.topic, filepath.Join(s.logs, "b.log"), other)
	w := s.startWith(cfg, "a.log", "b.log")
	cl, adm := s.kafkaAdmin()
	defer cl.Close()
	// Every produce to it is refused (MESSAGE_TOO_LARGE) while its
	// max.message.bytes is below any record batch; nothing is deleted.
	set := func(op sarama.IncrementalAlterConfigsOperation, v string) {
		err := adm.IncrementalAlterConfig(sarama.TopicResource, other,
			map[string]sarama.IncrementalAlterConfigsEntry{"max.message.bytes": {Operation: op, Value: &v}}, false)
		if err != nil {
			t.Fatalf("setting max.message.bytes of %s: %v", other, err)
		}
	}
	set(sarama.IncrementalAlterConfigsOperationSet, "16")
	start := time.Now()
	// Once the refused topic has had time to fill its share (or, without
	// shares, the whole bound), the other must still be stored: count the
	// first topic's documents twice, 5 s apart, within the outage.
	time.Sleep(4 * time.Second)
	before := s.indexCounts()
	time.Sleep(5 * time.Second)
	after := s.indexCounts()
	grew := 0
	for idx, n := range after {
		if strings.HasPrefix(idx, s.topic+"-") && !strings.HasPrefix(idx, other+"-") {
			grew += n - before[idx]
		}
	}
	if grew < rate {
		t.Errorf("only %d lines of %s stored in 5 s while %s was refused", grew, s.topic, other)
	}
	time.Sleep(max(0, 10*time.Second-time.Since(start)))
	set(sarama.IncrementalAlterConfigsOperationDelete, "")
	s.finish("one topic refused 10s under load", w, nil)
}
