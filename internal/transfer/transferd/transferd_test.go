package transferd

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

type env struct {
	t     *testing.T
	kafka testutil.Broker
	es    *fakees.Server
	esURL string // the real search node, when set (es is then nil)
	prod  *kgo.Client
}

func newEnv(t *testing.T, partitions int) *env {
	return newEnvOn(t, testutil.StartKafka(t, partitions), fakees.New(t), "")
}

func newEnvOn(t *testing.T, broker testutil.Broker, es *fakees.Server, esURL string) *env {
	e := &env{t: t, kafka: broker, es: es, esURL: esURL}
	if es != nil {
		e.esURL = es.URL()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.kafka.Addr(), ",")...), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("unused"),
		kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.prod = cl
	return e
}

func (e *env) config(extra string) *config.TransferConfig {
	e.t.Helper()
	ini := fmt.Sprintf(`[kafka]
address = %s
session_timeout = 6s
[es]
address = %s
workers = 4
bulk_actions = 500
flush_interval = 50ms
retry_backoff_max = 500ms
shutdown_timeout = 5s
[http]
addr = 127.0.0.1:0
[log]
level = warn
%s`, e.kafka.Addr(), e.esURL, extra)
	cfg, err := config.ParseTransfer("test.ini", []byte(ini))
	if err != nil {
		e.t.Fatal(err)
	}
	if !strings.Contains(extra, "data_dir") {
		cfg.DataDir = e.t.TempDir()
	}
	if !strings.Contains(extra, "verify_signatures") {
		// These tests produce unsigned records with no etcd to hold keys;
		// signing_test.go checks signatures.
		cfg.VerifySignatures = false
	}
	return cfg
}

// start runs a daemon in-process; stop waits for a clean shutdown.
func (e *env) start(cfg *config.TransferConfig) (*Daemon, func()) {
	e.t.Helper()
	d, err := New(cfg, Options{Version: "test"}, testutil.Logger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var stopped atomic.Bool
	stop := func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(60 * time.Second):
			e.t.Fatal("transfer did not stop")
		}
	}
	e.t.Cleanup(stop)
	return d, stop
}

// genID is the _id of record i of topic as produce writes it (host web-1,
// 10.0.0.1, event id gen-<topic>-<i>).
func genID(topic string, i int) string {
	return record.DocID([]byte("web-1"), []byte("10.0.0.1"), []byte(fmt.Sprintf("gen-%s-%d", topic, i)))
}

// genPrefix is what genID puts before the event id.
var genPrefix = record.DocID([]byte("web-1"), []byte("10.0.0.1"), nil)

// produce writes n agent-style records numbered from..from+n-1 to topic.
func (e *env) produce(topic string, from, n int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{
			Topic: topic,
			Value: []byte(fmt.Sprintf("line %d of %s", i, topic)),
			Headers: []kgo.RecordHeader{
				{Key: "host.name", Value: []byte("web-1")},
				{Key: "host.ip", Value: []byte("10.0.0.1")},
				{Key: "log.file.path", Value: []byte("/var/log/" + topic + ".log")},
				{Key: "log.offset", Value: []byte(fmt.Sprint(i * 100))},
				{Key: "event.id", Value: []byte(fmt.Sprintf("gen-%s-%d", topic, i))},
				{Key: "fields", Value: []byte(`{"service":"shop"}`)},
			},
			Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
		})
	}
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing: %v", err)
	}
}

func (e *env) waitDocs(n int, timeout time.Duration) {
	e.t.Helper()
	testutil.Eventually(e.t, timeout, func() bool { return e.es.Count() >= n },
		func() string { return fmt.Sprintf("%d documents, have %d (stats %+v)", n, e.es.Count(), e.es.Stats()) })
}

