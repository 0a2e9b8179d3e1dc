package transfer

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// Consumer runs the consumer group.
type Consumer struct {
	opt      Options
	log      *logrus.Entry
	thr      *logging.Throttle
	prepared map[string]bool

	mu      sync.Mutex
	group   sarama.ConsumerGroup
	client  sarama.Client  // for reading a chunk's beginning (see gate)
	claims  map[string]int // topic/partition -> 1 while claimed
	joined  bool
	missing []string          // wanted topics Kafka does not have (yet)
	held    map[string]string // topics whose Prepare failed, with why

	consumed prometheus.Counter
	lag      *prometheus.GaugeVec
	absent   *prometheus.GaugeVec
	heldG    *prometheus.GaugeVec
	piped    *prometheus.CounterVec
	errs     prometheus.Counter
	waiting  prometheus.Gauge
}

// TopicRecheck is how often topics that Kafka does not have are looked up
// again (they are consumed as soon as they appear).
const TopicRecheck = 5 * time.Second

// NewConsumer returns a consumer; call Run.
func NewConsumer(opt Options, log *logrus.Entry, reg prometheus.Registerer) *Consumer {
	c := &Consumer{
		opt: opt, log: log.WithField("component", "consumer"), thr: logging.NewThrottle(10 * time.Second),
		prepared: map[string]bool{}, claims: map[string]int{},
		consumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_messages_consumed_total", Help: "Kafka records consumed (re-deliveries included)."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logtransfer_consumer_lag",
			Help: "Records in the partition after the last one consumed (high watermark - offset - 1)."}, []string{"topic", "partition"}),
		absent: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logtransfer_topic_missing",
			Help: "1 while a wanted topic does not exist in Kafka; the other topics are consumed meanwhile."}, []string{"topic"}),
		heldG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logtransfer_topic_held",
			Help: "1 while a topic is not consumed because its preparation (index template) fails; the other topics are consumed meanwhile."}, []string{"topic"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_consumer_errors_total",
			Help: "Errors the consumer group reported (a claim that could not start, a failed fetch or commit); logged at most every 10s."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logtransfer_claims_waiting_for_pipelines",
			Help: "Partitions held because a record names a custom pipeline and the custom pipelines are not loaded yet (etcd unreachable at start, no cached copy)."}),
		piped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logtransfer_pipeline_events_total",
			Help: "Records run through a processing pipeline, by pipeline and result (parsed; failed: indexed raw with error.message; dropped; over_budget: dead-lettered unmatched, the line would cost more than a document may; unknown: no such pipeline, indexed raw)."}, []string{"pipeline", "result"}),
	}
	for _, n := range pipeline.Builtins() {
		c.piped.WithLabelValues(n, "parsed")
		c.piped.WithLabelValues(n, "failed")
	}
	if reg != nil {
		reg.MustRegister(c.consumed, c.lag, c.absent, c.heldG, c.piped, c.errs, c.waiting)
	}
	return c
}

// SaramaConfig is the consumer group configuration for cfg.
func SaramaConfig(cfg config.Consumer, clientID string) *sarama.Config {
	c := sarama.NewConfig()
	kafka.NoMetrics(c)
	c.ClientID = clientID
	c.Version = kafka.Version(cfg.Version)
	c.Consumer.Offsets.Initial = kafka.InitialOffset(cfg.InitialOffset)
	c.Consumer.Offsets.AutoCommit.Enable = true
	c.Consumer.Offsets.AutoCommit.Interval = 500 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRoundRobin()}
	c.Consumer.Group.Session.Timeout = cfg.SessionTimeout
	c.Consumer.Group.Heartbeat.Interval = cfg.SessionTimeout / 3
	c.Consumer.Group.InstanceId = cfg.InstanceID
	// Fetches are sized in compressed bytes and decoded whole, and every
	// record's document keeps its decoded batch alive until Elasticsearch
	// acknowledged it: keep them modest so memory stays bounded even for
	// highly compressible logs. make bench (8 partitions, 2M records):
	// 64 KiB peaks at 70-78 MB RSS against 96-113 MB for 96-128 KiB, at
	// most a few per cent slower in docs/s (runs vary more than that).
	c.Consumer.Fetch.Default = 64 << 10
	c.Consumer.MaxProcessingTime = time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Net.DialTimeout = 5 * time.Second
	c.ChannelBufferSize = 64
	kafka.Secure(c, cfg.Security)
	return c
}

