package hostmetrics

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// BenchmarkCollection is one collection with every output encoded: the
// figures read, the CPU shares, the Metricbeat documents, the InfluxDB
// points and the /metrics page a scrape gets (gathered and written in the
// text format). Compare with node_exporter's cost per scrape in make bench.
func BenchmarkCollection(b *testing.B) {
	c := NewCollector(DefaultFilters())
	reg := prometheus.NewRegistry()
	p := &Prom{}
	reg.MustRegister(p)
	prev, err := c.Collect(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	var influx []byte
	var page bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		s, err := c.Collect(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		r := RatesBetween(prev, s)
		prev = s
		_ = BeatDocs("", s, r, 10*time.Second)
		influx = AppendInflux(influx[:0], "host", s, r)
		p.Set(s)
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		page.Reset()
		enc := expfmt.NewEncoder(&page, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(page.Len()), "page-bytes")
	b.ReportMetric(float64(len(influx)), "influx-bytes")
}
