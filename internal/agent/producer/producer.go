// Package producer moves events from the tailers into Kafka and reports
// every acknowledgement back to the event's Acker. Memory is bounded
// twice: the number of events queued or in flight (chan_max_size) and
// their bytes (buffer_bytes), from read to ack. A failed send is retried
// with backoff until it succeeds; while Kafka is down the bounds fill up
// and Send blocks, which pauses the tailers. Nothing is dropped.
//
// It speaks to the brokers through sarama's Client (metadata, SASL/TLS,
// connections) and Broker (produce requests), not through sarama's
// AsyncProducer: that one moves every message through several goroutines
// and channels, which cost more CPU per line than everything else the
// agent does. Here a batch (one read of a file, so one partition) is one
// run of records from start to ack; see engine.go.
package producer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/semaphore"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// Config is the producer's part of the agent config.
type Config struct {
	Kafka           config.Kafka
	MaxRecordBytes  int
	ShutdownTimeout time.Duration
	ClientID        string
	// Signer, if set, is the key each chunk (the records of a batch that
	// go in one record batch) is signed with (read once per batch, so a
	// rotated key takes over at the next one). It must
	// not return nil: the agent sends nothing before it has a key.
	Signer func() *record.SigningKey
	// Cluster, if set, stands in for Kafka (a simulation); nil: sarama
	// connects to Kafka.Brokers.
	Cluster func() (Cluster, error)
}

// Cluster is Kafka as a simulation presents it to the producer: metadata,
// and a connection to each partition's leader.
type Cluster interface {
	RefreshMetadata(topics ...string) error
	Partitions(topic string) ([]int32, error)
	Close() error
	Leader(topic string, partition int32) (Conn, error)
}

// Conn is a simulated broker connection. Produce takes the request and
// the record batches it carries (req's own are not readable outside
// sarama); it calls cb with the broker's answer, at most once, at any
// time (or never: a request in flight when the process dies).
type Conn interface {
	Produce(req *sarama.ProduceRequest, batches []Batch, cb sarama.ProduceCallback) error
	Close() error
}

// Batch is the record batch of one partition in a produce request.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*sarama.Record
}

// simCluster adapts a Cluster.
type simCluster struct{ Cluster }

func (c simCluster) Leader(topic string, partition int32) (conn, error) {
	cn, err := c.Cluster.Leader(topic, partition)
	if err != nil {
		return nil, err
	}
	return simConn{cn}, nil
}

type simConn struct{ Conn }

func (c simConn) produce(req *sarama.ProduceRequest, set *reqSet, cb sarama.ProduceCallback) error {
	bs := make([]Batch, 0, len(set.parts))
	for _, ps := range set.parts {
		b := Batch{Topic: ps.tp.topic, Partition: ps.tp.part}
		for _, c := range ps.chunks {
			for i := c.from; i < c.to; i++ {
				b.Records = append(b.Records, &c.st.slab.recs[i])
			}
		}
		bs = append(bs, b)
	}
	return c.Conn.Produce(req, bs, cb)
}

// metadata is what the topic gates use of sarama's Client.
type metadata interface {
	RefreshMetadata(topics ...string) error
	Partitions(topic string) ([]int32, error)
	Close() error
}

// cluster is what the producer uses of sarama's Client: metadata, and the
// connection to each partition's leader.
type cluster interface {
	metadata
	Leader(topic string, partition int32) (conn, error)
}

// conn is one broker connection: sarama's Broker. produce is its
// AsyncProduce (set is what req carries, for tests to look at).
type conn interface {
	produce(req *sarama.ProduceRequest, set *reqSet, cb sarama.ProduceCallback) error
	Close() error
}

type brokerConn struct{ *sarama.Broker }

func (b brokerConn) produce(req *sarama.ProduceRequest, _ *reqSet, cb sarama.ProduceCallback) error {
	return b.AsyncProduce(req, cb)
}

// connectFunc opens the client.
type connectFunc func(brokers []string, cfg *sarama.Config) (cluster, error)

type saramaCluster struct{ sarama.Client }

func (c saramaCluster) Leader(topic string, partition int32) (conn, error) {
	b, err := c.Client.Leader(topic, partition)
	if err != nil {
		return nil, err
	}
	return brokerConn{b}, nil
}

