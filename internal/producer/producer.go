// Package producer moves events from the tailers into Kafka with a sarama
// AsyncProducer and reports every acknowledgement back to the event's
// Acker. Memory is bounded twice: the number of events queued or in flight
// (chan_max_size) and their bytes (buffer_bytes), from read to ack. A
// failed send is retried with backoff until it succeeds; while Kafka is
// down the bounds fill up and Send blocks, which pauses the tailers.
// Nothing is dropped.
//
// Events arrive in batches (one read of a file); the producer builds the
// sarama messages, their headers and encoders for a whole batch in a few
// allocations, and three goroutines keep the hot path free of selects: a
// feeder that pushes messages into sarama, one that takes acknowledgements
// and one that schedules retries.
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

	"github.com/logpipe/logpipe/internal/backoff"
	"github.com/logpipe/logpipe/internal/config"
	"github.com/logpipe/logpipe/internal/logging"
	"github.com/logpipe/logpipe/internal/record"
)

// Config is the producer's part of the agent config.
type Config struct {
	Kafka           config.Kafka
	MaxRecordBytes  int
	ShutdownTimeout time.Duration
	ClientID        string
}

// asyncProducer is what the producer uses of sarama's AsyncProducer.
type asyncProducer interface {
	Input() chan<- *sarama.ProducerMessage
	Successes() <-chan *sarama.ProducerMessage
	Errors() <-chan *sarama.ProducerError
	AsyncClose()
}

// metadata is what the topic gates use of sarama's Client.
type metadata interface {
	RefreshMetadata(topics ...string) error
	Partitions(topic string) ([]int32, error)
	Close() error
}

// connectFunc opens the producer and the client behind it.
type connectFunc func(brokers []string, cfg *sarama.Config) (asyncProducer, metadata, error)

func connectSarama(brokers []string, cfg *sarama.Config) (asyncProducer, metadata, error) {
	client, err := sarama.NewClient(brokers, cfg)
	if err != nil {
		return nil, nil, err
	}
	ap, err := sarama.NewAsyncProducerFromClient(client)
	if err != nil {
		client.Close()
		return nil, nil, err
	}
	return ap, client, nil
}

// Producer is the agent's Kafka side.
type Producer struct {
	cfg     Config
	connect connectFunc // sarama's, or a test's
	log     *logrus.Entry
	thr     *logging.Throttle
	ch      chan *record.Batch
	bytes   *semaphore.Weighted // event value bytes, read to ack
	events  *semaphore.Weighted // events, read to ack
	max     int64
	ready   atomic.Bool
	m       *metrics
	gates   *gates

	inflight atomic.Int64 // messages handed to sarama, not yet acked
	slabs    sync.Pool    // of *slab, see messages
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
		cfg:    cfg,
		log:    log.WithField("component", "producer"),
		thr:    logging.NewThrottle(10 * time.Second),
		ch:     make(chan *record.Batch, max(cfg.Kafka.ChanMaxSize/16, 16)),
		bytes:  semaphore.NewWeighted(int64(cfg.Kafka.BufferBytes)),
		events: semaphore.NewWeighted(int64(cfg.Kafka.ChanMaxSize)),
		max:    int64(cfg.Kafka.BufferBytes),
		m:      &metrics{},
	}
	p.connect = connectSarama
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

// Sent is how many events were handed to Kafka (re-sends included): it
// stands still while there is nothing to send.
func (p *Producer) Sent() uint64 { return p.m.sentN.Load() }

// Ready reports whether the producer is connected and its most recent send
// (if any) succeeded.
func (p *Producer) Ready() bool { return p.ready.Load() }

// eventSize is what one event costs besides its value: its slot in the
// batch, and once handed to sarama its message, value encoder, flight,
// headers and header bytes (see messages).
var (
	eventSlot  = int64(unsafe.Sizeof(record.Event{}))
	eventExtra = int64(unsafe.Sizeof(sarama.ProducerMessage{})+unsafe.Sizeof(flight{})+
		unsafe.Sizeof(sarama.ByteEncoder(nil))+record.MaxHeaders*unsafe.Sizeof(sarama.RecordHeader{})) + headerBytes + saramaSlack
)

// saramaSlack covers allocation size classes and sarama's own per-message
// state while a message is in flight.
const saramaSlack = 128

// headerBytes is the header bytes reserved per event in messages.
const headerBytes = 72

