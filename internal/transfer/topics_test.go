package transfer

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
)

func TestDiscoveryRefusesInternalAndUnmatchedTopics(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	tp := NewTopics([]string{"static_one"}, "/logagent/%s/collect_config", "/logagent/%s/metrics_config", logrus.NewEntry(l), reg)
	tp.SetPattern(regexp.MustCompile(`^(?:web_.*)$`))
	tp.Update(&confwatch.Snapshot{Revision: 2, KVs: map[string]confwatch.KV{
		"/logagent/10.0.0.1/collect_config": {Value: []byte(`[{"path":"/a","topic":"web_log"},{"path":"/b","topic":"__consumer_offsets"}]`), ModRevision: 2},
		"/logagent/10.0.0.2/collect_config": {Value: []byte(`[{"path":"/a","topic":".kibana"},{"path":"/b","topic":"db_log"}]`), ModRevision: 2},
	}})
	if got := strings.Join(tp.List(), ","); got != "static_one,web_log" {
		t.Fatalf("topics %s, want static_one,web_log", got)
	}
	if n := testutil.MetricValue(reg, "logtransfer_discovery_refused_topics_total", nil); n != 3 {
		t.Fatalf("refused counted %v, want 3", n)
	}
}

func TestFieldsCacheIsBoundedInBytes(t *testing.T) {
	// Every record with its own large fields header: the cache must not
	// keep them all.
	var c fieldsCache
	big := strings.Repeat("v", 100<<10)
	for i := 0; i < 200; i++ {
		raw := []byte(`{"k":"` + big + `","n":"` + strings.Repeat("x", i) + `"}`)
		if f := c.fragment(raw, i%2 == 1); len(f) < len(big) {
			t.Fatalf("fragment %d bytes", len(f))
		}
	}
	if c.bytes > maxFieldsCacheBytes {
		t.Fatalf("cache holds %d bytes, bound %d", c.bytes, maxFieldsCacheBytes)
	}
	total := 0
	for k, v := range c.m {
		total += len(k) + len(v)
	}
	if total > maxFieldsCacheBytes {
		t.Fatalf("cache entries hold %d bytes, bound %d", total, maxFieldsCacheBytes)
	}
}

// An agent's host metrics topic is discovered like its collect config's;
// an invalid metrics config keeps the key's previous topic, and a deleted
// one leaves its topic to be drained and released.
func TestDiscoveryReadsMetricsConfigs(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	tp := NewTopics(nil, "/logagent/%s/collect_config", "/logagent/%s/metrics_config", logrus.NewEntry(l), reg)
	snap := func(rev int64, kvs map[string]string) {
		s := &confwatch.Snapshot{Revision: rev, KVs: map[string]confwatch.KV{}}
		for k, v := range kvs {
			s.KVs[k] = confwatch.KV{Value: []byte(v), ModRevision: rev}
		}
		tp.Update(s)
	}
	snap(2, map[string]string{
		"/logagent/10.0.0.1/collect_config": `[{"path":"/a","topic":"web_log"}]`,
		"/logagent/10.0.0.1/metrics_config": `{"topic":"host_metrics","prometheus":true}`,
		"/logagent/10.0.0.2/metrics_config": `{"prometheus":true}`,
	})
	if got := strings.Join(tp.List(), ","); got != "host_metrics,web_log" {
		t.Fatalf("topics %s, want host_metrics,web_log", got)
	}
	snap(3, map[string]string{
		"/logagent/10.0.0.1/collect_config": `[{"path":"/a","topic":"web_log"}]`,
		"/logagent/10.0.0.1/metrics_config": `{"topic":"host_metrics","interval":"1ms"}`,
	})
	if got := strings.Join(tp.Unnamed(), ","); got != "" {
		t.Errorf("an invalid metrics config dropped its topic: unnamed %s", got)
	}
	if n := testutil.MetricValue(reg, "logtransfer_discovery_invalid_configs_total", nil); n != 1 {
		t.Errorf("invalid configs counted %v, want 1", n)
	}
	snap(4, map[string]string{"/logagent/10.0.0.1/collect_config": `[{"path":"/a","topic":"web_log"}]`})
	if got := strings.Join(tp.Unnamed(), ","); got != "host_metrics" {
		t.Errorf("unnamed %q after the metrics config was deleted, want host_metrics", got)
	}
}