func connectSarama(brokers []string, cfg *sarama.Config) (cluster, error) {
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, err
	}
	return saramaCluster{client}, nil
}

// Producer is the agent's Kafka side.
type Producer struct {
	cfg Config
	// sigKey is the signature header's name and chunk the signature's
	// hash, reused (prepare runs on one goroutine).
	sigKey  []byte
	chunk   record.Chunk
	connect connectFunc // sarama's, or a test's
	log     *logrus.Entry
	thr     *logging.Throttle
	ch      chan *event.Batch
	bytes   *semaphore.Weighted // event value bytes, read to ack
	events  *semaphore.Weighted // events, read to ack
	max     int64
	ready   atomic.Bool
	m       *metrics
	gates   *gates

	// shares bound what one topic may hold of the bounds above (half
	// of each): a topic Kafka starts refusing while busy keeps retrying
	// what it holds, and the other half stays for the other topics.
	sharesMu sync.Mutex
	shares   map[string]*share

	inflight atomic.Int64  // events taken from ch, not yet acked
	starved  chan struct{} // a Send waits for the bounds: flush now
	slabs    sync.Pool     // of *slab, see messages
	reused   atomic.Uint64
}

type metrics struct {
	sent, acked, failed, retried prometheus.Counter
	inflight, bufBytes, queue    prometheus.GaugeFunc
	up                           prometheus.GaugeFunc
	latency                      prometheus.Histogram
	queued                       atomic.Int64 // events in the channel
	sentN                        atomic.Uint64
	buffered                     atomic.Int64 // bytes between read and ack
}

