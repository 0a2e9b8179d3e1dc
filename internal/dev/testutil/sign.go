package testutil

import (
	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// SignChunk signs msgs as one chunk with k, the way the agent does: the
// signature, naming ctx context headers, goes on the last record.
func SignChunk(k *record.SigningKey, ctx int, msgs []*sarama.ConsumerMessage) {
	var c record.Chunk
	c.Reset(k, msgs[0].Topic, ctx)
	for _, m := range msgs {
		c.Add(m.Key, m.Value, kafka.Headers(m.Headers))
	}
	sig, err := c.AppendSig(nil)
	if err != nil {
		panic("signing a test chunk: " + err.Error())
	}
	last := msgs[len(msgs)-1]
	last.Headers = append(last.Headers, &sarama.RecordHeader{Key: []byte(record.HeaderSig), Value: sig})
}
