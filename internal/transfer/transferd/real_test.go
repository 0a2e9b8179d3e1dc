package transferd

// The transfer against the real servers: Apache Kafka (one node shared by
// the package run) and Elasticsearch 7.17 (one node shared by the package
// run; OpenSearch 2.19 too, with a Kafka node of its own, for the tests
// run on both engines; tests keep apart by topic and index names; the 429 test has its own
// node with a tiny write queue). What is checked is read back through the
// search node's own REST API.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/dev/realstack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func newRealEnv(t *testing.T) (*env, testutil.ESClient) {
	return newRealEnvOn(t, realstack.Elasticsearch)
}

// newRealEnvOn is newRealEnv on engine's shared node, with a Kafka node of
// the engine's own (topics, groups and offsets under the same names).
func newRealEnvOn(t *testing.T, engine string) (*env, testutil.ESClient) {
	es := testutil.SharedRealSearch(t, engine)
	return newEnvOn(t, realKafka(t, engine), nil, es.URL()), testutil.ESClient{URL: es.URL()}
}

func realKafka(t *testing.T, engine string) *testutil.RealKafka {
	if engine == realstack.Elasticsearch {
		return testutil.SharedRealKafka(t)
	}
	return testutil.SharedRealKafkaFor(t, "kafka-"+engine)
}

// bothEngines runs f against Elasticsearch 7.17 and OpenSearch 2.19, one
// subtest each: for what the engines could answer differently (templates
// and their priorities, mappings, error shapes, 409 and 429, deletes).
func bothEngines(t *testing.T, f func(t *testing.T, engine string)) {
	for _, engine := range []string{realstack.Elasticsearch, realstack.OpenSearch} {
		t.Run(engine, func(t *testing.T) { f(t, engine) })
	}
}

func waitCount(t *testing.T, es testutil.ESClient, index, query string, n int, timeout time.Duration) {
	t.Helper()
	var have int
	testutil.Eventually(t, timeout, func() bool { have = es.Count(t, index, query); return have >= n },
		func() string { return fmt.Sprintf("%d documents in %s matching %s, have %d", n, index, query, have) })
}

// Topics whose index patterns overlap ("nginx-*" matches the indices of
// "nginx-error") both get their template installed, and both are consumed,
// each index created from its own template.
func TestRealOverlappingTemplatesBothConsumed(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		e, es := newRealEnvOn(t, engine)
		e.produce("nginx", 0, 300)
		e.produce("nginx-error", 0, 200)
		e.start(e.config("[kafka]\ntopics = nginx, nginx-error\n"))
		waitCount(t, es, "nginx-2026.11.23", "", 300, 60*time.Second)
		waitCount(t, es, "nginx-error-2026.11.23", "", 200, 60*time.Second)
		for _, name := range []string{"logpipe-nginx", "logpipe-nginx-error"} {
			if st, b := es.Do(t, "GET", "/_index_template/"+name, ""); st != 200 {
				t.Fatalf("template %s: %d %s", name, st, b)
			}
		}
		// The more specific template wins for nginx-error's index.
		var sim struct {
			Template struct {
				Mappings json.RawMessage
			}
			Overlapping []struct{ Name string }
		}
		es.JSON(t, 200, "POST", "/_index_template/_simulate_index/nginx-error-2026.11.24", "", &sim)
		if len(sim.Overlapping) != 1 || sim.Overlapping[0].Name != "logpipe-nginx" {
			t.Fatalf("nginx-error's index should come from logpipe-nginx-error, overlapping logpipe-nginx: %+v", sim)
		}
		if n := es.Count(t, "nginx-2026.11.23", `{"match_phrase":{"message":"of nginx-error"}}`); n != 0 {
			t.Fatalf("%d nginx-error records in nginx's index", n)
		}
	})
}