// cost is the memory a batch holds until its last event is acked, as
// counted against buffer_bytes: what its values pin (b.Bytes), the batch's
// event slots, and each event's message.
func (p *Producer) cost(b *record.Batch) int64 {
	return min(int64(b.Bytes)+int64(cap(b.Events))*eventSlot+int64(len(b.Events))*eventExtra, p.max)
}

func (p *Producer) eventCost(b *record.Batch) int64 {
	return min(int64(len(b.Events)), int64(p.cfg.Kafka.ChanMaxSize))
}

// Topics reports the state of every topic the tailers sent to.
func (p *Producer) Topics() []TopicStatus { return p.gates.status() }

// Send queues a batch, blocking while the event or byte bound is reached,
// and while Kafka refuses the batch's topic (see gates).
func (p *Producer) Send(ctx context.Context, b *record.Batch) error {
	if len(b.Events) > 0 {
		if err := p.gates.wait(ctx, b.Events[0].Source.Topic); err != nil {
			return err
		}
	}
	n, e := p.cost(b), p.eventCost(b)
	if err := p.events.Acquire(ctx, e); err != nil {
		return err
	}
	if err := p.bytes.Acquire(ctx, n); err != nil {
		p.events.Release(e)
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
		return ctx.Err()
	}
}

func (p *Producer) saramaConfig() *sarama.Config {
	k := p.cfg.Kafka
	c := sarama.NewConfig()
	config.NoSaramaMetrics(c)
	c.ClientID = p.cfg.ClientID
	c.Version = k.Version
	c.Producer.RequiredAcks = k.RequiredAcks
	c.Producer.Compression = k.Compression
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = newPathPartitioner
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
	k.Security.Apply(c)
	return c
}

// flight is what sarama carries for one message: the event, and the batch
// it came from (the bounds are released per batch, when its last event is
// acknowledged).
type flight struct {
	ev       *record.Event
	batch    *batchState
	attempts int
}

