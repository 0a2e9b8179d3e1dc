package main

import (
	"encoding/binary"
	"hash/crc32"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// discardBroker is a Kafka-protocol broker that checks and counts every
// produced record batch and then throws it away, so that what is measured
// is the sender, not a broker keeping a gigabyte in memory on the same two
// cores. Metadata and the rest are kfake's; produce requests and the end
// offsets (list offsets) are answered here from the counts.
type discardBroker struct {
	*kfake.Cluster
	mu   sync.Mutex
	ends map[string]map[int32]int64 // topic → partition → records received
}

func newDiscardBroker(partitions int32, topics ...string) *discardBroker {
	d := &discardBroker{Cluster: newBroker(partitions, topics...), ends: map[string]map[int32]int64{}}
	d.ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		d.KeepControl()
		return d.produce(r.(*kmsg.ProduceRequest)), nil, true
	})
	d.ControlKey(int16(kmsg.ListOffsets), func(r kmsg.Request) (kmsg.Response, error, bool) {
		d.KeepControl()
		return d.listOffsets(r.(*kmsg.ListOffsetsRequest)), nil, true
	})
	return d
}

func (d *discardBroker) addr() string { return d.ListenAddrs()[0] }

// records is how many records the broker received for topic.
func (d *discardBroker) records(topic string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for _, v := range d.ends[topic] {
		n += v
	}
	return n
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// countBatches walks the record batches in b (v2 format), checking each
// one's length and CRC, and returns the records they hold.
func countBatches(b []byte) (int64, bool) {
	var n int64
	for len(b) > 0 {
		if len(b) < 61 {
			return 0, false
		}
		size := int(binary.BigEndian.Uint32(b[8:12])) + 12
		if size < 61 || size > len(b) || b[16] != 2 {
			return 0, false
		}
		if crc32.Checksum(b[21:size], castagnoli) != binary.BigEndian.Uint32(b[17:21]) {
			return 0, false
		}
		n += int64(int32(binary.BigEndian.Uint32(b[57:61])))
		b = b[size:]
	}
	return n, true
}

func (d *discardBroker) produce(req *kmsg.ProduceRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic, rt.TopicID = t.Topic, t.TopicID
		ends := d.ends[t.Topic]
		if ends == nil {
			ends = map[int32]int64{}
			d.ends[t.Topic] = ends
		}
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			rp.LogAppendTime = -1
			if n, ok := countBatches(p.Records); ok {
				rp.BaseOffset = ends[p.Partition]
				ends[p.Partition] += n
			} else {
				rp.ErrorCode = kerr.CorruptMessage.Code
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (d *discardBroker) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range req.Topics {
		rt := kmsg.NewListOffsetsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewListOffsetsResponseTopicPartition()
			rp.Partition = p.Partition
			rp.Timestamp, rp.Offset = -1, 0
			if p.Timestamp == -1 { // latest
				rp.Offset = d.ends[t.Topic][p.Partition]
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
