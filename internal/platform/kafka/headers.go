// Package kafka is what both daemons share about their Kafka client
// (sarama): the config's plain data as sarama's settings (security,
// codec, acks, version), no go-metrics, and the contract's headers as
// sarama's without copying. Each client's own options stay with its user
// (the agent's producer, the transfer's consumer group and dead-letter
// producer).
package kafka

import (
	"unsafe"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// Headers is hs as the contract's headers, without copying. The two
// types are one struct (the conversion in the body does not compile the
// day sarama's header differs from record.Header), so the cast is sound.
func Headers(hs []*sarama.RecordHeader) []*record.Header {
	_ = (*record.Header)((*sarama.RecordHeader)(nil))
	return unsafe.Slice((**record.Header)(unsafe.Pointer(unsafe.SliceData(hs))), len(hs))
}

// Header is h as sarama's header, without copying.
func Header(h *record.Header) *sarama.RecordHeader { return (*sarama.RecordHeader)(h) }
