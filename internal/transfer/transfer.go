// Package transfer consumes the agents' topics with a sarama consumer
// group and hands one document per record to the Elasticsearch writer. A
// partition's offset is marked only up to the contiguous prefix of records
// whose documents Elasticsearch acknowledged (or that went to the dead-letter
// topic), so a crash or a rebalance re-delivers, never skips; re-delivered
// documents carry the same _id and overwrite their earlier copy.
package transfer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// Submitter takes documents, all or (when ctx ends first) none of them,
// and owns the slice from then on; it blocks while the writer is full.
type Submitter interface {
	Submit(ctx context.Context, docs []*eswriter.Doc) error
}

// maxSubmit is the most documents a claim hands the writer at once: what
// its partition consumer had buffered, up to this.
const maxSubmit = 256

// Options configure a Consumer.
type Options struct {
	Kafka  config.Consumer
	Sarama *sarama.Config
	Index  *index.Name
	Topics *Topics
	Out    Submitter
	// Prepare runs once per topic before it is first consumed (template
	// installation). It makes one attempt: a topic whose Prepare fails is
	// held back and retried every TopicRecheck while the others are
	// consumed.
	Prepare func(ctx context.Context, topic string) error
	// MaxFuture bounds how far past the record's Kafka timestamp its
	// index-time stamp may be and still pick its daily index (0:
	// unbounded); MaxAge likewise before it. A record outside is placed by
	// its Kafka timestamp, marked with event.timestamp_out_of_range.
	MaxFuture, MaxAge time.Duration
	// Pipelines resolves the records' pipeline headers (nil: built-ins
	// only).
	Pipelines *pipeline.Set
	// PipelinesReady, if set, says whether the custom pipelines are known
	// (nil) or not yet: a record naming a pipeline that is not built in
	// then holds its partition until they are (indexed now, it would be
	// indexed unprocessed, for good); the other partitions flow.
	PipelinesReady func() error
	// Verify, if set, checks each record's origin before anything else is
	// done with it.
	Verify Verifier
	// DrainTimeout bounds the wait, when a partition is revoked or at
	// shutdown, for its in-flight documents to be acknowledged.
	DrainTimeout time.Duration
}

// Verifier tells an agent's records from forgeries (keyring.Ring).
type Verifier interface {
	// Check fills out[i] with whether msgs[i] is indexed or quarantined,
	// and whether it carries a verified signature. msgs are consecutive
	// records of one partition, views their parsed headers: either a
	// chunk, whose signature is on the last record, or one record that no
	// signature covers (see gate). It may wait (this claim only) while it
	// cannot tell yet; false if ctx ended first. round is when the claim
	// took the records in hand; ch is the claim's.
	Check(ctx context.Context, msgs []*sarama.ConsumerMessage, views []record.View, round time.Time, ch *record.Chunk, out []record.Verdict) bool
}

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

