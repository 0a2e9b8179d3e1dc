package transfer

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
)

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
	if doc.Origin == nil {
		return fmt.Errorf("document %s has no source record", doc.ID)
	}
	msg := doc.Origin.Record()
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
			headers = append(headers, *kafka.Header(h))
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