// Joined reports whether the consumer is a member of its group.
func (c *Consumer) Joined() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.joined
}

// Held lists the topics held back because their preparation failed, with
// the error.
func (c *Consumer) Held() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]string, len(c.held))
	for k, v := range c.held {
		out[k] = v
	}
	return out
}

func (c *Consumer) setHeld(held map[string]string) {
	c.mu.Lock()
	old := c.held
	c.held = held
	c.mu.Unlock()
	for t, why := range held {
		if _, was := old[t]; !was {
			c.log.WithField("topic", t).WithField("error", why).Error("cannot prepare topic (index template); consuming the others, retrying this one")
		}
		c.heldG.WithLabelValues(t).Set(1)
	}
	for t := range old {
		if _, still := held[t]; !still {
			c.log.WithField("topic", t).Info("topic prepared; consuming it")
			c.heldG.DeleteLabelValues(t)
		}
	}
}

// Missing lists the wanted topics Kafka does not have.
func (c *Consumer) Missing() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.missing...)
}

// existing splits topics into those Kafka's metadata lists and the rest
// (asking for all topics' metadata never creates one). On a metadata error
// it assumes every topic exists: Consume then reports what is wrong.
func (c *Consumer) existing(client sarama.Client, topics []string) (have, missing []string) {
	if err := client.RefreshMetadata(); err != nil {
		return topics, nil
	}
	all, err := client.Topics()
	if err != nil {
		return topics, nil
	}
	known := make(map[string]bool, len(all))
	for _, t := range all {
		known[t] = true
	}
	for _, t := range topics {
		if known[t] {
			have = append(have, t)
		} else {
			missing = append(missing, t)
		}
	}
	return have, missing
}

func (c *Consumer) setMissing(missing []string) {
	c.mu.Lock()
	old := c.missing
	c.missing = missing
	c.mu.Unlock()
	was := map[string]bool{}
	for _, t := range old {
		was[t] = true
	}
	for _, t := range missing {
		if !was[t] {
			c.log.WithField("topic", t).Warn("topic does not exist in Kafka; consuming the others, and this one once it appears")
		}
		delete(was, t)
		c.absent.WithLabelValues(t).Set(1)
	}
	for t := range was {
		c.log.WithField("topic", t).Info("topic now exists in Kafka; consuming it")
		c.absent.DeleteLabelValues(t)
	}
}

// releaseDrained releases the topics no collect config names any more
// once the group has committed every partition up to its end. It reports
// whether any was released.
func (c *Consumer) releaseDrained(client sarama.Client) bool {
	unnamed := c.opt.Topics.Unnamed()
	if len(unnamed) == 0 {
		return false
	}
	admin, err := sarama.NewClusterAdmin(c.opt.Kafka.Brokers, c.opt.Sarama)
	if err != nil {
		return false
	}
	defer admin.Close()
	released := false
	for _, tp := range unnamed {
		if c.drained(client, admin, tp) && c.opt.Topics.Release(tp) {
			released = true
		}
	}
	return released
}

// drained reports whether the group's committed offset of every partition
// of topic is at its end.
func (c *Consumer) drained(client sarama.Client, admin sarama.ClusterAdmin, topic string) bool {
	parts, err := client.Partitions(topic)
	if err != nil || len(parts) == 0 {
		return false
	}
	resp, err := admin.ListConsumerGroupOffsets(c.opt.Kafka.GroupID, map[string][]int32{topic: parts})
	if err != nil {
		return false
	}
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return false
		}
		b := resp.GetBlock(topic, p)
		if b == nil || b.Err != sarama.ErrNoError {
			return false
		}
		if end > 0 && b.Offset < end {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]bool, len(a))
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

// Claims lists the partitions this instance holds ("topic/partition").
func (c *Consumer) Claims() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.claims))
	for k := range c.claims {
		out = append(out, k)
	}
	return out
}

