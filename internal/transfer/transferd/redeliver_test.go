package transferd

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// Re-delivery gives one document per line whatever happens between two
// deliveries, on the fake and on Elasticsearch 7.17: the records straddle
// midnight (read a second before it, sent after), carry stamps in range
// and far out of it, or none, and name a custom pipeline, a built-in one
// or none; they are delivered again (a consumer-group reset, a new
// transfer) after the custom pipeline changed its time layout, and again
// with etcd unreachable and the pipelines known only from the transfer's
// cache. Before that, a transfer with neither etcd nor a cache consumes
// nothing and /readyz says why.
func TestRedeliveryGivesOneDocumentPerLine(t *testing.T) {
	t.Run("fake", func(t *testing.T) {
		e := newEnv(t, 2)
		redelivery(t, e, func() map[string][]stored {
			out := map[string][]stored{}
			for idx, docs := range e.es.Docs() {
				for id, src := range docs {
					out[id] = append(out[id], stored{idx, string(src)})
				}
			}
			return out
		})
	})
	t.Run("real", func(t *testing.T) {
		e, es := newRealEnv(t)
		redelivery(t, e, func() map[string][]stored {
			out := map[string][]stored{}
			es.Scan(t, "tredeliver-*", `[{"kafka.partition":"asc"},{"kafka.offset":"asc"}]`, true, func(h testutil.Hit) {
				out[h.ID] = append(out[h.ID], stored{h.Index, string(h.Source)})
			})
			return out
		})
	})
}

type stored struct{ index, source string }

func redelivery(t *testing.T, e *env, docs func() map[string][]stored) {
	const topic, n = "tredeliver", 48
	etcd := testutil.StartEtcd(t)
	const key = "/logtransfer/pipelines/app"
	// Version 1 takes the line's time from its first two fields, version 2
	// from a field version 1 does not look at: each parses another time.
	etcd.Put(key, `[{"dissect":{"pattern":"%{d} %{t} %{rest}"}},{"set":{"field":"v","value":1}},{"timestamp":{"field":"d","layouts":["2006-01-02"]}}]`)
	before := time.Date(2026, 11, 23, 23, 59, 59, 500e6, time.UTC)
	var recs []*kgo.Record
	for i := range n {
		kts := before
		if i%2 == 1 {
			kts = before.Add(6 * time.Second) // read before midnight, sent after
		}
		hs := []kgo.RecordHeader{{Key: "host.name", Value: []byte("web-1")}, {Key: "host.ip", Value: []byte("10.0.0.1")},
			{Key: "event.id", Value: []byte(fmt.Sprintf("gen-%s-%d", topic, i))}}
		switch i % 4 {
		case 1:
			hs = append(hs, kgo.RecordHeader{Key: "index.time", Value: []byte(strconv.FormatInt(before.UnixMilli(), 10))})
		case 2:
			hs = append(hs, kgo.RecordHeader{Key: "index.time", Value: []byte(strconv.FormatInt(before.AddDate(4, 0, 0).UnixMilli(), 10))})
		case 3:
			hs = append(hs, kgo.RecordHeader{Key: "index.time", Value: []byte(strconv.FormatInt(before.AddDate(-7, 0, 0).UnixMilli(), 10))})
		}
		value := fmt.Sprintf("2019-11-%02d 06:25:%02d line %d", 1+i%28, i%60, i)
		switch i % 3 {
		case 0:
			hs = append(hs, kgo.RecordHeader{Key: "pipeline", Value: []byte("app")})
		case 1:
			hs = append(hs, kgo.RecordHeader{Key: "pipeline", Value: []byte("nginx")})
			value = fmt.Sprintf(`203.0.113.9 - - [%02d/Nov/2019:06:25:%02d +0000] "GET /%d HTTP/1.1" 200 5 "-" "-"`, 1+i%28, i%60, i)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(value), Timestamp: kts, Headers: hs})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	check := func(phase string) {
		t.Helper()
		got := docs()
		total := 0
		for i := range n {
			id := genID(topic, i)
			if idx := got[id]; len(idx) != 1 {
				t.Errorf("%s: line %d stored %d times, in %v", phase, i, len(idx), idx)
			} else if i%3 == 0 && !strings.Contains(idx[0].source, `"v":1`) {
				// The first delivery ran version 1 on every app line.
				t.Errorf("%s: line %d stored as %s, not by version 1 of its pipeline", phase, i, idx[0].source)
			}
		}
		for _, idx := range got {
			total += len(idx)
		}
		if total != n {
			t.Errorf("%s: %d documents for %d lines", phase, total, n)
		}
	}
	dataDir := t.TempDir()
	deadEtcd := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	cfg := func(group, etcdAddr, dir string) string {
		return fmt.Sprintf("[kafka]\ntopics = %s\ngroup_id = %s\n[etcd]\naddress = %s\ntimeout = 1s\npipelines = true\n[transfer]\ndata_dir = %s\n", topic, group, etcdAddr, dir)
	}

	// 1. Neither etcd nor a cached copy: a record naming the custom
	// pipeline holds its partition (what names none, or a built-in, may go
	// through), /readyz says why.
	d, stop := e.start(e.config(cfg("g0", deadEtcd, t.TempDir())))
	var why string
	testutil.Eventually(t, 20*time.Second, func() bool {
		var code int
		code, why = readyz(t, d)
		return code == http.StatusServiceUnavailable && strings.Contains(why, "pipelines: waiting for the first load") &&
			testutil.MetricValue(d.Prometheus(), "logtransfer_claims_waiting_for_pipelines", nil) > 0
	}, func() string { return "/readyz naming the pipelines and a partition held, have " + why })
	stop()
	for id, copies := range docs() {
		for _, c := range copies {
			if strings.Contains(c.source, `"pipeline"`) || strings.Contains(c.source, "unknown pipeline") {
				t.Fatalf("%s stored before its pipeline was known: %s", id, c.source)
			}
		}
	}

	// 2. The first delivery, pipelines from etcd (version 1): kept in the
	// cache.
	d, stop = e.start(e.config(cfg("g1", etcd.Endpoint(), dataDir)))
	waitIndexed(t, d, n)
	stop()
	check("first delivery")
	if fi, err := os.Stat(filepath.Join(dataDir, "pipelines.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pipeline cache: %v %v", fi, err)
	}

	// 3. Delivered again (a new group) after version 2 changed the layout.
	etcd.Put(key, `[{"dissect":{"pattern":"%{d} %{t} %{rest}"}},{"set":{"field":"v","value":2}},{"timestamp":{"field":"t","layouts":["15:04:05"]}}]`)
	d, stop = e.start(e.config(cfg("g2", etcd.Endpoint(), dataDir)))
	testutil.Eventually(t, 20*time.Second, func() bool {
		return d.pipes.Status().Revisions["app"] > 0 && strings.Contains(string(must(d.pipes.MarshalCache())), `"value":2`)
	},
		testutil.Msg("version 2 loaded"))
	waitIndexed(t, d, n)
	stop()
	check("after the pipeline changed")

	// 4. Delivered again with etcd unreachable: the cached pipelines.
	d, stop = e.start(e.config(cfg("g3", deadEtcd, dataDir)))
	if st := d.pipes.Status(); st.From != "cache" || len(st.Custom) != 1 {
		t.Fatalf("pipelines %+v, want app from the cache", st)
	}
	waitIndexed(t, d, n)
	stop()
	check("etcd unreachable, pipelines from the cache")
}

