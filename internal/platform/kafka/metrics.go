package kafka

import (
	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
)

// NoMetrics makes c's clients record none of sarama's go-metrics
// (meters and histograms updated per request and batch, which nothing
// here reads: the daemons export their own Prometheus metrics). It is
// per config, unlike go-metrics' package-level UseNilMetrics.
func NoMetrics(c *sarama.Config) { c.MetricRegistry = nilRegistry{} }

// nilRegistry hands out go-metrics' no-op metrics and keeps nothing.
type nilRegistry struct{}

func (nilRegistry) Each(func(string, interface{}))                    {}
func (nilRegistry) Get(string) interface{}                            { return nil }
func (nilRegistry) GetAll() map[string]map[string]interface{}         { return nil }
func (nilRegistry) Register(string, interface{}) error                { return nil }
func (nilRegistry) RunHealthchecks()                                  {}
func (nilRegistry) Unregister(string)                                 {}
func (nilRegistry) UnregisterAll()                                    {}
func (nilRegistry) GetOrRegister(_ string, i interface{}) interface{} { return nilMetric(i) }

// nilMetric is the no-op metric of the kind i makes (a constructor) or is.
func nilMetric(i interface{}) interface{} {
	switch i.(type) {
	case func() metrics.Meter, metrics.Meter:
		return metrics.NilMeter{}
	case func() metrics.Histogram, metrics.Histogram:
		return metrics.NilHistogram{}
	case func() metrics.Counter, metrics.Counter:
		return metrics.NilCounter{}
	case func() metrics.Timer, metrics.Timer:
		return metrics.NilTimer{}
	case func() metrics.Gauge, metrics.Gauge:
		return metrics.NilGauge{}
	case func() metrics.GaugeFloat64, metrics.GaugeFloat64:
		return metrics.NilGaugeFloat64{}
	}
	return i
}
