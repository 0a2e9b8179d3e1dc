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
	tp := NewTopics([]string{"static_one"}, "/logagent/%s/collect_config", logrus.NewEntry(l), reg)
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
		if f := c.fragment(raw); len(f) < len(big) {
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