// checkDocs asserts the store holds exactly the records of topic numbered
// 0..n-1 except skip, each once, with the expected id and fields.
func (e *env) checkDocs(topic string, n int, skip map[int]bool) {
	e.t.Helper()
	docs := e.es.Docs()
	index := topic + "-2026.11.23"
	got := docs[index]
	want := n - len(skip)
	if len(got) != want {
		e.t.Fatalf("index %s holds %d documents, want %d (indices %v)", index, len(got), want, keys(docs))
	}
	for i := 0; i < n; i++ {
		id := genID(topic, i)
		raw, ok := got[id]
		if skip[i] {
			if ok {
				e.t.Fatalf("document %s should have been dead-lettered", id)
			}
			continue
		}
		if !ok {
			e.t.Fatalf("document %s missing", id)
		}
		var d struct {
			Message string `json:"message"`
			Host    struct{ Name, IP string }
			Log     struct {
				File   struct{ Path string }
				Offset int64
			}
			Kafka struct {
				Topic string
			}
			Fields struct {
				Service string `json:"service"`
			} `json:"fields"`
			TS string `json:"@timestamp"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			e.t.Fatalf("%s: %v", id, err)
		}
		if d.Message != fmt.Sprintf("line %d of %s", i, topic) || d.Host.Name != "web-1" || d.Host.IP != "10.0.0.1" ||
			d.Log.File.Path != "/var/log/"+topic+".log" || d.Log.Offset != int64(i*100) || d.Kafka.Topic != topic || d.Fields.Service != "shop" ||
			!strings.HasPrefix(d.TS, "2026-11-23T12:") {
			e.t.Fatalf("%s: unexpected document %s", id, raw)
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func report(t *testing.T, name string, produced int, s *fakees.Server, dlq int) {
	st := s.Stats()
	t.Logf("RESULT %-28s produced=%d stored=%d already-stored=%d overwrites=%d dlq=%d rejected429=%d rejected400=%d unavailable503=%d",
		name, produced, s.Count(), st.Conflicts, st.Updated, dlq, st.Rejected429, st.Rejected400, st.Rejected503Requests)
}

func TestHundredThousandOverEightPartitions(t *testing.T) {
	e := newEnv(t, 8)
	const n = 100_000
	e.produce("big", 0, n)
	e.start(e.config("[kafka]\ntopics = big\n"))
	e.waitDocs(n, 120*time.Second)
	e.checkDocs("big", n, nil)
	if st := e.es.Stats(); st.Updated != 0 {
		t.Fatalf("%d overwrites without any failure", st.Updated)
	}
	report(t, "100k over 8 partitions", n, e.es, 0)
}

// A claim sarama cannot start (the broker answers "not leader" to every
// offset lookup of partition 2, more times than sarama retries) ends the
// session: the error is counted, the consumer rejoins, and once the broker
// answers again every record of every partition is indexed once. (Older
// sarama left such a partition unconsumed for the rest of the session.)
func TestUnstartedClaimIsRetried(t *testing.T) {
	e := newEnv(t, 4)
	const n = 400
	e.produce("stall", 0, n)
	var refuse atomic.Bool
	refuse.Store(true)
	var refused atomic.Int64
	k := e.kafka.(*testutil.Kafka)
	k.Cluster().ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		req := r.(*kmsg.ListOffsetsRequest)
		if !refuse.Load() || len(req.Topics) != 1 || req.Topics[0].Topic != "stall" ||
			len(req.Topics[0].Partitions) != 1 || req.Topics[0].Partitions[0].Partition != 2 {
			return nil, nil, false
		}
		refused.Add(1)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = "stall"
		rp := kmsg.NewListOffsetsResponseTopicPartition()
		rp.Partition, rp.ErrorCode = 2, kerr.NotLeaderForPartition.Code
		rt.Partitions = append(rt.Partitions, rp)
		resp.Topics = append(resp.Topics, rt)
		return resp, nil, true
	})
	d, _ := e.start(e.config("[kafka]\ntopics = stall\n"))
	// Until sarama reports that it gave the claim up, not only retried.
	testutil.Eventually(t, 60*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_consumer_errors_total", nil) >= 1
	}, func() string { return "the claim of stall/2 given up, /status " + status(t, d) })
	if c := e.es.Count(); c > 3*n/4 {
		t.Fatalf("%d documents while partition 2 could not be consumed", c)
	}
	refuse.Store(false)
	e.waitDocs(n, 60*time.Second)
	e.checkDocs("stall", n, nil)
	if refused.Load() == 0 {
		t.Fatal("no offset lookup was refused: the fault did not bite")
	}
}

func TestItem429OnTenPercentAllArriveOnce(t *testing.T) {
	e := newEnv(t, 4)
	const n = 20_000
	var calls atomic.Int64
	e.es.SetItemFault(func(index, id string, _ []byte) int {
		if calls.Add(1)%10 == 0 { // every tenth item sent, retries included
			return 429
		}
		return 0
	})
	e.produce("t429", 0, n)
	e.start(e.config("[kafka]\ntopics = t429\n"))
	e.waitDocs(n, 120*time.Second)
	e.checkDocs("t429", n, nil)
	st := e.es.Stats()
	if st.Rejected429 < n/20 {
		t.Fatalf("only %d items were rejected with 429: the fault did not bite", st.Rejected429)
	}
	if st.Updated != 0 {
		t.Fatalf("%d documents indexed twice", st.Updated)
	}
	report(t, "per-item 429 on 10%", n, e.es, 0)
}

func TestPermanentRejectionGoesToDLQ(t *testing.T) {
	e := newEnv(t, 4)
	const n = 5_000
	bad := map[int]bool{}
	for i := 7; i < n; i += 997 {
		bad[i] = true
	}
	e.es.SetItemFault(func(index, id string, _ []byte) int {
		var i int
		if _, err := fmt.Sscanf(strings.TrimPrefix(id, genPrefix), "gen-tdlq-%d", &i); err == nil && bad[i] {
			return 400
		}
		return 0
	})
	dlq := testutil.Consume(t, e.kafka.Addr(), "tdlq.dlq")
	e.produce("tdlq", 0, n)
	e.start(e.config("[kafka]\ntopics = tdlq\n"))
	e.waitDocs(n-len(bad), 60*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool { return dlq.Len() >= len(bad) },
		func() string { return fmt.Sprintf("%d dead letters, have %d", len(bad), dlq.Len()) })
	e.checkDocs("tdlq", n, bad)
	for _, r := range dlq.Records() {
		var i int
		if _, err := fmt.Sscanf(string(r.Value), "line %d of tdlq", &i); err != nil || !bad[i] {
			t.Fatalf("unexpected dead letter %q", r.Value)
		}
		if !strings.Contains(r.Headers["dlq.reason"], "400 mapper_parsing_exception") || r.Headers["event.id"] != fmt.Sprintf("gen-tdlq-%d", i) ||
			r.Headers["dlq.index"] != "tdlq-2026.11.23" {
			t.Fatalf("dead letter headers %v", r.Headers)
		}
	}
	if dlq.Len() != len(bad) {
		t.Fatalf("%d dead letters, want %d", dlq.Len(), len(bad))
	}
	report(t, "400 on a few items", n, e.es, dlq.Len())
}

func TestUnavailableForTenSeconds(t *testing.T) {
	e := newEnv(t, 4)
	const n = 20_000
	d, _ := e.start(e.config("[kafka]\ntopics = t503\n"))
	e.produce("t503", 0, n/4)
	e.waitDocs(n/4, 60*time.Second)
	e.es.SetUnavailable(true)
	start := time.Now()
	e.produce("t503", n/4, n/2)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_bulk_requests_total", map[string]string{"outcome": "error"}) > 0
	}, testutil.Msg("bulk requests failing"))
	stored := e.es.Count()
	time.Sleep(10*time.Second - time.Since(start)) // the outage lasts 10 s: the scenario, not synchronisation
	if e.es.Count() != stored {
		t.Fatal("documents stored while Elasticsearch was unavailable")
	}
	e.es.SetUnavailable(false)
	e.produce("t503", 3*n/4, n/4)
	e.waitDocs(n, 120*time.Second)
	e.checkDocs("t503", n, nil)
	report(t, "503 for 10s", n, e.es, 0)
}

func TestTemplatesManaged(t *testing.T) {
	e := newEnv(t, 1)
	e.produce("tpl", 0, 10)
	e.start(e.config("[kafka]\ntopics = tpl\n"))
	e.waitDocs(10, 30*time.Second)
	tmpl, ok := e.es.Templates()["logpipe-tpl"]
	if !ok {
		t.Fatalf("no template installed: %v", keys(e.es.Templates()))
	}
	var body struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Mappings struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(tmpl, &body); err != nil || len(body.IndexPatterns) != 1 || body.IndexPatterns[0] != "tpl-*" {
		t.Fatalf("template %s (%v)", tmpl, err)
	}
	for _, f := range []string{"@timestamp", "message", "host", "log", "kafka"} {
		if _, ok := body.Template.Mappings.Properties[f]; !ok {
			t.Fatalf("template maps no %s: %s", f, tmpl)
		}
	}
}

func TestNoIndexAPIsWhenTemplatesUnmanaged(t *testing.T) {
	e := newEnv(t, 1)
	e.produce("vl", 0, 10)
	e.start(e.config("[kafka]\ntopics = vl\n[es]\nmanage_templates = false\nheaders = VL-Msg-Field: message; VL-Time-Field: @timestamp\n"))
	e.waitDocs(10, 30*time.Second)
	for _, r := range e.es.Requests() {
		if !strings.HasSuffix(strings.SplitN(r, "?", 2)[0], "/_bulk") {
			t.Fatalf("manage_templates=false must only call the bulk API, saw %q", r)
		}
	}
}

func TestTwoInstancesSplitAndRebalance(t *testing.T) {
	e := newEnv(t, 8)
	const n = 40_000
	cfg := e.config("[kafka]\ntopics = shared\n")
	a, stopA := e.start(cfg)
	b, _ := e.start(cfg)
	e.produce("shared", 0, n/2)
	testutil.Eventually(t, 60*time.Second, func() bool {
		ca, cb := a.Consumer().Claims(), b.Consumer().Claims()
		return len(ca) > 0 && len(cb) > 0 && len(ca)+len(cb) == 8
	}, func() string {
		return fmt.Sprintf("8 partitions split between two instances: %v / %v", a.Consumer().Claims(), b.Consumer().Claims())
	})
	e.waitDocs(n/2, 60*time.Second)
	t.Logf("claims before rebalance: %v / %v", a.Consumer().Claims(), b.Consumer().Claims())
	// One instance leaves while records keep coming: the other takes over
	// its partitions from the committed offsets.
	go e.produce("shared", n/2, n/2)
	stopA()
	testutil.Eventually(t, 60*time.Second, func() bool { return len(b.Consumer().Claims()) == 8 },
		func() string { return fmt.Sprintf("survivor owns all 8 partitions: %v", b.Consumer().Claims()) })
	e.waitDocs(n, 120*time.Second)
	e.checkDocs("shared", n, nil)
	report(t, "two instances, one leaves", n, e.es, 0)
}

func TestTopicAddedInEtcdIsConsumed(t *testing.T) {
	e := newEnv(t, 2)
	etcd := testutil.StartEtcd(t)
	etcd.Put("/logagent/10.0.0.1/collect_config", `[{"path":"/var/log/a.log","topic":"disc_a"}]`)
	etcd.Put("/logagent/agents/10.0.0.1", `{"not":"a collect config"}`)
	d, _ := e.start(e.config(fmt.Sprintf("[etcd]\ndiscover_topics = true\naddress = %s\ntimeout = 2s\n", etcd.Endpoint())))
	e.produce("disc_a", 0, 100)
	e.waitDocs(100, 60*time.Second)

	// A second agent names a new topic: consumed without a restart.
	etcd.Put("/logagent/10.0.0.2/collect_config", `[{"path":"/var/log/b.log","topic":"disc_b"}]`)
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(strings.Join(d.Topics().List(), ","), "disc_b") },
		func() string { return fmt.Sprintf("disc_b discovered: %v", d.Topics().List()) })
	e.produce("disc_b", 0, 100)
	e.waitDocs(200, 60*time.Second)
	e.checkDocs("disc_b", 100, nil)

	// An invalid config never removes topics. (Discovery reads only the
	// topics, so the document must be broken there: its other errors are
	// the agent's to report.)
	etcd.Put("/logagent/10.0.0.1/collect_config", `[{"path":"/var/log/a.log","topic":"bad topic"}]`)
	testutil.Eventually(t, 20*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_discovery_invalid_configs_total", nil) == 1
	}, testutil.Msg("invalid config counted"))
	if got := strings.Join(d.Topics().List(), ","); got != "disc_a,disc_b" {
		t.Fatalf("topics %s", got)
	}
	e.produce("disc_a", 100, 100)
	e.waitDocs(300, 60*time.Second)
	e.checkDocs("disc_a", 200, nil)
}

func TestConnectionDropsAndLostResponses(t *testing.T) {
	// Connections dropped before ES read the request, then responses lost
	// after ES stored the documents: every document arrives, the second
	// kind shows up as creates of an _id already stored (409), never as a
	// duplicate or an overwrite.
	e := newEnv(t, 4)
	const n = 10_000
	e.start(e.config("[kafka]\ntopics = tdrop\n"))
	e.es.SetDropConnections(true)
	e.produce("tdrop", 0, n/2)
	testutil.Eventually(t, 20*time.Second, func() bool { return e.es.Stats().Dropped >= 3 }, testutil.Msg("connections dropped"))
	e.es.SetDropConnections(false)
	e.waitDocs(n/2, 60*time.Second)
	e.es.SetDropResponses(true)
	e.produce("tdrop", n/2, n/2)
	testutil.Eventually(t, 20*time.Second, func() bool { return e.es.Stats().Dropped >= 6 }, testutil.Msg("responses dropped"))
	e.es.SetDropResponses(false)
	e.waitDocs(n, 60*time.Second)
	e.checkDocs("tdrop", n, nil)
	if st := e.es.Stats(); st.Conflicts == 0 || st.Updated != 0 {
		t.Fatalf("lost responses should have caused re-sends answered 409 and no overwrite: %d conflicts, %d overwrites", st.Conflicts, st.Updated)
	}
	report(t, "dropped connections/responses", n, e.es, 0)
}

// TestDashboardMetricsExist checks that every logtransfer_* metric the
// Grafana dashboard uses (deploy/grafana/metrics.txt) is exported.
func TestDashboardMetricsExist(t *testing.T) {
	e := newEnv(t, 2)
	etcd := testutil.StartEtcd(t)
	etcd.Put("/logagent/10.0.0.1/collect_config", `[{"path":"/var/log/a.log","topic":"mtr"}]`)
	d, _ := e.start(e.config(fmt.Sprintf("[etcd]\ndiscover_topics = true\naddress = %s\n", etcd.Endpoint())))
	e.produce("mtr", 0, 20)
	e.waitDocs(20, 30*time.Second)
	testutil.CheckMetricsListed(t, d.Prometheus(), "../../../deploy/grafana/metrics.txt", "logtransfer_")
}

// A bulk request refused whole as too large (413) is split until the
// halves fit; no document is dead-lettered for it.
func TestRequestTooLargeIsSplitNotDeadLettered(t *testing.T) {
	e := newEnv(t, 2)
	e.es.SetMaxContentLength(24 << 10)
	const n = 3000
	e.produce("t413", 0, n)
	d, _ := e.start(e.config("[kafka]\ntopics = t413\n"))
	e.waitDocs(n, 60*time.Second)
	e.checkDocs("t413", n, nil)
	if st := e.es.Stats(); st.RejectedRequests == 0 {
		t.Fatalf("no request was refused as too large: %+v", st)
	}
	// checkDocs found every document stored; none was dead-lettered.
	if v := testutil.MetricValue(d.Prometheus(), "logtransfer_docs_dead_lettered_total", nil); v != 0 {
		t.Fatalf("%v documents dead-lettered for a request that was only too large", v)
	}
	report(t, "413 split", n, e.es, 0)
}

func TestTemplateFailureHoldsOnlyItsTopic(t *testing.T) {
	// Elasticsearch refuses one topic's index template: that topic waits
	// (held, visible), the other is consumed; once the template goes in,
	// the held topic's records are stored too.
	e := newEnv(t, 2)
	var refuse atomic.Bool
	refuse.Store(true)
	e.es.SetRequestFault(func(method, path string) int {
		if method == "PUT" && strings.Contains(path, "_index_template") && strings.Contains(path, "tplbad") && refuse.Load() {
			return 400
		}
		return 0
	})
	e.produce("tplgood", 0, 200)
	e.produce("tplbad", 0, 200)
	d, _ := e.start(e.config("[kafka]\ntopics = tplgood, tplbad\n"))
	e.waitDocs(200, 60*time.Second)
	testutil.Eventually(t, 20*time.Second, func() bool {
		_, held := d.Consumer().Held()["tplbad"]
		return held && testutil.MetricValue(d.Prometheus(), "logtransfer_topic_held", map[string]string{"topic": "tplbad"}) == 1
	}, func() string { return fmt.Sprintf("tplbad held: %v", d.Consumer().Held()) })
	e.checkDocs("tplgood", 200, nil)
	if n := len(e.es.Docs()["tplbad-2026.11.23"]); n != 0 {
		t.Fatalf("%d documents of the held topic stored before its template", n)
	}
	refuse.Store(false)
	e.waitDocs(400, 60*time.Second)
	e.checkDocs("tplbad", 200, nil)
	if h := d.Consumer().Held(); len(h) != 0 {
		t.Fatalf("still held: %v", h)
	}
}

func TestUnnamedTopicIsDrainedThenReleased(t *testing.T) {
	// A topic no collect config names any more is still consumed to its
	// end (its records were written while it was named), then released:
	// the transfer stops consuming it without a restart.
	e := newEnv(t, 2)
	etcd := testutil.StartEtcd(t)
	key := "/logagent/10.0.0.1/collect_config"
	etcd.Put(key, `[{"path":"/var/log/a.log","topic":"rel_a"},{"path":"/var/log/b.log","topic":"rel_b"}]`)
	d, _ := e.start(e.config(fmt.Sprintf("[etcd]\ndiscover_topics = true\naddress = %s\ntimeout = 2s\n", etcd.Endpoint())))
	e.produce("rel_b", 0, 10)
	e.waitDocs(10, 60*time.Second)
	const n = 20_000
	e.produce("rel_a", 0, n)
	etcd.Put(key, `[{"path":"/var/log/b.log","topic":"rel_b"}]`) // while rel_a is being consumed
	testutil.Eventually(t, 60*time.Second, func() bool { return !strings.Contains(strings.Join(d.Topics().List(), ","), "rel_a") },
		func() string {
			return fmt.Sprintf("rel_a released: topics %v, %d documents", d.Topics().List(), e.es.Count())
		})
	e.checkDocs("rel_a", n, nil) // drained before the release
	testutil.Eventually(t, 30*time.Second, func() bool { return !strings.Contains(strings.Join(d.Consumer().Claims(), ","), "rel_a") },
		func() string { return fmt.Sprintf("rel_a partitions given up: claims %v", d.Consumer().Claims()) })
	e.produce("rel_b", 10, 10) // the others go on
	e.waitDocs(n+20, 60*time.Second)
}

// A record whose _id is already stored (a re-delivery, or a producer
// reusing another record's event id) is created, not indexed: Elasticsearch
// answers 409, the record counts as done, and the stored document stays as
// it was.
func TestStoredDocumentIsNeverReplaced(t *testing.T) {
	e := newEnv(t, 2)
	const n = 200
	var body strings.Builder
	for i := 0; i < n; i += 2 {
		fmt.Fprintf(&body, `{"index":{"_index":"tkeep-2026.11.23","_id":%q}}`+"\n"+`{"message":"first of %d"}`+"\n", genID("tkeep", i), i)
	}
	res, err := http.Post(e.es.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(body.String()))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if e.es.Count() != n/2 {
		t.Fatalf("%d documents before the transfer started, want %d", e.es.Count(), n/2)
	}
	d, _ := e.start(e.config("[kafka]\ntopics = tkeep\n"))
	e.produce("tkeep", 0, n)
	e.waitDocs(n, 30*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "exists"}) == n/2
	}, func() string {
		return fmt.Sprintf("exists=%v, want %d", testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "exists"}), n/2)
	})
	for i := 0; i < n; i++ {
		raw, _ := e.es.Doc("tkeep-2026.11.23", genID("tkeep", i))
		want := fmt.Sprintf("line %d of tkeep", i)
		if i%2 == 0 {
			want = fmt.Sprintf("first of %d", i)
		}
		if !strings.Contains(string(raw), `"message":"`+want+`"`) {
			t.Fatalf("document %d is %s, want message %q", i, raw, want)
		}
	}
	if st := e.es.Stats(); st.Updated != 0 || st.Conflicts != n/2 {
		t.Fatalf("stats %+v: want %d conflicts and no overwrite", st, n/2)
	}
	report(t, "ids already stored", n, e.es, 0)
}

// midnightCopies produces two copies of one line as the agent sends them
// when it re-sends after a crash across midnight: read times on two days,
// one index-time stamp (23:59:59.5 on 2026-11-23). It starts the transfer
// and waits until the second copy was answered 409.
func midnightCopies(t *testing.T, e *env, topic string) {
	t.Helper()
	stamp := time.Date(2026, 11, 23, 23, 59, 59, 500e6, time.UTC)
	rec := func(read time.Time) *kgo.Record {
		return &kgo.Record{Topic: topic, Value: []byte("line 0 of " + topic), Timestamp: read, Headers: []kgo.RecordHeader{
			{Key: "host.name", Value: []byte("web-1")},
			{Key: "host.ip", Value: []byte("10.0.0.1")},
			{Key: "event.id", Value: []byte("gen-" + topic + "-0")},
			{Key: "index.time", Value: []byte(fmt.Sprint(stamp.UnixMilli()))},
		}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, rec(stamp.Add(200*time.Millisecond))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := e.prod.ProduceSync(ctx, rec(stamp.Add(40*time.Second))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.start(e.config("[kafka]\ntopics = " + topic + "\n"))
	exists := func() float64 {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "exists"})
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return exists() == 1 },
		func() string { return fmt.Sprintf("the second copy answered 409 (exists=%v)", exists()) })
}

// A line the agent re-sent after a crash across midnight: the two copies
// have read times on two days but the same index-time stamp, so they meet
// on one _id in one daily index, and the second is answered 409.
func TestResentAcrossMidnightLandsInOneIndex(t *testing.T) {
	e := newEnv(t, 1)
	midnightCopies(t, e, "tmid")
	docs := e.es.Docs()
	if len(docs) != 1 || len(docs["tmid-2026.11.23"]) != 1 {
		t.Fatalf("indices %v, want the one document in tmid-2026.11.23", keys(docs))
	}
	raw := docs["tmid-2026.11.23"][genID("tmid", 0)]
	if !strings.Contains(string(raw), `"@timestamp":"2026-11-23T23:59:59.7`) {
		t.Fatalf("stored %s: want the first copy's read time as @timestamp", raw)
	}
}

// produceLines writes agent-style records of topic, one per line, naming
// pipe in the pipeline header; record i is read at 2026-11-23 12:00 + i ms.
func (e *env) produceLines(topic, pipe string, lines []string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for i, l := range lines {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(l),
			Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond),
			Headers: []kgo.RecordHeader{
				{Key: "host.name", Value: []byte("web-1")},
				{Key: "host.ip", Value: []byte("10.0.0.1")},
				{Key: "event.id", Value: []byte(fmt.Sprintf("gen-%s-%d", topic, i))},
				{Key: "pipeline", Value: []byte(pipe)},
			}})
	}
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// accessLines are nginx lines written in November 2019 (status 200 and
// 404 alternating), then one that is not an access log line.
func accessLines(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		status := 200 + 204*(i%2)
		out = append(out, fmt.Sprintf(`203.0.113.%d - - [23/Nov/2019:06:25:%02d +0000] "GET /item/%d HTTP/1.1" %d %d "-" "curl/8.5"`, i%250, i%60, i, status, 100+i))
	}
	return append(out, "this is not an access log line")
}

