// Package producer moves events from the tailers into Kafka with a sarama
// AsyncProducer and reports every acknowledgement back to the event's
// Acker. Memory is bounded twice: the channel by count (chan_max_size) and
// everything between read and ack by bytes (buffer_bytes). A failed send is
// retried with backoff until it succeeds; while Kafka is down the bounds
// fill up and Send blocks, which pauses the tailers. Nothing is dropped.
package producer

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

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

// Producer is the agent's Kafka side.
type Producer struct {
	cfg    Config
	log    *logrus.Entry
	thr    *logging.Throttle
	ch     chan *record.Event
	budget *semaphore.Weighted
	max    int64
	ready  atomic.Bool
	m      *metrics
}

type metrics struct {
	sent, acked, failed, retried prometheus.Counter
	inflight, bufBytes           prometheus.Gauge
	queue, up                    prometheus.GaugeFunc
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
		ch:     make(chan *record.Event, cfg.Kafka.ChanMaxSize),
		budget: semaphore.NewWeighted(int64(cfg.Kafka.BufferBytes)),
		max:    int64(cfg.Kafka.BufferBytes),
	}
	p.m = &metrics{
		sent:     prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_sent_total", Help: "Events handed to the Kafka producer (re-sends included)."}),
		acked:    prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_acked_total", Help: "Events acknowledged by Kafka."}),
		failed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_failed_total", Help: "Send attempts that failed (each is retried)."}),
		retried:  prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_events_retried_total", Help: "Events re-sent after a failure."}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_events_inflight", Help: "Events sent to Kafka and not yet acknowledged."}),
		bufBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_buffer_bytes", Help: "Bytes of events between read and Kafka ack."}),
		queue: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_queue_length", Help: "Events waiting in the channel to the producer."},
			func() float64 { return float64(len(p.ch)) }),
		up: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_kafka_up", Help: "1 while connected to Kafka and the last send succeeded."},
			func() float64 {
				if p.ready.Load() {
					return 1
				}
				return 0
			}),
	}
	if reg != nil {
		reg.MustRegister(p.m.sent, p.m.acked, p.m.failed, p.m.retried, p.m.inflight, p.m.bufBytes, p.m.queue, p.m.up)
	}
	return p
}

// Ready reports whether the producer is connected and its most recent send
// (if any) succeeded.
func (p *Producer) Ready() bool { return p.ready.Load() }

func (p *Producer) cost(ev *record.Event) int64 {
	return min(int64(len(ev.Value))+64, p.max)
}

// Send queues ev, blocking while the channel or the byte budget is full.
func (p *Producer) Send(ctx context.Context, ev *record.Event) error {
	n := p.cost(ev)
	if err := p.budget.Acquire(ctx, n); err != nil {
		return err
	}
	select {
	case p.ch <- ev:
		p.m.bufBytes.Add(float64(n))
		return nil
	case <-ctx.Done():
		p.budget.Release(n)
		return ctx.Err()
	}
}

func (p *Producer) saramaConfig() *sarama.Config {
	k := p.cfg.Kafka
	c := sarama.NewConfig()
	c.ClientID = p.cfg.ClientID
	c.Version = k.Version
	c.Producer.RequiredAcks = k.RequiredAcks
	c.Producer.Compression = k.Compression
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
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
	c.ChannelBufferSize = 1024
	return c
}