// A field first a value, then an object (static fields "app" on one host,
// "app.name" on another): Elasticsearch refuses the second document; it goes
// to the dead-letter topic with the engine's own reason, and the documents
// before and after it are stored.
func TestRealMappingConflictGoesToDLQ(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		e, es := newRealEnvOn(t, engine)
		topic := "conflict"
		dlq := testutil.Consume(t, e.kafka.Addr(), topic+".dlq")
		rec := func(i int, fields string) *kgo.Record {
			return &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("line %d", i)), Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
				Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte(fmt.Sprintf("conflict-%d", i))}, {Key: "fields", Value: []byte(fields)}}}
		}
		produce := func(r *kgo.Record) {
			if err := e.prod.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		cfg := e.config("[kafka]\ntopics = " + topic + "\n")
		e.start(cfg)
		produce(rec(0, `{"app":"shop"}`))
		waitCount(t, es, topic+"-2026.11.23", "", 1, 60*time.Second)
		produce(rec(1, `{"app.name":"shop"}`))
		produce(rec(2, `{"app":"cart"}`))
		waitCount(t, es, topic+"-2026.11.23", "", 2, 60*time.Second)
		testutil.Eventually(t, 30*time.Second, func() bool { return dlq.Len() >= 1 }, testutil.Msg("a dead letter"))
		r := dlq.Records()[0]
		if string(r.Value) != "line 1" || r.Headers["event.id"] != "conflict-1" {
			t.Fatalf("dead letter %q %v", r.Value, r.Headers)
		}
		reason := r.Headers["dlq.reason"]
		if !strings.Contains(reason, "mapper_parsing_exception") || !strings.Contains(reason, "failed to parse field [fields.app] of type [keyword]") {
			t.Fatalf("dead letter reason is not the engine's: %q", reason)
		}
		if n := es.Count(t, topic+"-*", `{"term":{"fields.app":"cart"}}`); n != 1 {
			t.Fatalf("the record after the refused one: %d documents", n)
		}
		t.Logf("RESULT %-28s dead letter reason %q", engine+" mapping conflict", reason)
	})
}

// The same records delivered twice (as after a crash before the commit)
// leave one document each, never rewritten: the second copies are creates
// answered 409 and counted as already stored.
func TestRealRedeliveryNoSecondDocument(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		e, es := newRealEnvOn(t, engine)
		const n = 1000
		e.produce("redeliver", 0, n)
		d, stop := e.start(e.config("[kafka]\ntopics = redeliver\n"))
		waitCount(t, es, "redeliver-*", "", n, 60*time.Second)
		e.produce("redeliver", 0, n) // the same ids again
		exists := func() float64 {
			return testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "exists"})
		}
		testutil.Eventually(t, 60*time.Second, func() bool {
			return exists() == n && consumedAll(t, e, "redeliver", 2*n)
		}, func() string { return fmt.Sprintf("re-delivered records consumed (exists=%v)", exists()) })
		stop()
		if c := es.Count(t, "redeliver-*", ""); c != n {
			t.Fatalf("%d documents after re-delivering %d records", c, n)
		}
		es.Scan(t, "redeliver-*", `[{"_id":"asc"}]`, false, func(h testutil.Hit) {
			if h.Version != 1 {
				t.Fatalf("document %s at version %d: a re-delivery rewrote it", h.ID, h.Version)
			}
		})
		e.checkRealDocs(es, "redeliver", n)
		var st struct {
			All struct {
				Total struct {
					Indexing struct {
						IndexTotal  int64 `json:"index_total"`
						IndexFailed int64 `json:"index_failed"`
					} `json:"indexing"`
				} `json:"total"`
			} `json:"_all"`
		}
		es.JSON(t, 200, "GET", "/redeliver-*/_stats/indexing", "", &st)
		t.Logf("RESULT %-28s stored=%d already-stored=%v index_total=%d index_failed=%d", engine+" re-delivery", n, exists(),
			st.All.Total.Indexing.IndexTotal, st.All.Total.Indexing.IndexFailed)
	})
}

// consumedAll reports whether the group committed offsets covering n
// records of topic.
func consumedAll(t *testing.T, e *env, topic string, n int) bool {
	adm := kgoAdmin(t, e)
	defer adm.Close()
	return committed(t, adm, "logtransfer", topic) >= int64(n)
}

// A real 429: a write queue of one and eight bulk workers. Every record
// arrives once.
func TestRealTooManyRequestsRetried(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		node := testutil.StartRealSearch(t, engine, map[string]string{"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"})
		es := testutil.ESClient{URL: node.URL()}
		e := newEnvOn(t, realKafka(t, engine), nil, node.URL())
		const n = 20_000
		e.produce("t429real", 0, n)
		cfg := e.config("[kafka]\ntopics = t429real\n")
		cfg.ES.Workers, cfg.ES.BulkActions = 8, 100
		e.start(cfg)
		waitCount(t, es, "t429real-*", "", n, 180*time.Second)
		var stats struct {
			Nodes map[string]struct {
				ThreadPool map[string]struct{ Rejected int64 } `json:"thread_pool"`
			}
		}
		es.JSON(t, 200, "GET", "/_nodes/stats/thread_pool", "", &stats)
		var rejected int64
		for _, nd := range stats.Nodes {
			rejected += nd.ThreadPool["write"].Rejected
		}
		if rejected == 0 {
			t.Fatal("the write pool rejected nothing: no 429 was produced")
		}
		if c := es.Count(t, "t429real-*", ""); c != n {
			t.Fatalf("%d documents for %d records", c, n)
		}
		e.checkRealDocs(es, "t429real", n)
		t.Logf("RESULT %-28s produced=%d stored=%d write_rejections=%d", engine+" 429 (queue 1, 8 workers)", n, n, rejected)
	})
}

