package agentsim

// A simulated Kafka for the agent's producer (producer.Cluster): a log per
// partition, answers delayed, withheld or refused as the schedule says,
// and what it holds when the agent process dies.

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/agent/producer"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// stored is one record the broker appended.
type stored struct {
	key, value []byte
	headers    map[string]string
	acked      bool // its produce request was answered with success
	// epoch is the incarnation that sent it; ackedAt, when its answer
	// reached that incarnation (on the fake clock).
	epoch   int
	ackedAt time.Time
	// due is when its answer was to come (the broker's delay then).
	due time.Time
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
	// vanished: the topic is gone (deleted, or not yet created where
	// brokers do not create topics): metadata does not show it, and
	// produce requests for it are answered UNKNOWN_TOPIC_OR_PARTITION.
	vanished bool
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
	// key is the agent's signing key: every record taken must be in a
	// chunk whose signature verifies (what the transfer will check);
	// unsigned is what the broker found otherwise.
	key      *record.SigningKey
	unsigned []string
}

func newBroker(parts int32, key *record.SigningKey) *broker {
	return &broker{parts: parts, log: map[tp][]*stored{}, refuse: map[tp]int{}, omit: map[tp]int{}, key: key}
}

// verify checks a record batch's signatures: its records are chunks, the
// last record of each carrying the signature of the chunk, which must
// verify with the agent's key over every record of the chunk, headers and
// all. It says what is wrong, if anything.
func (b *broker) verify(bt producer.Batch) string {
	start := 0
	for i, r := range bt.Records {
		var sig []byte
		for _, h := range r.Headers {
			if h != nil && string(h.Key) == record.HeaderSig {
				sig = h.Value
			}
		}
		if sig == nil {
			continue
		}
		_, n, cx, _, err := record.ParseSig(sig)
		if err != nil {
			return fmt.Sprintf("a signature that does not parse: %v", err)
		}
		if n != i+1-start {
			return fmt.Sprintf("a signature for %d records ends a chunk of %d", n, i+1-start)
		}
		var c record.Chunk
		c.Reset(b.key, bt.Topic, cx)
		for _, r := range bt.Records[start : i+1] {
			c.Add(r.Key, r.Value, kafka.Headers(r.Headers))
		}
		if err := c.Verify(sig); err != nil {
			return fmt.Sprintf("a chunk of %d records whose signature does not verify: %v", n, err)
		}
		start = i + 1
	}
	if start != len(bt.Records) {
		return fmt.Sprintf("%d records after the last signature of their record batch", len(bt.Records)-start)
	}
	return ""
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
	if c.b.vanished {
		return nil, sarama.ErrUnknownTopicOrPartition
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
	delay := b.delay
	epoch := c.epoch
	resp := &sarama.ProduceResponse{}
	var taken []*stored
	for _, bt := range batches {
		t := tp{bt.Topic, bt.Partition}
		switch {
		case b.vanished:
			resp.AddTopicPartition(bt.Topic, bt.Partition, sarama.ErrUnknownTopicOrPartition)
			continue
		case b.refuse[t] > 0:
			b.refuse[t]--
			resp.AddTopicPartition(bt.Topic, bt.Partition, sarama.ErrNotLeaderForPartition)
			continue
		case b.omit[t] > 0:
			b.omit[t]--
			continue
		}
		if bad := b.verify(bt); bad != "" && len(b.unsigned) < 3 {
			b.unsigned = append(b.unsigned, bad)
		}
		for _, r := range bt.Records {
			// The records are the producer's memory, reused once
			// answered: the broker keeps copies.
			s := &stored{key: append([]byte(nil), r.Key...), value: append([]byte(nil), r.Value...), headers: map[string]string{}, epoch: epoch, due: time.Now().Add(delay)}
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
		now := time.Now()
		for _, s := range taken {
			s.acked, s.ackedAt = true, now
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
