package agent

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/hostmetrics"
	"github.com/logpipe/logpipe/internal/agent/influx"
	"github.com/logpipe/logpipe/internal/agent/producer"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
	"github.com/logpipe/logpipe/internal/platform/inventory"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
)

// metricsSource is the record key (the "path") of host metric records:
// one key, so a host's metrics stay in order in one partition.
const metricsSource = "hostmetrics"

// hostMetrics runs host metrics as the metrics config in etcd says:
// collections on the interval's boundaries, to Kafka (through the
// producer, so they count against buffer_bytes and are re-sent until
// acknowledged), to Prometheus (the agent's /metrics shows the last
// collection) and to InfluxDB.
type hostMetrics struct {
	log      *logrus.Entry
	host, ip string
	agentID  string // agent.id and agent.version in its records
	version  string
	key      string
	cache    string // the last good config, for a start while etcd is down
	watch    *confwatch.Watcher
	coll     *hostmetrics.Collector
	prom     *hostmetrics.Prom
	influx   *influx.Writer
	sink     interface {
		Send(context.Context, *event.Batch) error
		Topics() []producer.TopicStatus
	}

	mu         sync.Mutex
	cfg        *metricsconf.Config // in force (never nil)
	seenRev    int64
	appliedRev int64
	lastErr    string // the last config rejected, until one is applied
	collectErr string // the last collection's missing metricsets
	last       time.Time
	sources    map[string]*event.Source // by topic
	changed    chan struct{}

	acked                          atomic.Int64
	collections, skipped, rejected prometheus.Counter
	docs                           prometheus.Counter
}

func newHostMetrics(a *Agent, key string) *hostMetrics {
	h := &hostMetrics{
		log:  a.log.WithField("component", "hostmetrics"),
		host: a.host, ip: a.ip, agentID: a.id, version: a.opts.Version, key: key, cache: filepath.Join(a.cfg.Agent.DataDir, "metrics_config.json"),
		// No metrics of its own: the collect config's watcher has them.
		watch:   confwatch.New(a.cli, key, false, a.cfg.Etcd.Timeout, a.log, nil, "logagent"),
		coll:    hostmetrics.NewCollector(hostmetrics.DefaultFilters()),
		prom:    &hostmetrics.Prom{},
		influx:  influx.New(a.log, a.prom),
		sink:    a.prod,
		cfg:     &metricsconf.Config{Interval: metricsconf.DefaultInterval},
		seenRev: -1,
		sources: map[string]*event.Source{},
		changed: make(chan struct{}, 1),
		collections: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_hostmetrics_collections_total",
			Help: "Host metric collections made."}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_hostmetrics_skipped_total",
			Help: "Collections not sent to Kafka because 16 earlier ones were still waiting for it (its buffer full, or the topic refused)."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_hostmetrics_config_rejected_total",
			Help: "Host metrics configs from etcd rejected as invalid (the running one stayed)."}),
		docs: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_hostmetrics_docs_sent_total",
			Help: "Host metric documents handed to the producer for Kafka."}),
	}
	acked := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "logagent_hostmetrics_docs_acked_total",
		Help: "Host metric documents Kafka acknowledged."}, func() float64 { return float64(h.acked.Load()) })
	a.prom.MustRegister(h.prom, h.collections, h.skipped, h.rejected, h.docs, acked)
	return h
}

// Ack counts a metric document Kafka acknowledged (acktrack.Acker).
func (h *hostMetrics) Ack(uint64) { h.acked.Add(1) }

// Run watches the config and collects until ctx ends.
func (h *hostMetrics) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h.loadCache() // before the watch: etcd's answer, when it comes, is newer
	kafka := make(chan collected, kafkaQueue)
	for _, f := range []func(context.Context) error{h.watch.Run, h.influx.Run, h.configLoop,
		func(ctx context.Context) error { return h.sendLoop(ctx, kafka) }} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(wctx) }()
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var prev *hostmetrics.Snapshot
	for {
		cfg := h.config()
		var tick <-chan time.Time
		var due time.Time
		if cfg.Active() {
			due = nextTick(time.Now(), cfg.Interval)
			timer.Reset(time.Until(due))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-h.changed:
			timer.Stop()
			continue
		case <-tick:
		}
		snap, err := h.coll.Collect(ctx)
		if err != nil {
			return nil // ctx ended
		}
		// Stamped with the boundary it was due at, as Telegraf does: every
		// host's points of one interval share a time, and a collection made
		// again for the same boundary (a restart) is the same document.
		snap.Time = due
		h.collections.Inc()
		rates := hostmetrics.RatesBetween(prev, snap)
		prev = snap
		h.noteCollected(snap)
		if cfg.Prometheus {
			h.prom.Set(snap)
		}
		if cfg.Influx != nil {
			h.influx.Add(hostmetrics.AppendInflux(nil, h.host, snap, rates))
		}
		if cfg.Topic != "" {
			// Kafka's sends wait while its buffer is full or the topic is
			// refused; the other outputs do not wait for them. A collection
			// that finds kafkaQueue collections still waiting is not sent,
			// counted.
			select {
			case kafka <- collected{cfg: cfg, snap: snap, rates: rates}:
			default:
				h.skipped.Inc()
			}
		}
	}
}

