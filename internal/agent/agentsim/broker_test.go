package agentsim

// A simulated Kafka for the agent's producer (producer.Cluster): a log per
// partition, answers delayed, withheld or refused as the schedule says,
// and what it holds when the agent process dies.

import (
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/agent/producer"
)

// stored is one record the broker appended.
type stored struct {
	key, value []byte
	headers    map[string]string
	acked      bool // its produce request was answered with success
}

type tp struct {
	topic string
	part  int32
}

// broker is Kafka as the agent sees it. Its state outlives the agent's
// incarnations; epoch counts them, so that an answer due to a process that
// died is never delivered.
type broker struct {
	mu    sync.Mutex
	parts int32
	log   map[tp][]*stored
	// outage: metadata, leaders and produce requests fail.
	outage bool
	// refuse: the next n requests for a partition are answered with an
	// error code for it (nothing appended); omit: left out of the answer
	// (nothing appended either: a broker that did not take them).
	refuse map[tp]int
	omit   map[tp]int
	// delay is how long an answer takes.
	delay time.Duration
	epoch int
	// answers counts requests answered, for the schedule's waits.
	answers int
}

func newBroker(parts int32) *broker {
	return &broker{parts: parts, log: map[tp][]*stored{}, refuse: map[tp]int{}, omit: map[tp]int{}}
}

// crash ends an incarnation: answers still due are never delivered (the
// records of those requests stay appended: written, their ack lost).
func (b *broker) crash() {
	b.mu.Lock()
	b.epoch++
	b.mu.Unlock()
}

// cluster is the producer's Cluster for the current incarnation.
func (b *broker) cluster() (producer.Cluster, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.outage {
		return nil, errors.New("simulated outage: no broker answers")
	}
	return &simCluster{b: b, epoch: b.epoch}, nil
}

// simCluster and simConn belong to one incarnation: once it died, they
// reach nothing.
type simCluster struct {
	b     *broker
	epoch int
}

// dead reports (with b.mu held) whether the incarnation is gone or the
// broker is out.
func (b *broker) dead(epoch int) bool { return b.outage || b.epoch != epoch }

func (c *simCluster) RefreshMetadata(...string) error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.dead(c.epoch) {
		return errors.New("simulated outage")
	}
	return nil
}

func (c *simCluster) Partitions(string) ([]int32, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.dead(c.epoch) {
		return nil, errors.New("simulated outage")
	}
	ps := make([]int32, c.b.parts)
	for i := range ps {
		ps[i] = int32(i)
	}
	return ps, nil
}

func (c *simCluster) Close() error { return nil }

func (c *simCluster) Leader(string, int32) (producer.Conn, error) {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	if c.b.dead(c.epoch) {
		return nil, errors.New("simulated outage")
	}
	return &simConn{b: c.b, epoch: c.epoch}, nil
}

type simConn struct {
	b     *broker
	epoch int
}

func (c *simConn) Close() error { return nil }

// Produce appends what the broker takes, at once, and answers after the
// delay (if the incarnation still lives then).
func (c *simConn) Produce(_ *sarama.ProduceRequest, batches []producer.Batch, cb sarama.ProduceCallback) error {
	b := c.b
	b.mu.Lock()
	if b.dead(c.epoch) {
		b.mu.Unlock()
		return errors.New("simulated outage: connection refused")
	}
	epoch, delay := c.epoch, b.delay
	resp := &sarama.ProduceResponse{}
	var taken []*stored
	for _, bt := range batches {
		t := tp{bt.Topic, bt.Partition}
		switch {
		case b.refuse[t] > 0:
			b.refuse[t]--
			resp.AddTopicPartition(bt.Topic, bt.Partition, sarama.ErrNotLeaderForPartition)
			continue
		case b.omit[t] > 0:
			b.omit[t]--
			continue
		}
		for _, r := range bt.Records {
			// The records are the producer's memory, reused once
			// answered: the broker keeps copies.
			s := &stored{key: append([]byte(nil), r.Key...), value: append([]byte(nil), r.Value...), headers: map[string]string{}}
			for _, h := range r.Headers {
				if h != nil {
					s.headers[string(h.Key)] = string(h.Value)
				}
			}
			b.log[t] = append(b.log[t], s)
			taken = append(taken, s)
		}
		resp.AddTopicPartition(bt.Topic, bt.Partition, sarama.ErrNoError)
	}
	b.mu.Unlock()
	go func() {
		if delay > 0 {
			time.Sleep(delay)
		}
		b.mu.Lock()
		if b.epoch != epoch {
			b.mu.Unlock()
			return // the process that sent it is gone
		}
		for _, s := range taken {
			s.acked = true
		}
		b.answers++
		b.mu.Unlock()
		cb(resp, nil)
	}()
	return nil
}

// records returns every record appended, in each partition's order.
func (b *broker) records() []*stored {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*stored
	for _, l := range b.log {
		out = append(out, l...)
	}
	return out
}
