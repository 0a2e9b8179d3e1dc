package kafka

import (
	"testing"

	"github.com/IBM/sarama"
	metrics "github.com/rcrowley/go-metrics"
)

// sarama's metrics, asked for the way sarama asks, are the no-op ones:
// nothing is recorded and no meter goroutine ticks.
func TestNoMetrics(t *testing.T) {
	c := sarama.NewConfig()
	NoMetrics(c)
	r := c.MetricRegistry
	if _, ok := metrics.GetOrRegisterMeter("request-rate", r).(metrics.NilMeter); !ok {
		t.Error("meter is not a no-op")
	}
	if _, ok := metrics.GetOrRegisterHistogram("batch-size", r, metrics.NewUniformSample(10)).(metrics.NilHistogram); !ok {
		t.Error("histogram is not a no-op")
	}
	if _, ok := metrics.GetOrRegisterCounter("requests-in-flight", r).(metrics.NilCounter); !ok {
		t.Error("counter is not a no-op")
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}