// The nginx pipeline: each line's own time becomes @timestamp (the index
// stays the record's own day, so a re-delivery under another pipeline
// version meets its _id), the fields are typed (status a number), the read
// time is kept as event.created; a line that does not parse is indexed raw
// with error.message and the read time, never dropped or dead-lettered.
func TestNginxPipelineFieldsAndOwnDay(t *testing.T) {
	e := newEnv(t, 2)
	const n = 100
	e.produceLines("tpipe", "nginx", accessLines(n))
	d, _ := e.start(e.config("[kafka]\ntopics = tpipe\n"))
	e.waitDocs(n+1, 30*time.Second)
	docs := e.es.Docs()
	if len(docs) != 1 || len(docs["tpipe-2026.11.23"]) != n+1 {
		t.Fatalf("indices %v: want all %d documents in tpipe-2026.11.23, the records' day", keys(docs), n+1)
	}
	// Nested objects, as every document (ECS): http.response.status_code
	// is {"http":{"response":{"status_code":…}}}.
	var d0 struct {
		TS      string `json:"@timestamp"`
		Message string `json:"message"`
		HTTP    struct {
			Response struct {
				Status float64 `json:"status_code"`
			}
		}
		Source struct{ IP string }
		URL    struct{ Original string }
		Event  struct{ Created, Dataset string }
	}
	json.Unmarshal(docs["tpipe-2026.11.23"][genID("tpipe", 1)], &d0)
	if d0.TS != "2019-11-23T06:25:01.000000000Z" || d0.HTTP.Response.Status != 404 || d0.Source.IP != "203.0.113.1" || d0.URL.Original != "/item/1" || d0.Event.Dataset != "nginx.access" ||
		!strings.HasPrefix(d0.Event.Created, "2026-11-23T12:00:00.001") || !strings.HasPrefix(d0.Message, "203.0.113.1 - - [23/Nov/2019") {
		t.Fatalf("parsed document %+v", d0)
	}
	raw := string(docs["tpipe-2026.11.23"][genID("tpipe", n)])
	if !strings.Contains(raw, `"error":{"message":"access log: no [time]"}`) || !strings.Contains(raw, `"message":"this is not an access log line"`) {
		t.Fatalf("unparsed line stored as %s", raw)
	}
	for res, want := range map[string]float64{"parsed": n, "failed": 1} {
		if v := testutil.MetricValue(d.Prometheus(), "logtransfer_pipeline_events_total", map[string]string{"pipeline": "nginx", "result": res}); v != want {
			t.Errorf("pipeline %s: %v, want %v", res, v, want)
		}
	}
}

