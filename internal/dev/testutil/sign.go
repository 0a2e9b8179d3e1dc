package testutil

import (
	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// SignChunk signs msgs as one chunk with k, the way the agent does: the
// signature, naming ctx context headers, goes on the last record.
func SignChunk(k *record.SigningKey, ctx int, msgs []*sarama.ConsumerMessage) {
	var c record.Chunk
	c.Reset(k, msgs[0].Topic, ctx)
	for _, m := range msgs {
		// Copied, not platform/kafka's cast: testutil must not link the
		// platform packages whose own tests import it.
		hs := make([]*record.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = &record.Header{Key: h.Key, Value: h.Value}
		}
		c.Add(m.Key, m.Value, hs)
	}
	sig, err := c.AppendSig(nil)
	if err != nil {
		panic("signing a test chunk: " + err.Error())
	}
	last := msgs[len(msgs)-1]
	last.Headers = append(last.Headers, &sarama.RecordHeader{Key: []byte(record.HeaderSig), Value: sig})
}