// New returns a producer; call Run, and Send from the tailers.
func New(cfg Config, log *logrus.Entry, reg prometheus.Registerer) *Producer {
	if cfg.ClientID == "" {
		cfg.ClientID = "logagent"
	}
	p := &Producer{
		cfg:     cfg,
		log:     log.WithField("component", "producer"),
		thr:     logging.NewThrottle(10 * time.Second),
		ch:      make(chan *event.Batch, max(cfg.Kafka.ChanMaxSize/16, 16)),
		bytes:   semaphore.NewWeighted(int64(cfg.Kafka.BufferBytes)),
		events:  semaphore.NewWeighted(int64(cfg.Kafka.ChanMaxSize)),
		max:     int64(cfg.Kafka.BufferBytes),
		m:       &metrics{},
		starved: make(chan struct{}, 1),
		shares:  map[string]*share{},
		sigKey:  []byte(record.HeaderSig),
	}
	p.connect = connectSarama
	if cfg.Cluster != nil {
		p.connect = func([]string, *sarama.Config) (cluster, error) {
			c, err := cfg.Cluster()
			if err != nil {
				return nil, err
			}
			return simCluster{c}, nil
		}
	}
	p.gates = newGates(p.log)
	gauge := func(name, help string, f func() float64) prometheus.GaugeFunc {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	p.m.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_sent_total", Help: "Events handed to the Kafka producer (re-sends included)."})
	p.m.acked = prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_acked_total", Help: "Events acknowledged by Kafka."})
	p.m.failed = prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_failed_total", Help: "Send attempts that failed (each is retried)."})
	p.m.retried = prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_retried_total", Help: "Events re-sent after a failure."})
	p.m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logagent_ack_latency_seconds",
		Help: "From a line being read to Kafka acknowledging it (one ack in 8 is timed).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)})
	p.m.inflight = gauge("logagent_events_inflight", "Events sent to Kafka and not yet acknowledged.", func() float64 { return float64(p.inflight.Load()) })
	p.m.bufBytes = gauge("logagent_buffer_bytes", "Bytes of events between read and Kafka ack.", func() float64 { return float64(p.m.buffered.Load()) })
	p.m.queue = gauge("logagent_queue_length", "Events waiting in the channel to the producer.", func() float64 { return float64(p.m.queued.Load()) })
	p.m.up = gauge("logagent_kafka_up", "1 while connected to Kafka and the last send succeeded.", func() float64 {
		if p.ready.Load() {
			return 1
		}
		return 0
	})
	if reg != nil {
		reg.MustRegister(p.m.sent, p.m.acked, p.m.failed, p.m.retried, p.m.inflight, p.m.bufBytes, p.m.queue, p.m.up, p.m.latency, p.gates.blocked)
	}
	return p
}

// Sent is how many events were handed to Kafka (re-sends included), less
// those of Background batches: it stands still while there is nothing to
// send but the agent's own scheduled documents.
func (p *Producer) Sent() uint64 { return p.m.sentN.Load() }

// Ready reports whether the producer is connected and its most recent send
// (if any) succeeded.
func (p *Producer) Ready() bool { return p.ready.Load() }

// eventSize is what one event costs besides its value: its slot in the
// batch, and once handed to sarama its message, value encoder, flight,
// headers and header bytes (see messages).
var (
	eventSlot  = int64(unsafe.Sizeof(event.Event{}))
	eventExtra = int64(unsafe.Sizeof(sarama.Record{})+unsafe.Sizeof((*sarama.Record)(nil))+
		event.MaxHeaders*(unsafe.Sizeof(sarama.RecordHeader{})+unsafe.Sizeof((*sarama.RecordHeader)(nil)))) + headerBytes + recordSlack
)

// recordSlack covers allocation size classes.
const recordSlack = 32

// headerBytes is the header bytes reserved per event in messages (the
// signature's included).
const headerBytes = 72 + record.SigLen

// cost is the memory a batch holds until its last event is acked, as
// counted against buffer_bytes: what its values pin (b.Bytes), the batch's
// event slots, and each event's message.
func (p *Producer) cost(b *event.Batch) int64 {
	return min(int64(b.Bytes)+int64(cap(b.Events))*eventSlot+int64(len(b.Events))*eventExtra, p.max)
}

func (p *Producer) eventCost(b *event.Batch) int64 {
	return min(int64(len(b.Events)), int64(p.cfg.Kafka.ChanMaxSize))
}

// Topics reports the state of every topic the tailers sent to.
func (p *Producer) Topics() []TopicStatus { return p.gates.status() }

// Send queues a batch, blocking while the event or byte bound is reached,
// and while Kafka refuses the batch's topic (see gates).
func (p *Producer) Send(ctx context.Context, b *event.Batch) error {
	if len(b.Events) > 0 {
		if err := p.gates.wait(ctx, b.Events[0].Source.Topic); err != nil {
			return err
		}
	}
	n, e := p.cost(b), p.eventCost(b)
	sh, se, sn := p.shareOf(b)
	if sh != nil {
		if err := p.acquire(ctx, sh.events, se); err != nil {
			return err
		}
		if err := p.acquire(ctx, sh.bytes, sn); err != nil {
			sh.events.Release(se)
			return err
		}
	}
	release := func() {
		if sh != nil {
			sh.release(se, sn)
		}
	}
	if err := p.acquire(ctx, p.events, e); err != nil {
		release()
		return err
	}
	if err := p.acquire(ctx, p.bytes, n); err != nil {
		p.events.Release(e)
		release()
		return err
	}
	select {
	case p.ch <- b:
		p.m.buffered.Add(n)
		p.m.queued.Add(int64(len(b.Events)))
		return nil
	case <-ctx.Done():
		p.bytes.Release(n)
		p.events.Release(e)
		release()
		return ctx.Err()
	}
}

// share is one topic's part of the event and byte bounds.
type share struct{ events, bytes *semaphore.Weighted }

func (s *share) release(events, bytes int64) {
	s.events.Release(events)
	s.bytes.Release(bytes)
}

// shareOf is b's topic's share and what b takes of it (nil when the bounds
// are too small to share). The same batch always gives the same answer:
// the last ack releases what Send took.
func (p *Producer) shareOf(b *event.Batch) (*share, int64, int64) {
	ev, by := int64(p.cfg.Kafka.ChanMaxSize)/2, p.max/2
	if len(b.Events) == 0 || ev < 1 || by < 1 {
		return nil, 0, 0
	}
	topic := b.Events[0].Source.Topic
	p.sharesMu.Lock()
	sh := p.shares[topic]
	if sh == nil {
		sh = &share{events: semaphore.NewWeighted(ev), bytes: semaphore.NewWeighted(by)}
		p.shares[topic] = sh
	}
	p.sharesMu.Unlock()
	return sh, min(p.eventCost(b), ev), min(p.cost(b), by)
}

// acquire takes n of sem, and tells route when it has to wait: with the
// bound reached nothing more comes until acknowledgements free it, so a
// request waiting to fill up would only wait for its flush timer.
func (p *Producer) acquire(ctx context.Context, sem *semaphore.Weighted, n int64) error {
	if sem.TryAcquire(n) {
		return nil
	}
	select {
	case p.starved <- struct{}{}:
	default:
	}
	return sem.Acquire(ctx, n)
}

func (p *Producer) saramaConfig() *sarama.Config {
	k := p.cfg.Kafka
	c := sarama.NewConfig()
	kafka.NoMetrics(c)
	c.ClientID = p.cfg.ClientID
	c.Version = kafka.Version(k.Version)
	c.Producer.RequiredAcks = kafka.Acks(k.RequiredAcks)
	c.Producer.Compression = kafka.Codec(k.Compression)
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Flush.Frequency = k.FlushInterval
	c.Producer.Flush.Bytes = k.FlushBytes
	c.Producer.MaxMessageBytes = max(p.cfg.MaxRecordBytes, 1<<20)
	c.Producer.Retry.Max = 3
	c.Producer.Retry.Backoff = 250 * time.Millisecond
	c.Producer.Timeout = 10 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 250 * time.Millisecond
	c.Metadata.RefreshFrequency = time.Minute
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 15 * time.Second
	c.Net.WriteTimeout = 15 * time.Second
	c.Net.MaxOpenRequests = 5
	c.ChannelBufferSize = 4096
	kafka.Secure(c, k.Security)
	return c
}

// Run sends until ctx ends, then waits up to ShutdownTimeout for events in
// flight to be acknowledged (events still in the channel are not sent:
// they were never acked, so they are read again after a restart).
func (p *Producer) Run(ctx context.Context) error {
	scfg := p.saramaConfig()
	if err := scfg.Validate(); err != nil {
		return fmt.Errorf("kafka config: %w", err)
	}
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: p.cfg.Kafka.RetryBackoffMax}
	var cl cluster
	for {
		var err error
		if cl, err = p.connect(p.cfg.Kafka.Brokers, scfg); err == nil {
			break
		}
		p.thr.Log("connect", p.log.WithError(err).WithField("brokers", p.cfg.Kafka.Brokers), logrus.WarnLevel, "cannot reach Kafka; retrying (reading pauses when the buffer is full)")
		if !backoff.Sleep(ctx, bo.Next()) {
			return nil
		}
	}
	p.log.WithField("brokers", p.cfg.Kafka.Brokers).Info("connected to Kafka")
	p.ready.Store(true)
	defer p.ready.Store(false)

	e := p.newEngine(cl, scfg)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); e.settle(stop) }()
	go func() { defer wg.Done(); e.refresher(stop) }()
	go func() { defer wg.Done(); p.gates.probe(ctx, cl) }()
	e.route(ctx)

	// Drain: send what was taken from the channel, and wait for what is in
	// flight, bounded.
	deadline := time.Now().Add(p.cfg.ShutdownTimeout)
	late := make(chan struct{})
	lateTimer := time.AfterFunc(p.cfg.ShutdownTimeout, func() { close(late) })
	defer lateTimer.Stop()
	e.flushAll(late)
	if n := p.inflight.Load(); n > 0 {
		p.log.WithField("inflight", n).Info("waiting for Kafka to acknowledge in-flight events")
		for p.inflight.Load() > 0 && time.Now().Before(deadline) {
			// Keep re-sending retries that come due meanwhile.
			select {
			case c := <-e.retries:
				p.m.retried.Add(float64(c.to - c.from))
				e.place(c, late)
				e.flushAll(late)
			case <-time.After(10 * time.Millisecond):
			}
		}
		if n := p.inflight.Load(); n > 0 {
			p.log.WithField("inflight", n).Warn("shutdown timeout: in-flight events not acknowledged; they will be read again after restart")
		}
	}
	for _, s := range e.senders {
		close(s.in)
	}
	closed := make(chan struct{})
	go func() {
		e.sendWG.Wait()
		_ = cl.Close()
		close(stop)
		wg.Wait()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		p.log.Warn("Kafka producer did not close in time")
	}
	return nil
}