// Documents are found by full-text search on message and filtered by
// host.name, log.file.path and an @timestamp range, and the mapping has
// the promised types.
func TestRealSearchAndMapping(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		e, es := newRealEnvOn(t, engine)
		const n = 500
		e.produce("searchable", 0, n)
		d, _ := e.start(e.config("[kafka]\ntopics = searchable\n"))
		// The transfer tells the engines apart by what they say at GET /
		// (OpenSearch names itself in version.distribution), and shows it.
		want := "Elasticsearch " + realstack.ESVersion
		if engine == realstack.OpenSearch {
			want = "OpenSearch " + realstack.OpenSearchVersion
		}
		var got string
		testutil.Eventually(t, 30*time.Second, func() bool {
			var st struct {
				Elasticsearch struct {
					Engine *struct {
						Product, Version string
						Tested           bool
					}
				}
			}
			if getJSON("http://"+d.HTTPAddr()+"/status", &st) != nil || st.Elasticsearch.Engine == nil {
				return false
			}
			got = st.Elasticsearch.Engine.Product + " " + st.Elasticsearch.Engine.Version
			return got == want && st.Elasticsearch.Engine.Tested
		}, func() string { return fmt.Sprintf("/status says the engine is %s (tested), have %q", want, got) })
		idx := "searchable-2026.11.23"
		waitCount(t, es, idx, "", n, 60*time.Second)
		for q, want := range map[string]int{
			`{"match":{"message":"line 42"}}`:                                                             n, // "line" is in every message; 42 scores highest
			`{"match_phrase":{"message":"line 42 of"}}`:                                                   1,
			`{"term":{"host.name":"web-1"}}`:                                                              n,
			`{"term":{"host.name":"web-2"}}`:                                                              0,
			`{"term":{"host.ip":"10.0.0.0/8"}}`:                                                           n, // an ip: CIDR
			`{"range":{"host.ip":{"gte":"10.0.0.2"}}}`:                                                    0,
			`{"term":{"log.file.path":"/var/log/searchable.log"}}`:                                        n,
			`{"range":{"@timestamp":{"gte":"2026-11-23T12:00:00.100Z","lt":"2026-11-23T12:00:00.200Z"}}}`: 100,
			`{"range":{"log.offset":{"gte":1000,"lt":2000}}}`:                                             10,
		} {
			if got := es.Count(t, idx, q); got != want {
				t.Errorf("%s: %d documents, want %d", q, got, want)
			}
		}
		hits := es.Search(t, idx, `{"match_phrase":{"message":"line 42 of"}}`, 1)
		if len(hits) != 1 || hits[0].ID != genID("searchable", 42) {
			t.Fatalf("search hit %+v", hits)
		}
		var mapping map[string]struct {
			Mappings struct {
				Properties map[string]json.RawMessage
			}
		}
		es.JSON(t, 200, "GET", "/"+idx+"/_mapping", "", &mapping)
		props := mapping[idx].Mappings.Properties
		for path, want := range map[string]string{"@timestamp": "date", "message": "text", "host.name": "keyword",
			"host.ip": "ip", "log.file.path": "keyword", "log.offset": "long", "kafka.partition": "long", "fields.service": "keyword",
			"ecs.version": "keyword", "event.dataset": "keyword", "event.ingested": "date"} {
			if got := fieldType(props, path); got != want {
				t.Errorf("mapping of %s: %q, want %q", path, got, want)
			}
		}
	})
}

func fieldType(props map[string]json.RawMessage, path string) string {
	head, rest, nested := strings.Cut(path, ".")
	var f struct {
		Type       string
		Properties map[string]json.RawMessage
	}
	if json.Unmarshal(props[head], &f) != nil {
		return ""
	}
	if nested {
		return fieldType(f.Properties, rest)
	}
	return f.Type
}