// A record naming a pipeline that does not exist is indexed raw with an
// error saying so.
func TestUnknownPipelineIndexesRaw(t *testing.T) {
	e := newEnv(t, 1)
	e.produceLines("tunk", "grok-me", []string{"plain line"})
	e.start(e.config("[kafka]\ntopics = tunk\n"))
	e.waitDocs(1, 30*time.Second)
	raw := string(e.es.Docs()["tunk-2026.11.23"][genID("tunk", 0)])
	if !strings.Contains(raw, `"error":{"message":"unknown pipeline \"grok-me\""}`) {
		t.Fatalf("stored %s", raw)
	}
}

// A custom pipeline put in etcd applies to the next records without a
// restart; an invalid version put after it is refused and the last good
// one stays in use (shown in /status).
func TestCustomPipelineFromEtcd(t *testing.T) {
	e := newEnv(t, 1)
	etcd := testutil.StartEtcd(t)
	etcd.Put("/logtransfer/pipelines/app", `[{"dissect": {"pattern": "%{level} %{msg}"}}, {"set": {"field": "v", "value": 1}}]`)
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = tcust\n[etcd]\naddress = %s\npipelines = true\n", etcd.Endpoint())))
	version := func() string {
		f, ok := d.pipes.Lookup([]byte("app"))
		if !ok {
			return ""
		}
		var r pipeline.Result
		f([]byte("INFO x"), time.Time{}, &r)
		return string(r.Fragment())
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(version(), `"v":1`) }, testutil.Msg("version 1 loaded"))
	e.produceLines("tcust", "app", []string{"INFO started", "WARN slow"})
	e.waitDocs(2, 30*time.Second)
	etcd.Put("/logtransfer/pipelines/app", `[{"dissect": {"pattern": "%{level} %{msg}"}}, {"set": {"field": "v", "value": 2}}]`)
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(version(), `"v":2`) }, testutil.Msg("version 2 loaded"))
	etcd.Put("/logtransfer/pipelines/app", `[{"dissect": {"pattern": "%{level"}}]`)
	testutil.Eventually(t, 20*time.Second, func() bool { return d.pipes.Status().Errors["app"] != "" }, testutil.Msg("the invalid version refused"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: "tcust", Value: []byte("ERROR disk full"), Timestamp: time.Date(2026, 11, 23, 12, 0, 1, 0, time.UTC),
		Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte("gen-tcust-2")}, {Key: "host.name", Value: []byte("web-1")},
			{Key: "host.ip", Value: []byte("10.0.0.1")}, {Key: "pipeline", Value: []byte("app")}}}
	if err := e.prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.waitDocs(3, 30*time.Second)
	docs := e.es.Docs()["tcust-2026.11.23"]
	for i, want := range []struct {
		Level, Msg string
		V          float64
	}{{"INFO", "started", 1}, {"WARN", "slow", 1}, {"ERROR", "disk full", 2}} {
		var got struct {
			Level, Msg string
			V          float64
		}
		raw := docs[genID("tcust", i)]
		if err := json.Unmarshal(raw, &got); err != nil || got != want {
			t.Errorf("document %d is %s, want level %s, msg %s, v %v", i, raw, want.Level, want.Msg, want.V)
		}
	}
	if v := testutil.MetricValue(d.Prometheus(), "logtransfer_pipeline_config_errors_total", nil); v != 1 {
		t.Errorf("logtransfer_pipeline_config_errors_total %v, want 1", v)
	}
}