// Run consumes until ctx ends. At the end every claim waits (up to
// DrainTimeout) for its documents to be acknowledged, marks and commits.
func (c *Consumer) Run(ctx context.Context) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	var client sarama.Client
	for ctx.Err() == nil {
		var g sarama.ConsumerGroup
		cl, err := sarama.NewClient(c.opt.Kafka.Brokers, c.opt.Sarama)
		if err == nil {
			if g, err = sarama.NewConsumerGroupFromClient(c.opt.Kafka.GroupID, cl); err != nil {
				cl.Close()
			}
		}
		if err == nil {
			client = cl
			c.mu.Lock()
			c.group, c.client = g, cl
			c.mu.Unlock()
			break
		}
		c.thr.Log("connect", c.log.WithError(err), logrus.WarnLevel, "cannot reach Kafka; retrying")
		backoff.Sleep(ctx, bo.Next())
	}
	if client == nil {
		return nil // ctx ended before Kafka answered
	}
	defer client.Close()
	defer c.group.Close()
	go func() {
		for err := range c.group.Errors() {
			c.errs.Inc()
			c.thr.Log("group", c.log.WithError(err), logrus.WarnLevel, "consumer group error")
		}
	}()
	bo.Reset()
	heldBo := backoff.Backoff{Min: 200 * time.Millisecond, Max: TopicRecheck}
	for ctx.Err() == nil {
		select { // this List is the answer to any change so far
		case <-c.opt.Topics.Changed():
		default:
		}
		wanted := c.opt.Topics.List()
		existing, missing := c.existing(client, wanted)
		c.setMissing(missing)
		var topics []string
		held := map[string]string{}
		for _, t := range existing {
			if !c.prepared[t] && c.opt.Prepare != nil {
				if err := c.opt.Prepare(ctx, t); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					held[t] = err.Error()
					continue
				}
				c.prepared[t] = true
			}
			topics = append(topics, t)
		}
		c.setHeld(held)
		if len(topics) == 0 {
			wait := TopicRecheck
			if len(held) > 0 {
				// Nothing to consume but topics to prepare (Elasticsearch
				// down at start, most likely): retry sooner.
				wait = min(heldBo.Next(), TopicRecheck)
			}
			select {
			case <-ctx.Done():
			case <-c.opt.Topics.Changed():
			case <-time.After(wait):
			}
			continue
		}
		heldBo.Reset()
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			recheck := time.NewTicker(TopicRecheck)
			defer recheck.Stop()
			for {
				select {
				case <-c.opt.Topics.Changed():
					c.log.WithField("topics", c.opt.Topics.List()).Info("topic set changed; rejoining the group")
					cancel()
					return
				case <-recheck.C:
					if c.releaseDrained(client) {
						cancel() // rejoin without the released topics
						return
					}
					for t := range held {
						if c.opt.Prepare(cctx, t) == nil {
							c.log.WithField("topic", t).Info("a held topic could be prepared; rejoining the group")
							cancel()
							return
						}
					}
					if len(missing) == 0 {
						continue
					}
					if now, _ := c.existing(client, wanted); !sameSet(now, existing) {
						c.log.WithField("topics", now).Info("a missing topic appeared; rejoining the group")
						cancel()
						return
					}
				case <-cctx.Done():
					return
				}
			}
		}()
		err := c.group.Consume(cctx, topics, c)
		cancel()
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			c.thr.Log("consume", c.log.WithError(err), logrus.WarnLevel, "consume failed; retrying")
			backoff.Sleep(ctx, bo.Next())
			continue
		}
		bo.Reset()
	}
	return nil
}

// knowsPipeline reports whether a record naming pipeline name can be
// processed now, waiting (this claim only) while it names a custom
// pipeline and the custom pipelines are not loaded; false if ctx ended
// first.
func (c *Consumer) knowsPipeline(ctx context.Context, name []byte) bool {
	if c.opt.PipelinesReady == nil || c.opt.Pipelines == nil {
		return true
	}
	err := c.opt.PipelinesReady()
	if err == nil {
		return true
	}
	if _, builtin := pipeline.Builtin(string(name)); builtin {
		return true
	}
	c.waiting.Inc()
	defer c.waiting.Dec()
	c.thr.Log("pipelines", c.log.WithError(err).WithField("pipeline", string(name)), logrus.WarnLevel,
		"a record names a custom pipeline: holding its partition until the pipelines are known")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for c.opt.PipelinesReady() != nil {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}

// Setup is called at the start of a session (after every rebalance).
func (c *Consumer) Setup(s sarama.ConsumerGroupSession) error {
	c.mu.Lock()
	c.joined = true
	c.mu.Unlock()
	c.log.WithFields(logrus.Fields{"member": s.MemberID(), "generation": s.GenerationID(), "claims": s.Claims()}).Info("joined consumer group")
	return nil
}

// Cleanup commits the offsets marked during the session.
func (c *Consumer) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	c.mu.Lock()
	c.joined = false
	c.mu.Unlock()
	return nil
}