func must(b []byte, ok bool) []byte {
	if !ok {
		return nil
	}
	return b
}

// waitIndexed waits until the transfer had n documents acknowledged,
// stored or already stored.
func waitIndexed(t *testing.T, d *Daemon, n int) {
	t.Helper()
	acked := func() float64 {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "created"}) +
			testutil.MetricValue(d.Prometheus(), "logtransfer_docs_indexed_total", map[string]string{"result": "exists"})
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return acked() >= float64(n) },
		func() string { return fmt.Sprintf("%d documents acknowledged, have %v", n, acked()) })
}

// A line that would cost its pipeline more than a document may is not
// matched: it goes to the dead-letter topic with the reason, and the
// records beside it are indexed (a 10 KB pipeline once cost 8.4 s a line
// and held up another host's record behind three such lines).
func TestPipelineOverBudgetIsDeadLettered(t *testing.T) {
	e := newEnv(t, 1)
	etcd := testutil.StartEtcd(t)
	etcd.Put("/logtransfer/pipelines/heavy", `[{"regex":{"pattern":"(?P<x>a{0,999}b{0,999}c{0,999}d{0,999})"}}]`)
	dlq := testutil.Consume(t, e.kafka.Addr(), "theavy.dlq")
	rec := func(i int, pipe, value string) *kgo.Record {
		hs := []kgo.RecordHeader{{Key: "host.name", Value: []byte("web-1")}, {Key: "host.ip", Value: []byte("10.0.0.1")},
			{Key: "event.id", Value: []byte(fmt.Sprintf("gen-theavy-%d", i))}}
		if pipe != "" {
			hs = append(hs, kgo.RecordHeader{Key: "pipeline", Value: []byte(pipe)})
		}
		return &kgo.Record{Topic: "theavy", Value: []byte(value), Timestamp: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), Headers: hs}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	long := strings.Repeat("z", 64<<10)
	if err := e.prod.ProduceSync(ctx, rec(0, "heavy", long), rec(1, "heavy", long), rec(2, "heavy", long), rec(3, "heavy", "abcd"), rec(4, "", "plain")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = theavy\n[etcd]\naddress = %s\npipelines = true\n", etcd.Endpoint())))
	e.waitDocs(2, 30*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool { return dlq.Len() >= 3 }, func() string { return fmt.Sprintf("3 dead letters, have %d", dlq.Len()) })
	docs := e.es.Docs()["theavy-2026.11.23"]
	if len(docs) != 2 || !strings.Contains(string(docs[genID("theavy", 3)]), `"x":"abcd"`) || docs[genID("theavy", 4)] == nil {
		t.Fatalf("indexed %v", docs)
	}
	for _, r := range dlq.Records() {
		if !strings.Contains(r.Headers["dlq.reason"], `pipeline "heavy": processor 0 (regex): matching 65536 bytes against`) ||
			!strings.Contains(r.Headers["dlq.reason"], "per-document work budget") || len(r.Value) != len(long) {
			t.Fatalf("dead letter %v", r.Headers)
		}
	}
	if v := testutil.MetricValue(d.Prometheus(), "logtransfer_pipeline_events_total", map[string]string{"pipeline": "heavy", "result": "over_budget"}); v != 3 {
		t.Errorf("over_budget count %v, want 3", v)
	}
}