// ConsumeClaim turns one partition's records into documents and marks the
// acknowledged prefix every 100ms (also while the writer is full) and at
// the end.
func (c *Consumer) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	topic, part := claim.Topic(), claim.Partition()
	key := topic + "/" + strconv.Itoa(int(part))
	c.mu.Lock()
	c.claims[key] = 1
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.claims, key)
		c.mu.Unlock()
	}()
	lag := c.lag.WithLabelValues(topic, strconv.Itoa(int(part)))
	tr := acktrack.New(claim.InitialOffset())
	var markMu sync.Mutex
	marked := int64(-1)
	mark := func() {
		markMu.Lock()
		defer markMu.Unlock()
		if acked, _, _ := tr.State(); acked > marked && acked >= 0 {
			s.MarkOffset(topic, part, acked, "")
			marked = acked
		}
	}
	// Marks run on their own clock, so that what Elasticsearch acknowledges
	// is marked even while Submit waits for a stalled writer.
	stopMarks := make(chan struct{})
	marksDone := make(chan struct{})
	go func() {
		defer close(marksDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				mark()
			case <-stopMarks:
				return
			}
		}
	}()
	ctx := s.Context()
	var st claimState
	st.gate.first = -1
	msgs := claim.Messages()
	var wait *time.Timer // while records are held (see gate)
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	last := (*sarama.ConsumerMessage)(nil)
loop:
	for {
		var msg *sarama.ConsumerMessage
		var ok bool
		if len(st.gate.held) == 0 {
			select {
			case msg, ok = <-msgs:
			case <-ctx.Done():
				break loop
			}
		} else {
			if wait == nil {
				wait = time.NewTimer(heldWait)
			} else {
				wait.Reset(heldWait)
			}
			st.gate.clock.arm(time.Now())
			select {
			case msg, ok = <-msgs:
			case <-ctx.Done():
				break loop
			case <-wait.C:
				// Nothing came for heldWait: a record that came meanwhile
				// goes first; else the held records are judged alone if
				// the gate's clock says so (see heldClock), and waited for
				// again if not.
				select {
				case msg, ok = <-msgs:
				default:
					msg, ok = nil, true
					if !st.gate.clock.expired(time.Now(), last.Offset+1 >= claim.HighWaterMarkOffset()) {
						wait.Stop()
						continue loop
					}
				}
			}
			wait.Stop()
		}
		if msg != nil {
			st.gate.clock.reset()
		}
		if !ok {
			break loop
		}
		// Take what else is buffered without blocking: one submission, one
		// counter update and one registration with the tracker (one lock)
		// per round instead of per record; the registration comes before
		// the submission, so no document can be acknowledged before it.
		var docs []*eswriter.Doc
		st.ends, st.done, st.pos = st.ends[:0], st.done[:0], st.pos[:0]
		st.gate.ready = st.gate.ready[:0]
		if c.opt.Verify != nil {
			st.round = time.Now()
		}
		n, closed := 0, false
		if msg == nil { // the wait for held records ran out
			if !c.release(ctx, &st, len(st.gate.held)) {
				break loop
			}
		}
		for msg != nil {
			n++
			last = msg
			if !c.take(ctx, msg, &st) {
				break loop // ctx ended: this round's records are not registered, so they come again
			}
			if len(st.gate.ready) >= maxSubmit {
				break
			}
			select {
			case msg, ok = <-msgs:
				if ok {
					continue
				}
				closed = true
			default:
			}
			break
		}
		// Everything below the high-water mark taken: no record still to
		// come completes a held chunk (see gate).
		if len(st.gate.held) > 0 && !closed && last.Offset+1 >= claim.HighWaterMarkOffset() {
			if !c.release(ctx, &st, len(st.gate.held)) {
				break loop
			}
		}
		for i := range st.gate.ready {
			r := &st.gate.ready[i]
			d, ok := c.document(ctx, r, &st)
			if !ok {
				break loop // ctx ended: this round's records are not registered, so they come again
			}
			st.ends = append(st.ends, r.end)
			st.done = append(st.done, d == nil) // dropped by its pipeline: done at once
			if d != nil {
				if docs == nil {
					docs = make([]*eswriter.Doc, 0, min(len(st.gate.ready), maxSubmit))
				}
				d.Acker = tr
				docs = append(docs, d)
				st.pos = append(st.pos, uint64(i))
			}
		}
		clear(st.gate.ready)
		if len(st.ends) > 0 {
			first := tr.EmitBatch(st.ends, st.done)
			for i, d := range docs {
				d.Seq = first + st.pos[i]
			}
		}
		c.consumed.Add(float64(n))
		if last != nil {
			lag.Set(float64(claim.HighWaterMarkOffset() - last.Offset - 1))
		}
		// A judged chunk can make a round longer than maxSubmit: handed on
		// in pieces of at most maxSubmit.
		for len(docs) > 0 {
			piece := docs[:min(len(docs), maxSubmit):min(len(docs), maxSubmit)]
			docs = docs[len(piece):]
			if err := c.opt.Out.Submit(ctx, piece); err != nil {
				tr.Retract(piece[0].Seq)
				break loop
			}
		}
		if closed {
			break loop
		}
	}
	close(stopMarks)
	<-marksDone
	// Give in-flight documents a bounded time to be acknowledged, so the
	// commit at Cleanup covers them and the next owner does not index them
	// again.
	deadline := time.Now().Add(c.opt.DrainTimeout)
	for {
		mark()
		if _, _, n := tr.State(); n == 0 || time.Now().After(deadline) {
			if n > 0 {
				c.log.WithFields(logrus.Fields{"topic": topic, "partition": part, "inflight": n}).Warn("leaving partition with unacknowledged documents; they will be delivered again")
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.Kill()
	return nil
}

// claimState is per-partition scratch state for building documents.
type claimState struct {
	fields    fieldsCache
	indexKey  int64 // the Period indexName was computed for
	indexName string
	res       pipeline.Result
	extra     []byte
	slab      []source // sources not yet handed out
	// ends, done and pos are a round's scratch for the tracker: each
	// record's end offset, whether it is done already (no document), and
	// each document's place among the records.
	ends []int64
	done []bool
	pos  []uint64
	ids  idArena
	// round is when this round's first record was taken in hand; gate
	// holds records until their chunk's signature is in (see gate).
	round time.Time
	gate  gate
	// piped caches the outcome counters of each pipeline met (names are
	// those that resolved to a pipeline: a bounded set).
	piped map[string]*pipeCounters
}

type pipeCounters struct{ parsed, failed, dropped, overBudget prometheus.Counter }

// document builds msg's document (nil: none, dropped by its pipeline);
// false if ctx ended while the record waited for its pipeline.
func (c *Consumer) document(ctx context.Context, r *gated, st *claimState) (*eswriter.Doc, bool) {
	msg, meta := r.msg, r.view
	ts := eventTime(msg) // read time
	docTime, message := ts, msg.Value
	var res *pipeline.Result
	signed := false
	if c.opt.Verify != nil {
		v := r.verdict
		if reason := v.Quarantine; reason != "" {
			// Not indexed, and before its pipeline (which could take it
			// as its own): kept apart with the reason.
			return &eswriter.Doc{ID: docID(msg, &meta, st), Body: []byte{}, Time: ts, Origin: msg, Topic: msg.Topic, Reject: reason, Quarantine: true}, true
		}
		signed = v.Signed
		if signed {
			// The host is the key's (the agent leaves it out of its
			// records; one that names it was checked to name the key's).
			meta.HostName, meta.HostIP = v.HostName, v.HostIP
		}
	}
	if len(meta.Pipeline) > 0 && !c.knowsPipeline(ctx, meta.Pipeline) {
		return nil, false
	}
	if len(meta.Pipeline) > 0 {
		res = &st.res
		res.Reset()
		c.runPipeline(meta.Pipeline, msg.Value, ts, res, st)
		if !res.Time.IsZero() {
			docTime = res.Time
		}
		if res.Drop {
			return nil, true // a drop processor: not indexed
		}
		if res.HasMessage {
			message = res.Message
		}
	}
	// The index is a function of the record alone (see placeTime): never
	// of the pipeline in force, whether pipelines are loaded, the clock or
	// when the record is consumed, so every delivery of a record, and every
	// copy of a line the agent re-sent, meets its _id in one index.
	idxTime, out := c.placeTime(msg, meta.IndexTime, signed)
	if key := c.opt.Index.Period(idxTime); key != st.indexKey || st.indexName == "" {
		st.indexKey, st.indexName = key, c.opt.Index.Name(msg.Topic, idxTime)
	}
	extra := st.fields.fragment(meta.Fields)
	if res != nil || out != "" {
		extra = append(st.extra[:0], extra...)
		if res != nil {
			extra = append(extra, res.Fragment()...)
		}
		parsedTime := res != nil && !res.Time.IsZero()
		if parsedTime || out != "" {
			extra = append(extra, `,"event":{`...)
			if parsedTime { // @timestamp is the line's; keep when it was read
				extra = append(extra, `"created":"`...)
				extra = jsonenc.AppendTime(extra, ts)
				extra = append(extra, '"')
			}
			if out != "" {
				if parsedTime {
					extra = append(extra, ',')
				}
				extra = append(extra, `"timestamp_out_of_range":"`...)
				extra = append(extra, out...)
				extra = append(extra, '"')
			}
			extra = append(extra, '}')
		}
		if res != nil && res.Err != "" {
			extra = append(extra, `,"error":{"message":`...)
			extra = jsonenc.AppendString(extra, res.Err)
			extra = append(extra, '}')
		}
		st.extra = extra
	}
	h := headOf(&meta)
	if res == nil && out == "" {
		// Rendered when sent (see source); sources come from a per-claim
		// slab, so most documents cost no allocation of their own.
		if len(st.slab) == 0 {
			st.slab = make([]source, sourceSlab)
		}
		s := &st.slab[0]
		st.slab = st.slab[1:]
		*s = source{msg: msg, head: h, extra: extra}
		s.Doc = eswriter.Doc{Index: st.indexName, ID: docID(msg, &meta, st), Src: s, SrcSize: len(msg.Value) + 320 + len(extra), Time: ts, Origin: msg, Topic: msg.Topic}
		return &s.Doc, true
	}
	d := &eswriter.Doc{
		Index:  st.indexName,
		ID:     docID(msg, &meta, st),
		Body:   appendDoc(make([]byte, 0, len(msg.Value)+320+len(extra)), msg, message, &h, docTime, extra),
		Time:   ts,
		Origin: msg,
		Topic:  msg.Topic,
	}
	if res != nil && res.OverBudget {
		// Not matched at all (that would hold up the records behind it):
		// dead-lettered with the reason, never indexed.
		d.Reject = "pipeline " + strconv.Quote(string(meta.Pipeline)) + ": " + res.Err
	}
	return d, true
}

// sourceSlab is how many sources a claim allocates at once: a slab lives
// while any of its documents waits, so it is kept small.
const sourceSlab = 64

// runPipeline runs the pipeline named name over line into res, and counts
// the outcome. A name that is not a pipeline leaves the line raw, with an
// error saying so.
func (c *Consumer) runPipeline(name, line []byte, read time.Time, res *pipeline.Result, st *claimState) {
	var f pipeline.Func
	var ok bool
	if c.opt.Pipelines != nil {
		f, ok = c.opt.Pipelines.Lookup(name)
	} else {
		f, ok = pipeline.Builtin(string(name))
	}
	if !ok {
		res.Fail("unknown pipeline " + strconv.Quote(string(name)))
		c.piped.WithLabelValues("unknown", "unknown").Inc()
		return
	}
	f(line, read, res)
	pc := st.piped[string(name)]
	if pc == nil {
		n := string(name)
		pc = &pipeCounters{parsed: c.piped.WithLabelValues(n, "parsed"), failed: c.piped.WithLabelValues(n, "failed"), dropped: c.piped.WithLabelValues(n, "dropped"),
			overBudget: c.piped.WithLabelValues(n, "over_budget")}
		if st.piped == nil {
			st.piped = map[string]*pipeCounters{}
		}
		st.piped[n] = pc
	}
	switch {
	case res.OverBudget:
		pc.overBudget.Inc()
	case res.Err != "":
		pc.failed.Inc()
	case res.Drop:
		pc.dropped.Inc()
	default:
		pc.parsed.Inc()
	}
}

// undated places records that carry no time at all (no Kafka timestamp):
// the Unix epoch's day, the same on every delivery.
var undated = time.Unix(0, 0).UTC()

// placeTime is the time that picks a record's daily index, from the record
// alone. A signed record (verified: its agent wrote the stamp, and nobody
// can change it) is placed by its index-time stamp, the same for every
// copy of a line: its Kafka timestamp is not signed, and a copy of the
// record produced again with another one must still meet its _id in one
// index, and create no index of its own. Other records are placed by their
// stamp when it lies within MaxAge before and MaxFuture after the record's
// Kafka timestamp, else by the Kafka timestamp (with the bound it crossed),
// else on the epoch's day ("undated"); what bounds the indices they can
// make is the Kafka timestamp, when the broker gives it (topics with
// message.timestamp.type=LogAppendTime). A line's own time, parsed by a
// pipeline, goes to @timestamp and never picks the index.
func (c *Consumer) placeTime(msg *sarama.ConsumerMessage, stamp time.Time, signed bool) (time.Time, string) {
	if signed && !stamp.IsZero() {
		return stamp, ""
	}
	kts, ok := recordTime(msg)
	switch {
	case !ok:
		return undated, "undated"
	case stamp.IsZero():
		return kts, ""
	case c.opt.MaxFuture > 0 && stamp.After(kts.Add(c.opt.MaxFuture)):
		return kts, "future"
	case c.opt.MaxAge > 0 && stamp.Before(kts.Add(-c.opt.MaxAge)):
		return kts, "past"
	}
	return stamp, ""
}

// DeadLetter publishes rejected documents' source records to
// <topic><suffix> with the reason in the "dlq.reason" header, and
// quarantined ones (eswriter.Doc.Quarantine) to <topic><quarantine
// suffix> likewise.
type DeadLetter struct {
	brokers []string
	cfg     *sarama.Config
	suffix  string
	qsuffix string
	mu      sync.Mutex
	p       sarama.SyncProducer
}

// NewDeadLetter returns a dead-letter target for the brokers, version,
// dead-letter suffix and security (TLS, SASL) of cfg; it connects on first
// use.
func NewDeadLetter(cfg config.Consumer) *DeadLetter {
	c := sarama.NewConfig()
	kafka.NoMetrics(c)
	c.ClientID = "logtransfer-dlq"
	c.Version = kafka.Version(cfg.Version)
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Max = 3
	c.Net.DialTimeout = 5 * time.Second
	kafka.Secure(c, cfg.Security)
	return &DeadLetter{brokers: cfg.Brokers, cfg: c, suffix: cfg.DLQSuffix, qsuffix: cfg.QuarantineSuffix}
}

// Send implements eswriter.DeadLetter.
func (d *DeadLetter) Send(_ context.Context, doc *eswriter.Doc, reason string) error {
	msg, ok := doc.Origin.(*sarama.ConsumerMessage)
	if !ok {
		return fmt.Errorf("document %s has no source record", doc.ID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p == nil {
		p, err := sarama.NewSyncProducer(d.brokers, d.cfg)
		if err != nil {
			return fmt.Errorf("connecting dead-letter producer: %w", err)
		}
		d.p = p
	}
	headers := make([]sarama.RecordHeader, 0, len(msg.Headers)+4)
	for _, h := range msg.Headers {
		if h != nil {
			headers = append(headers, *h)
		}
	}
	headers = append(headers,
		sarama.RecordHeader{Key: []byte("dlq.reason"), Value: []byte(reason)},
		sarama.RecordHeader{Key: []byte("dlq.index"), Value: []byte(doc.Index)},
		sarama.RecordHeader{Key: []byte("dlq.id"), Value: []byte(doc.ID)},
		sarama.RecordHeader{Key: []byte("dlq.source"), Value: []byte(fmt.Sprintf("%s/%d/%d", msg.Topic, msg.Partition, msg.Offset))},
	)
	suffix := d.suffix
	if doc.Quarantine {
		suffix = d.qsuffix
	}
	_, _, err := d.p.SendMessage(&sarama.ProducerMessage{
		Topic: msg.Topic + suffix, Key: sarama.ByteEncoder(msg.Key), Value: sarama.ByteEncoder(msg.Value),
		Headers: headers, Timestamp: msg.Timestamp,
	})
	if err != nil {
		return fmt.Errorf("producing to %s%s: %w", msg.Topic, suffix, err)
	}
	return nil
}

// Close closes the producer.
func (d *DeadLetter) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p == nil {
		return nil
	}
	return d.p.Close()
}