// kafkaQueue is how many collections wait for the Kafka output at most.
const kafkaQueue = 16

// collected is a collection on its way to Kafka.
type collected struct {
	cfg   *metricsconf.Config
	snap  *hostmetrics.Snapshot
	rates hostmetrics.Rates
}

// sendLoop hands the collections to the producer, in order.
func (h *hostMetrics) sendLoop(ctx context.Context, in <-chan collected) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-in:
			if err := h.send(ctx, c.cfg, c.snap, c.rates); err != nil {
				return nil // ctx ended
			}
		}
	}
}

// nextTick is the first multiple of interval after now (collections on
// the interval's boundaries, as Telegraf's round_interval: hosts collect
// at the same instants, and a restart keeps the grid).
func nextTick(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

// send hands one collection's documents to the producer, blocking while
// the buffer is full (as a file's lines do).
func (h *hostMetrics) send(ctx context.Context, cfg *metricsconf.Config, snap *hostmetrics.Snapshot, rates hostmetrics.Rates) error {
	docs := hostmetrics.BeatDocs("", snap, rates, cfg.Interval)
	if len(docs) == 0 {
		return nil
	}
	src := h.source(cfg.Topic)
	b := &event.Batch{Events: make([]event.Event, len(docs)), Background: true}
	for i, d := range docs {
		b.Events[i] = event.Event{Source: src, Value: d.JSON, Offset: snap.Time.UnixMilli(), Instance: metricInstance(h.host, d),
			Time: snap.Time, Stamp: snap.Time, Acker: h, Seq: uint64(i)}
		b.Bytes += len(d.JSON)
	}
	if err := h.sink.Send(ctx, b); err != nil {
		return fmt.Errorf("sending host metrics: %w", err)
	}
	h.docs.Add(float64(len(docs)))
	return nil
}

// metricInstance is the event id's instance of a metric document: the
// same for a host's metricset and instance (a mount point, a device) in
// every collection, so that with the collection time as the offset the id
// names one document however often it is delivered.
func metricInstance(host string, d hostmetrics.Doc) record.Instance {
	sum := sha256.Sum256([]byte("hostmetrics\x00" + host + "\x00" + d.Metricset + "\x00" + d.Instance))
	var i record.Instance
	copy(i[:], sum[:])
	return i
}

func (h *hostMetrics) source(topic string) *event.Source {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.sources[topic]
	if s == nil {
		s = event.NewSource(topic, metricsSource, h.host, h.ip, nil).WithAgent(h.agentID, h.version).WithKind(record.KindMetric)
		h.sources[topic] = s
	}
	return s
}

func (h *hostMetrics) config() *metricsconf.Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

// running reports whether host metrics are collected at least once a
// minute: the memory governor then gives the idle heap room for each
// collection's garbage (memtune.Governor.Scheduled). Rarer collections
// are not worth the resident memory.
func (h *hostMetrics) running() bool {
	c := h.config()
	return c.Active() && c.Interval <= time.Minute
}

func (h *hostMetrics) noteCollected(s *hostmetrics.Snapshot) {
	msg := ""
	if len(s.Errs) > 0 {
		msg = fmt.Sprint(s.Errs)
	}
	h.mu.Lock()
	h.last, h.collectErr = s.Time, msg
	h.mu.Unlock()
}

// configLoop validates every new metrics config and applies the good
// ones; a bad one is logged, counted and shown, and the running one stays.
func (h *hostMetrics) configLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.watch.Changed():
			h.handle(h.watch.Latest())
		}
	}
}

