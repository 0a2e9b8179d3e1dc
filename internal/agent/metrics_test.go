package agent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// metricDoc is what a host metrics record holds.
type metricDoc struct {
	Timestamp string `json:"@timestamp"`
	Metricset struct {
		Name   string `json:"name"`
		Period int64  `json:"period"`
	} `json:"metricset"`
	Event struct {
		Dataset string `json:"dataset"`
	} `json:"event"`
	Host   any                        `json:"host"`
	System map[string]json.RawMessage `json:"system"`
}

// Host metrics follow /logagent/<ip>/metrics_config: collections on the
// interval's boundaries go to Kafka as Metricbeat documents (marked as
// metrics, with ids that name the host's metricset, instance and time),
// and /metrics shows the last one in node_exporter's names. A bad config
// is rejected whole (logged, counted, shown) and the running one stays;
// a deleted key stops everything.
func TestHostMetricsFollowTheirConfig(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	key := "/logagent/10.1.2.3/metrics_config"
	cons := testutil.Consume(t, e.kafka.Addr(), "host_metrics")
	e.etcd.Put(key, `{"interval":"1s","topic":"host_metrics","prometheus":true}`)

	// Two collections at least: the cpu set needs two.
	testutil.Eventually(t, 30*time.Second, func() bool { return sets(t, cons)["cpu"] >= 2 },
		func() string { return fmt.Sprintf("two cpu documents; sets so far %v", sets(t, cons)) })
	if n := a.prod.Sent(); n != 0 {
		t.Errorf("host metrics alone count as activity (%d sent): the idle agent would keep its busy heap", n)
	}
	byTime := map[string]map[string]int{} // @timestamp -> metricset -> documents
	ids := map[string]bool{}
	for _, r := range cons.Records() {
		if r.Headers[record.HeaderEventKind] != record.KindMetric || r.Headers[record.HeaderHostName] != "testhost" || r.Headers[record.HeaderSig] == "" && r.Headers[record.HeaderEventID] == "" {
			t.Fatalf("headers %v", r.Headers)
		}
		id := r.Headers[record.HeaderEventID]
		if ids[id] {
			t.Fatalf("event id %s twice", id)
		}
		ids[id] = true
		var d metricDoc
		if err := json.Unmarshal(r.Value, &d); err != nil {
			t.Fatalf("%s: %v", r.Value, err)
		}
		if d.Host != nil {
			t.Errorf("the document names its host itself (the headers do): %s", r.Value)
		}
		ts, err := time.Parse(time.RFC3339Nano, d.Timestamp)
		if err != nil || !ts.Equal(ts.Truncate(time.Second)) {
			t.Errorf("@timestamp %q is not on the interval's boundary", d.Timestamp)
		}
		if d.Metricset.Period != 1000 || d.System == nil || !strings.HasPrefix(d.Event.Dataset, "system.") {
			t.Errorf("document %s", r.Value)
		}
		if byTime[d.Timestamp] == nil {
			byTime[d.Timestamp] = map[string]int{}
		}
		byTime[d.Timestamp][d.Metricset.Name]++
	}
	for ts, s := range byTime {
		for _, set := range []string{"memory", "load", "uptime", "process_summary"} {
			if s[set] != 1 {
				t.Errorf("collection %s has %d %s documents, want 1 (all: %v)", ts, s[set], set, s)
			}
		}
		if s["filesystem"] == 0 || s["network"] == 0 {
			t.Errorf("collection %s has no filesystem or network documents: %v", ts, s)
		}
	}
	if v := testutil.MetricValue(a.Prometheus(), "node_memory_MemTotal_bytes", nil); v <= 0 {
		t.Errorf("node_memory_MemTotal_bytes = %v on /metrics", v)
	}
	if st := a.Status().Metrics; st == nil || strings.Join(st.Outputs, ",") != "kafka,prometheus" || st.Interval != "1s" || st.LastCollection.IsZero() {
		t.Errorf("status %+v", st)
	}

	rejected := func() float64 {
		return testutil.MetricValue(a.Prometheus(), "logagent_hostmetrics_config_rejected_total", nil)
	}
	e.etcd.Put(key, `{"interval":"1ms","topic":"host_metrics"}`)
	testutil.Eventually(t, 10*time.Second, func() bool { return rejected() == 1 }, testutil.Msg("the bad config counted"))
	if st := a.Status().Metrics; st == nil || !strings.Contains(st.ConfigError, "interval") || st.Interval != "1s" {
		t.Errorf("status after a bad config %+v", st)
	}
	// The running config goes on: more collections come.
	n := sets(t, cons)["memory"]
	testutil.Eventually(t, 10*time.Second, func() bool { return sets(t, cons)["memory"] >= n+2 }, testutil.Msg("collections after the bad config"))

	e.etcd.Delete(key)
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Status().Metrics == nil }, testutil.Msg("host metrics stopped"))
	if v := testutil.MetricValue(a.Prometheus(), "node_memory_MemTotal_bytes", nil); v > 0 {
		t.Errorf("node_memory_MemTotal_bytes = %v after the config was deleted", v)
	}
}

// sets counts the consumed metric documents by metricset.
func sets(t *testing.T, cons *testutil.Consumer) map[string]int {
	out := map[string]int{}
	for _, r := range cons.Records() {
		var d metricDoc
		if json.Unmarshal(r.Value, &d) == nil {
			out[d.Metricset.Name]++
		}
	}
	return out
}