// retry is a failed message waiting for its next attempt.
type retry struct {
	ev       *record.Event
	attempts int
	due      time.Time
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
	var ap sarama.AsyncProducer
	for {
		var err error
		ap, err = sarama.NewAsyncProducer(p.cfg.Kafka.Brokers, scfg)
		if err == nil {
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
	return p.loop(ctx, ap)
}

func (p *Producer) loop(ctx context.Context, ap sarama.AsyncProducer) error {
	var (
		inflight    int
		maxInflight = p.cfg.Kafka.ChanMaxSize
		attempts    = map[*record.Event]int{}
		retries     []retry         // failed, waiting for their due time
		due         []*record.Event // failed and due: sent before new events
		next        *sarama.ProducerMessage
		timer       = time.NewTimer(time.Hour)
		draining    bool
		deadline    <-chan time.Time
		in          = p.ch
	)
	defer timer.Stop()
	armTimer := func() {
		if len(retries) == 0 {
			return
		}
		timer.Reset(max(time.Until(retries[0].due), 0))
	}
	done := func(ev *record.Event) {
		inflight--
		p.m.inflight.Dec()
		n := p.cost(ev)
		p.budget.Release(n)
		p.m.bufBytes.Sub(float64(n))
	}
	for {
		if draining && inflight == 0 {
			break
		}
		if next == nil && len(due) > 0 {
			next = message(due[0])
			due[0] = nil
			due = due[1:]
			p.m.retried.Inc()
		}
		// Take a new event only when nothing waits to go into sarama.
		var input chan<- *sarama.ProducerMessage
		var take <-chan *record.Event
		if next != nil {
			input = ap.Input()
		} else if !draining && inflight < maxInflight {
			take = in
		}
		select {
		case ev := <-take:
			inflight++
			p.m.inflight.Inc()
			next = message(ev)
		case input <- next:
			p.m.sent.Inc()
			next = nil
		case msg := <-ap.Successes():
			ev := msg.Metadata.(*record.Event)
			ev.Acker.Ack(ev.Seq)
			if len(attempts) > 0 {
				delete(attempts, ev)
			}
			p.m.acked.Inc()
			p.ready.Store(true)
			done(ev)
		case perr := <-ap.Errors():
			ev := perr.Msg.Metadata.(*record.Event)
			p.m.failed.Inc()
			p.ready.Store(false)
			n := attempts[ev] + 1
			attempts[ev] = n
			b := backoff.Backoff{Min: 200 * time.Millisecond, Max: p.cfg.Kafka.RetryBackoffMax}
			for i := 1; i < n; i++ {
				b.Next()
			}
			retries = insertRetry(retries, retry{ev: ev, attempts: n, due: time.Now().Add(b.Next())})
			armTimer()
			p.thr.Log("send", p.log.WithError(perr.Err).WithField("topic", ev.Source.Topic), logrus.WarnLevel, "sending to Kafka failed; retrying with backoff")
		case <-timer.C:
			now := time.Now()
			for len(retries) > 0 && !retries[0].due.After(now) {
				due = append(due, retries[0].ev)
				retries = retries[1:]
			}
			armTimer()
		case <-ctx.Done():
			ctx = context.Background() // only once
			draining = true
			deadline = time.After(p.cfg.ShutdownTimeout)
			if inflight > 0 {
				p.log.WithField("inflight", inflight).Info("waiting for Kafka to acknowledge in-flight events")
			}
		case <-deadline:
			p.log.WithField("inflight", inflight).Warn("shutdown timeout: in-flight events not acknowledged; they will be read again after restart")
			draining, inflight = true, 0
		}
	}
	p.close(ap)
	return nil
}

func insertRetry(rs []retry, r retry) []retry {
	i := len(rs)
	for i > 0 && rs[i-1].due.After(r.due) {
		i--
	}
	rs = append(rs, retry{})
	copy(rs[i+1:], rs[i:])
	rs[i] = r
	return rs
}

// close shuts sarama down without waiting for retries that can no longer
// matter: everything unacknowledged is re-read after restart.
func (p *Producer) close(ap sarama.AsyncProducer) {
	ap.AsyncClose()
	timeout := time.After(5 * time.Second)
	succ, errs := ap.Successes(), ap.Errors()
	for succ != nil || errs != nil {
		select {
		case msg, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			ev := msg.Metadata.(*record.Event)
			ev.Acker.Ack(ev.Seq)
			p.m.acked.Inc()
		case _, ok := <-errs:
			if !ok {
				errs = nil
			}
		case <-timeout:
			p.log.Warn("Kafka producer did not close in time")
			return
		}
	}
}

func message(ev *record.Event) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic:     ev.Source.Topic,
		Key:       sarama.ByteEncoder(ev.Source.Key()),
		Value:     sarama.ByteEncoder(ev.Value),
		Headers:   ev.Headers(),
		Timestamp: ev.Time,
		Metadata:  ev,
	}
}