func (h *hostMetrics) handle(s *confwatch.Snapshot) {
	if s == nil {
		return
	}
	kv, exists := s.KVs[h.key]
	h.mu.Lock()
	dup := h.seenRev == kv.ModRevision
	h.seenRev = kv.ModRevision
	h.mu.Unlock()
	if dup {
		return
	}
	log := h.log.WithFields(logrus.Fields{"key": h.key, "revision": kv.ModRevision})
	cfg := &metricsconf.Config{Interval: metricsconf.DefaultInterval}
	if exists {
		c, err := metricsconf.Parse(kv.Value)
		if err == nil {
			err = h.applyInflux(c)
		}
		if err != nil {
			h.rejected.Inc()
			h.mu.Lock()
			h.lastErr = err.Error()
			h.mu.Unlock()
			log.WithError(err).Error("invalid host metrics config rejected; the running one stays in force")
			return
		}
		cfg = c
		h.saveCache(kv.Value, kv.ModRevision)
	} else {
		if err := h.applyInflux(cfg); err != nil {
			log.WithError(err).Error("stopping the InfluxDB output")
		}
		if err := os.Remove(h.cache); err != nil && !errors.Is(err, os.ErrNotExist) {
			log.WithError(err).Warn("removing the host metrics config cache")
		}
	}
	h.apply(cfg, kv.ModRevision)
	if exists {
		log.WithFields(logrus.Fields{"interval": cfg.Interval, "outputs": cfg.Outputs()}).Info("host metrics config accepted")
	} else {
		log.Info("host metrics config key is absent: no host metrics")
	}
}

// apply puts cfg in force (its InfluxDB target already set).
func (h *hostMetrics) apply(cfg *metricsconf.Config, rev int64) {
	if !cfg.Prometheus {
		h.prom.Set(nil)
	}
	h.mu.Lock()
	h.cfg, h.appliedRev, h.lastErr = cfg, rev, ""
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// loadCache puts the cached config in force until etcd answers (an agent
// restarted while etcd is down keeps reporting its host).
func (h *hostMetrics) loadCache() {
	data, err := os.ReadFile(h.cache)
	if err != nil {
		return
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil || c.Key != h.key {
		h.log.WithError(err).Warn("ignoring an unreadable or foreign host metrics config cache")
		return
	}
	cfg, err := metricsconf.Parse(c.Value)
	if err == nil {
		err = h.applyInflux(cfg)
	}
	if err != nil {
		h.log.WithError(err).Warn("ignoring an invalid host metrics config cache")
		return
	}
	h.apply(cfg, c.Revision)
	h.log.WithField("revision", c.Revision).Info("host metrics with the cached config until etcd answers")
}

func (h *hostMetrics) saveCache(value []byte, rev int64) {
	data, err := json.Marshal(cacheFile{Key: h.key, Revision: rev, Value: json.RawMessage(value)})
	if err == nil {
		err = fsutil.WriteAtomic(h.cache, data, 0o600)
	}
	if err != nil {
		h.log.WithError(err).Warn("saving the host metrics config cache")
	}
}

// applyInflux points the InfluxDB output at c's target (or stops it); a
// token whose variable this agent was not given rejects the config.
func (h *hostMetrics) applyInflux(c *metricsconf.Config) error {
	if c.Influx == nil {
		return h.influx.Set(nil)
	}
	t := &influx.Target{URL: c.Influx.URL, MaxPoints: c.Influx.MaxPoints}
	if name := c.Influx.TokenEnv; name != "" {
		v, ok := os.LookupEnv(name)
		if !ok || v == "" {
			return fmt.Errorf("influx: token: environment variable %s is not set on this agent", name)
		}
		t.Token = v
	}
	return h.influx.Set(t)
}

// status is what /status and the inventory show of host metrics.
func (h *hostMetrics) status() *inventory.Metrics {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.cfg.Active() && h.lastErr == "" {
		return nil
	}
	m := &inventory.Metrics{Revision: h.appliedRev, ConfigError: h.lastErr, Outputs: h.cfg.Outputs(),
		Interval: h.cfg.Interval.String(), LastCollection: h.last, CollectError: h.collectErr}
	if h.cfg.Influx != nil {
		m.InfluxError = h.influx.Err()
	}
	if h.cfg.Topic != "" {
		for _, t := range h.sink.Topics() {
			if t.Topic == h.cfg.Topic && t.State == producer.TopicBlocked {
				m.KafkaError = "topic " + t.Topic + " refused by Kafka: " + t.Reason
			}
		}
	}
	return m
}