// A token whose variable the agent was not given rejects the config: the
// running one stays.
func TestHostMetricsTokenMustBeGiven(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	key := "/logagent/10.1.2.3/metrics_config"
	e.etcd.Put(key, `{"interval":"1s","prometheus":true}`)
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Status().Metrics != nil }, testutil.Msg("metrics config applied"))
	e.etcd.Put(key, `{"interval":"1s","prometheus":true,"influx":{"url":"http://127.0.0.1:1/write?db=x","token":"env:LOGPIPE_TEST_NOT_SET"}}`)
	testutil.Eventually(t, 10*time.Second, func() bool {
		st := a.Status().Metrics
		return st != nil && strings.Contains(st.ConfigError, "LOGPIPE_TEST_NOT_SET is not set")
	}, func() string { return fmt.Sprintf("status %+v", a.Status().Metrics) })
	if st := a.Status().Metrics; strings.Join(st.Outputs, ",") != "prometheus" {
		t.Errorf("outputs %v after the rejected config", st.Outputs)
	}
}

// The real servers: Debian's InfluxDB 1.x receives the agent's pushes and
// answers InfluxQL in Telegraf's names, Debian's Prometheus scrapes the
// agent and answers PromQL in node_exporter's names, and the figures are
// the kernel's (memory total within 1 %, the CPU count exactly, the root
// file system's size exactly statfs's).
func TestHostMetricsOnRealInfluxDBAndPrometheus(t *testing.T) {
	influx := testutil.StartInfluxDB(t)
	influx.Query("", "CREATE DATABASE telegraf")
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	prom := testutil.StartPrometheus(t, "logagent", a.HTTPAddr())
	e.etcd.Put("/logagent/10.1.2.3/metrics_config",
		fmt.Sprintf(`{"interval":"1s","prometheus":true,"influx":{"url":"http://%s/write?db=telegraf"}}`, influx.Addr))

	cpus, _ := testutil.HostCPUs(t)
	memTotal := float64(testutil.HostMemTotal(t))
	rootSize := float64(testutil.FSSize(t, "/"))
	last := func(q string) (float64, bool) {
		rows := influx.Query("telegraf", q)
		if len(rows) == 0 || len(rows[0]) < 2 {
			return 0, false
		}
		v, ok := rows[0][1].(float64)
		return v, ok
	}
	testutil.Eventually(t, 60*time.Second, func() bool {
		_, ok := last(`SELECT count("usage_idle") FROM "cpu" WHERE "cpu"='cpu-total' AND "host"='testhost'`)
		return ok
	}, testutil.Msg("cpu points in InfluxDB"))
	if v, _ := last(`SELECT last("total") FROM "mem" WHERE "host"='testhost'`); !testutil.Within(v, memTotal, 0.01) {
		t.Errorf("InfluxDB mem total %v, /proc/meminfo %v", v, memTotal)
	}
	if v, _ := last(`SELECT last("n_cpus") FROM "system" WHERE "host"='testhost'`); v != float64(cpus) {
		t.Errorf("InfluxDB system n_cpus %v, /proc/stat %d", v, cpus)
	}
	if v, _ := last(`SELECT last("total") FROM "disk" WHERE "path"='/'`); v != rootSize {
		t.Errorf("InfluxDB disk total of / %v, statfs %v", v, rootSize)
	}
	if v, _ := last(`SELECT last("usage_idle") FROM "cpu" WHERE "cpu"='cpu-total'`); v < 0 || v > 100 {
		t.Errorf("InfluxDB cpu-total usage_idle %v", v)
	}

	one := func(q string) (float64, bool) {
		s := prom.Query(q)
		if len(s) != 1 {
			return 0, false
		}
		return s[0].Value, true
	}
	testutil.Eventually(t, 60*time.Second, func() bool { _, ok := one(`node_memory_MemTotal_bytes{job="logagent"}`); return ok },
		testutil.Msg("Prometheus scraped the agent's host metrics"))
	if v, _ := one(`node_memory_MemTotal_bytes{job="logagent"}`); !testutil.Within(v, memTotal, 0.01) {
		t.Errorf("node_memory_MemTotal_bytes %v, /proc/meminfo %v", v, memTotal)
	}
	if v, _ := one(`count(node_cpu_seconds_total{job="logagent",mode="idle"})`); v != float64(cpus) {
		t.Errorf("count(node_cpu_seconds_total{mode=idle}) %v, /proc/stat %d", v, cpus)
	}
	if v, _ := one(`node_filesystem_size_bytes{job="logagent",mountpoint="/"}`); v != rootSize {
		t.Errorf("node_filesystem_size_bytes{mountpoint=/} %v, statfs %v", v, rootSize)
	}
	// Counters: a rate comes once two scrapes are in.
	testutil.Eventually(t, 30*time.Second, func() bool {
		v, ok := one(`sum(rate(node_cpu_seconds_total{job="logagent"}[10s]))`)
		return ok && v > 0
	}, testutil.Msg("a rate of node_cpu_seconds_total"))
}

// An agent restarted while etcd is down reports its host with the last
// good host metrics config, cached in data_dir.
func TestHostMetricsCachedConfigWhenEtcdDownAtStart(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("")
	a, stop := e.start(cfg)
	e.etcd.Put("/logagent/10.1.2.3/metrics_config", `{"interval":"1s","prometheus":true}`)
	testutil.Eventually(t, 10*time.Second, func() bool { return a.Status().Metrics != nil }, testutil.Msg("metrics config applied"))
	stop()
	checkPrivate(t, e.data)

	e.etcd.Stop()
	a, _ = e.start(cfg)
	testutil.Eventually(t, 10*time.Second, func() bool {
		return testutil.MetricValue(a.Prometheus(), "node_memory_MemTotal_bytes", nil) > 0
	}, func() string {
		return fmt.Sprintf("host metrics from the cached config; status %+v", a.Status().Metrics)
	})
	if st := a.Status().Metrics; st == nil || strings.Join(st.Outputs, ",") != "prometheus" {
		t.Errorf("status %+v", st)
	}
}