// checkRealDocs asserts documents 0..n-1 of topic exist with their ids.
func (e *env) checkRealDocs(es testutil.ESClient, topic string, n int) {
	e.t.Helper()
	seen := map[string]bool{}
	es.Scan(e.t, topic+"-*", `[{"kafka.partition":"asc"},{"kafka.offset":"asc"}]`, false, func(h testutil.Hit) {
		if seen[h.ID] {
			e.t.Fatalf("document %s twice", h.ID)
		}
		seen[h.ID] = true
	})
	for i := 0; i < n; i++ {
		if id := genID(topic, i); !seen[id] {
			e.t.Fatalf("document %s missing (have %d)", id, len(seen))
		}
	}
}

func kgoAdmin(t *testing.T, e *env) sarama.ClusterAdmin {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	adm, err := sarama.NewClusterAdmin(strings.Split(e.kafka.Addr(), ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return adm
}

// committed sums the group's committed offsets over topic's partitions.
func committed(t *testing.T, adm sarama.ClusterAdmin, group, topic string) int64 {
	res, err := adm.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		return -1
	}
	var sum int64
	for _, b := range res.Blocks[topic] {
		if b.Offset > 0 {
			sum += b.Offset
		}
	}
	return sum
}

// A broker without topic auto-creation and a topic list naming one that
// does not exist: the existing topic is consumed, the missing one is shown
// in /status and the metric, and consumed once it is created.
func TestRealMissingTopicDoesNotStopTheOthers(t *testing.T) {
	k := testutil.StartRealKafka(t, testutil.RealKafkaOpts{Props: map[string]string{"auto.create.topics.enable": "false"}})
	if err := k.K.CreateTopic("present", 2); err != nil {
		t.Fatal(err)
	}
	es := testutil.SharedRealES(t)
	e := newEnvOn(t, k, nil, es.URL())
	client := testutil.ESClient{URL: es.URL()}
	e.produce("present", 0, 500)
	d, _ := e.start(e.config("[kafka]\ntopics = present, absent\n"))
	waitCount(t, client, "present-*", "", 500, 60*time.Second)
	testutil.Eventually(t, 20*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_topic_missing", map[string]string{"topic": "absent"}) == 1
	}, testutil.Msg("the missing topic counted"))
	if m := d.Consumer().Missing(); len(m) != 1 || m[0] != "absent" {
		t.Fatalf("missing topics %v", m)
	}
	if err := k.K.CreateTopic("absent", 2); err != nil {
		t.Fatal(err)
	}
	e.produce("absent", 0, 300)
	waitCount(t, client, "absent-*", "", 300, 60*time.Second)
	e.produce("present", 500, 100)
	waitCount(t, client, "present-*", "", 600, 60*time.Second)
	if m := d.Consumer().Missing(); len(m) != 0 {
		t.Fatalf("still missing: %v", m)
	}
}

// The two copies of a line re-sent across midnight (see midnightCopies) on
// the real servers: one document, in the stamp's day.
func TestRealResentAcrossMidnightLandsInOneIndex(t *testing.T) {
	e, es := newRealEnv(t)
	midnightCopies(t, e, "rmid")
	if n := es.Count(t, "rmid-*", ""); n != 1 {
		t.Fatalf("%d documents for one line sent twice", n)
	}
	if n := es.Count(t, "rmid-2026.11.23", ""); n != 1 {
		t.Fatalf("%d documents in rmid-2026.11.23, want the one", n)
	}
}