type batchState struct {
	left   atomic.Int64
	bytes  int64
	events int64
	slab   *slab
	batch  *record.Batch
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
	var (
		client metadata
		ap     asyncProducer
	)
	for {
		var err error
		if ap, client, err = p.connect(p.cfg.Kafka.Brokers, scfg); err == nil {
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

	retries := make(chan *sarama.ProducerMessage, 1024)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.acks(ap) }()
	go func() { defer wg.Done(); p.failures(ap, retries) }()
	probeCtx, stopProbe := context.WithCancel(context.Background())
	probed := make(chan struct{})
	go func() { defer close(probed); p.gates.probe(probeCtx, client) }()
	defer func() { stopProbe(); <-probed; client.Close() }()
	p.feed(ctx, ap, retries)

	// Drain: wait for what is in flight, bounded.
	if n := p.inflight.Load(); n > 0 {
		p.log.WithField("inflight", n).Info("waiting for Kafka to acknowledge in-flight events")
		deadline := time.Now().Add(p.cfg.ShutdownTimeout)
		for p.inflight.Load() > 0 && time.Now().Before(deadline) {
			// Keep re-sending retries that come due meanwhile.
			select {
			case m := <-retries:
				p.m.retried.Inc()
				select {
				case ap.Input() <- m:
				case <-time.After(time.Until(deadline)):
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
		if n := p.inflight.Load(); n > 0 {
			p.log.WithField("inflight", n).Warn("shutdown timeout: in-flight events not acknowledged; they will be read again after restart")
		}
	}
	ap.AsyncClose()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		p.log.Warn("Kafka producer did not close in time")
	}
	return nil
}

// feed turns batches into sarama messages until ctx ends. Retries go in
// before new batches.
func (p *Producer) feed(ctx context.Context, ap asyncProducer, retries <-chan *sarama.ProducerMessage) {
	input := ap.Input()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-retries:
			p.m.retried.Inc()
			select {
			case input <- m:
			case <-ctx.Done():
				return
			}
		case b := <-p.ch:
			p.m.queued.Add(-int64(len(b.Events)))
			msgs := p.messages(b)
			p.inflight.Add(int64(len(msgs)))
			for i := range msgs {
				select { // fast path: sarama has room (no full select per message)
				case input <- &msgs[i]:
					continue
				default:
				}
				select {
				case input <- &msgs[i]:
				case <-ctx.Done():
					// Never handed over: not in flight, never acked.
					p.inflight.Add(-int64(len(msgs) - i))
					return
				}
			}
			p.m.sent.Add(float64(len(msgs)))
			p.m.sentN.Add(uint64(len(msgs)))
		}
	}
}

// slab is the memory of one batch's sarama messages: the messages, what
// they carry, their headers and the header bytes. Slabs of full batches
// are reused once the batch is acknowledged: at full speed they are most
// of what the agent allocates, and every byte not allocated is a byte the
// garbage collector does not chase.
type slab struct {
	msgs    []sarama.ProducerMessage
	flights []flight
	vals    []sarama.ByteEncoder
	hdrs    []sarama.RecordHeader
	buf     []byte
}

// slabEvents is the capacity of a reused slab. Batches of fewer than
// three quarters as many events get a slab of their own: a trickle from
// many files must not pin full-size slabs, and buffer_bytes counts the
// slab per event (TestMessageMemoryIsCounted).
const slabEvents = 1024

func (p *Producer) slab(n, nh int) *slab {
	if n < slabEvents*3/4 || n > slabEvents {
		return &slab{
			msgs:    make([]sarama.ProducerMessage, n),
			flights: make([]flight, n),
			vals:    make([]sarama.ByteEncoder, n),
			hdrs:    make([]sarama.RecordHeader, 0, nh),
			buf:     make([]byte, 0, n*headerBytes),
		}
	}
	sl, _ := p.slabs.Get().(*slab)
	if sl != nil {
		p.reused.Add(1)
	} else {
		sl = &slab{
			msgs:    make([]sarama.ProducerMessage, slabEvents),
			flights: make([]flight, slabEvents),
			vals:    make([]sarama.ByteEncoder, slabEvents),
			buf:     make([]byte, 0, slabEvents*headerBytes),
		}
	}
	if cap(sl.hdrs) < nh {
		sl.hdrs = make([]sarama.RecordHeader, 0, max(nh, slabEvents*3))
	}
	sl.msgs, sl.flights, sl.vals = sl.msgs[:n], sl.flights[:n], sl.vals[:n]
	sl.hdrs, sl.buf = sl.hdrs[:0], sl.buf[:0]
	return sl
}

// recycle takes back the slab of an acknowledged batch. What it points to
// (values, events, ackers) is cleared so that the pool pins nothing else.
func (p *Producer) recycle(sl *slab) {
	if cap(sl.msgs) != slabEvents {
		return
	}
	clear(sl.msgs)
	clear(sl.flights)
	clear(sl.vals)
	p.slabs.Put(sl)
}

// messages builds the sarama messages of a batch in a handful of
// allocations, or none when a slab is reused.
func (p *Producer) messages(b *record.Batch) []sarama.ProducerMessage {
	n := len(b.Events)
	nh := 0
	for i := range b.Events {
		nh += b.Events[i].HeaderCount()
	}
	sl := p.slab(n, nh)
	st := &batchState{bytes: p.cost(b), events: p.eventCost(b), slab: sl, batch: b}
	st.left.Store(int64(n))
	msgs, flights, vals, hdrs, buf := sl.msgs, sl.flights, sl.vals, sl.hdrs, sl.buf
	for i := range b.Events {
		ev := &b.Events[i]
		start := len(hdrs)
		hdrs, buf = ev.AppendHeaders(hdrs, buf)
		vals[i] = ev.Value
		flights[i] = flight{ev: ev, batch: st}
		msgs[i] = sarama.ProducerMessage{
			Topic:     ev.Source.Topic,
			Key:       ev.Source.KeyEncoder(),
			Value:     &vals[i],
			Headers:   hdrs[start:len(hdrs):len(hdrs)],
			Timestamp: ev.Time,
			Metadata:  &flights[i],
		}
	}
	// If buf had to grow, the slab keeps the larger one for next time
	// (earlier headers still point into the old one, which stays valid).
	sl.hdrs, sl.buf = hdrs, buf
	return msgs
}

// latencySample is how often an ack is timed for the latency histogram.
const latencySample = 8

// batchAcker is an Acker that takes several acknowledgements at once.
type batchAcker interface {
	AckBatch(seqs []uint64)
}

// acks reports acknowledgements to the trackers and releases the bounds.
// Consecutive acks for one file are handed over together.
func (p *Producer) acks(ap asyncProducer) {
	var (
		acked, n int
		cur      record.Acker
		seqs     = make([]uint64, 0, 256)
	)
	flushAcks := func() {
		switch a := cur.(type) {
		case nil:
		case batchAcker:
			a.AckBatch(seqs)
		default:
			for _, s := range seqs {
				a.Ack(s)
			}
		}
		seqs = seqs[:0]
	}
	for m := range ap.Successes() {
		f := m.Metadata.(*flight)
		if f.ev.Acker != cur || len(seqs) == cap(seqs) {
			flushAcks()
			cur = f.ev.Acker
		}
		seqs = append(seqs, f.ev.Seq)
		if len(ap.Successes()) == 0 {
			flushAcks()
		}
		if n++; n%latencySample == 0 {
			p.m.latency.Observe(time.Since(f.ev.Time).Seconds())
		}
		p.inflight.Add(-1)
		if st := f.batch; st.left.Add(-1) == 0 {
			// The batch's last ack: f, its slab and its events are not
			// touched again.
			p.bytes.Release(st.bytes)
			p.events.Release(st.events)
			p.m.buffered.Add(-st.bytes)
			p.recycle(st.slab)
			if st.batch.Done != nil {
				st.batch.Done(st.batch)
			}
		}
		acked++
		if len(ap.Successes()) == 0 || acked >= 1024 {
			p.m.acked.Add(float64(acked))
			acked = 0
			p.ready.Store(true)
		}
	}
	flushAcks()
	p.m.acked.Add(float64(acked))
}

// failures schedules each failed message for a re-send after a backoff
// that grows with its attempts. It never blocks on the retry channel (the
// feeder may itself be waiting on sarama, which waits for this loop to read
// its errors); due messages that do not fit wait for the next tick.
func (p *Producer) failures(ap asyncProducer, retries chan<- *sarama.ProducerMessage) {
	var q dueQueue
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func() {
		if len(q) > 0 {
			timer.Reset(max(time.Until(q[0].due), 0))
		}
	}
	errs := ap.Errors()
	for {
		select {
		case perr, ok := <-errs:
			if !ok {
				return // closing: what is queued was never acked and is read again after restart
			}
			f := perr.Msg.Metadata.(*flight)
			f.attempts++
			p.m.failed.Inc()
			if topicError(perr.Err) {
				p.gates.block(f.ev.Source.Topic, perr.Err)
			}
			p.ready.Store(false)
			p.thr.Log("send", p.log.WithError(perr.Err).WithField("topic", f.ev.Source.Topic), logrus.WarnLevel, "sending to Kafka failed; retrying with backoff")
			b := backoff.Backoff{Min: 200 * time.Millisecond, Max: p.cfg.Kafka.RetryBackoffMax}
			for i := 1; i < f.attempts; i++ {
				b.Next()
			}
			q.push(dueMsg{due: time.Now().Add(b.Next()), m: resend(perr.Msg)})
			arm()
		case <-timer.C:
			now := time.Now()
		move:
			for len(q) > 0 && !q[0].due.After(now) {
				select {
				case retries <- q[0].m:
					q.pop()
				default:
					timer.Reset(10 * time.Millisecond)
					break move
				}
			}
			if len(q) > 0 && q[0].due.After(now) {
				arm()
			}
		}
	}
}

type dueMsg struct {
	due time.Time
	m   *sarama.ProducerMessage
}

// dueQueue is a min-heap by due time.
type dueQueue []dueMsg

func (q *dueQueue) push(d dueMsg) {
	*q = append(*q, d)
	h := *q
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h[i].due.Before(h[parent].due) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (q *dueQueue) pop() {
	h := *q
	n := len(h) - 1
	h[0] = h[n]
	h[n] = dueMsg{}
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].due.Before(h[m].due) {
			m = l
		}
		if r < n && h[r].due.Before(h[m].due) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
}

// resend copies a failed message; sarama's own bookkeeping in the old one
// must not be reused.
func resend(m *sarama.ProducerMessage) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: m.Topic, Key: m.Key, Value: m.Value, Headers: m.Headers, Timestamp: m.Timestamp, Metadata: m.Metadata}
}

// pathPartitioner sends every line of a file to one partition (so a file
// stays in order) like sarama's hash partitioner on the key, but hashes
// each file's path once instead of once per message.
type pathPartitioner struct {
	fallback sarama.Partitioner
}

func newPathPartitioner(topic string) sarama.Partitioner {
	return &pathPartitioner{fallback: sarama.NewHashPartitioner(topic)}
}

func (p *pathPartitioner) Partition(m *sarama.ProducerMessage, n int32) (int32, error) {
	if f, ok := m.Metadata.(*flight); ok {
		return int32(f.ev.Source.KeyHash() % uint32(n)), nil
	}
	return p.fallback.Partition(m, n)
}

func (p *pathPartitioner) RequiresConsistency() bool { return true }