// The nginx pipeline on Apache Kafka and Elasticsearch 7.17: the lines of
// 2019 land in their records' day's index with their own @timestamp, are
// found by status code (a long), client address (an ip, by CIDR) and a
// range of @timestamp, and the unparsed line is there raw.
func TestRealNginxPipelineSearchable(t *testing.T) {
	e, es := newRealEnv(t)
	const n = 100
	e.produceLines("rpipe", "nginx", accessLines(n))
	e.start(e.config("[kafka]\ntopics = rpipe\n"))
	waitCount(t, es, "rpipe-*", "", n+1, 60*time.Second)
	if c := es.Count(t, "rpipe-2026.11.23", ""); c != n+1 {
		t.Fatalf("%d documents in rpipe-2026.11.23 (the records' day), want %d", c, n+1)
	}
	if c := es.Count(t, "rpipe-*", `{"term":{"http.response.status_code":404}}`); c != n/2 {
		t.Fatalf("%d documents with status 404, want %d", c, n/2)
	}
	if c := es.Count(t, "rpipe-*", `{"range":{"http.response.status_code":{"gte":400}}}`); c != n/2 {
		t.Fatalf("%d documents with status >= 400, want %d", c, n/2)
	}
	if c := es.Count(t, "rpipe-*", `{"term":{"source.ip":"203.0.113.0/28"}}`); c != 16 {
		t.Fatalf("%d documents from 203.0.113.0/28, want 16", c)
	}
	if c := es.Count(t, "rpipe-*", `{"range":{"@timestamp":{"gte":"2019-11-23T00:00:00Z","lt":"2019-11-24T00:00:00Z"}}}`); c != n {
		t.Fatalf("%d documents on 2019-11-23 by @timestamp, want %d", c, n)
	}
	if c := es.Count(t, "rpipe-*", `{"match":{"error.message":"access log"}}`); c != 1 {
		t.Fatalf("%d unparsed documents, want 1", c)
	}
	var m map[string]struct {
		Mappings struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"mappings"`
	}
	es.JSON(t, 200, "GET", "/rpipe-2026.11.23/_mapping", "", &m)
	props := m["rpipe-2026.11.23"].Mappings.Properties
	if !strings.Contains(string(props["http"]), `"status_code":{"type":"long"}`) || !strings.Contains(string(props["source"]), `"ip":{"type":"ip"}`) {
		t.Fatalf("mapping http %s, source %s", props["http"], props["source"])
	}
}

// [es] pipeline names an ingest pipeline on every bulk request. While it
// does not exist, Elasticsearch refuses each document ("pipeline with id
// [..] does not exist"): they are held and retried, none is dead-lettered,
// /readyz says why; once an operator creates the pipeline every document
// goes through it. (The test node's only processor is a "set" of its own:
// Elastic does not publish ingest-common; see scripts/realstack/es.)
func TestRealIngestPipelineHeldUntilCreated(t *testing.T) {
	e, es := newRealEnv(t)
	const n = 300
	run := time.Now().UnixNano()
	name := fmt.Sprintf("lp-ingest-%d", run)
	topic := fmt.Sprintf("ringest%d", run) // its own index too when run with -count
	dlq := testutil.Consume(t, e.kafka.Addr(), topic+".dlq")
	e.produce(topic, 0, n)
	d, _ := e.start(e.config("[kafka]\ntopics = " + topic + "\n[es]\npipeline = " + name + "\n"))
	var ready string
	var retried float64
	testutil.Eventually(t, 60*time.Second, func() bool {
		_, ready = readyz(t, d)
		retried = testutil.MetricValue(d.Prometheus(), "logtransfer_docs_retried_total", nil)
		return retried >= n && strings.Contains(ready, "does not exist")
	}, func() string {
		return fmt.Sprintf("documents refused for the missing pipeline: %v retried, /readyz %s, /status %s", retried, ready, status(t, d))
	})
	if !strings.Contains(ready, name) {
		t.Fatalf("/readyz does not name the pipeline: %s", ready)
	}
	if c := es.Count(t, topic+"-*", ""); c != 0 {
		t.Fatalf("%d documents indexed without their pipeline", c)
	}
	es.JSON(t, 200, "PUT", "/_ingest/pipeline/"+name, `{"description":"logpipe test","processors":[{"set":{"field":"labels.ingest","value":"yes"}}]}`, nil)
	waitCount(t, es, topic+"-*", "", n, 60*time.Second)
	if c := es.Count(t, topic+"-*", `{"term":{"labels.ingest":"yes"}}`); c != n {
		t.Fatalf("%d documents set by the ingest pipeline, want %d", c, n)
	}
	var stats struct {
		Nodes map[string]struct {
			Ingest struct {
				Pipelines map[string]struct {
					Count  int `json:"count"`
					Failed int `json:"failed"`
				} `json:"pipelines"`
			} `json:"ingest"`
		} `json:"nodes"`
	}
	es.JSON(t, 200, "GET", "/_nodes/stats/ingest", "", &stats)
	through := 0
	for _, nd := range stats.Nodes {
		through += nd.Ingest.Pipelines[name].Count
	}
	if through < n {
		t.Fatalf("%d documents went through the ingest pipeline, want %d", through, n)
	}
	if c := es.Count(t, topic+"-*", ""); c != n {
		t.Fatalf("%d documents, want %d", c, n)
	}
	if v := testutil.MetricValue(d.Prometheus(), "logtransfer_docs_dead_lettered_total", nil); v != 0 || dlq.Len() != 0 {
		t.Fatalf("%v dead-lettered (%d on the topic) for a missing pipeline", v, dlq.Len())
	}
	testutil.Eventually(t, 10*time.Second, func() bool { _, ready = readyz(t, d); return !strings.Contains(ready, "does not exist") },
		func() string { return "/readyz still failing: " + ready })
}

// getJSON decodes what a GET of url answers.
func getJSON(url string, out any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
