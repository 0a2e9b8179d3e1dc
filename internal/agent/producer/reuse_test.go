package producer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// The memory of an acknowledged batch is reused: the producer's slabs
// (records, headers) for the next batches, and the batch itself by
// whoever made it (Done). Nothing reused may still be on its way to Kafka,
// nor be sent again. Against a real Kafka protocol (kfake over TCP,
// sarama's broker connections), Done poisons every value of its batch, and
// the broker refuses every third produce request (not leader: re-sent);
// one file's lines are long enough that its batches take two record
// batches each. The topic must then hold every line exactly once, intact,
// with the event id of its own offset.
func TestReusedMemoryNeverReachesTheWire(t *testing.T) {
	k := testutil.StartKafka(t, 4)
	var produced atomic.Int64
	k.Cluster().ControlKey(int16(kmsg.Produce), func(r kmsg.Request) (kmsg.Response, error, bool) {
		k.Cluster().KeepControl()
		if produced.Add(1)%3 != 0 {
			return nil, nil, false
		}
		req := r.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.NotLeaderForPartition.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	cfg, err := config.ParseAgent("test.ini", []byte("[kafka]\naddress = "+k.Addr()+"\nretry_backoff_max = 200ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := New(Config{Kafka: cfg.Kafka, MaxRecordBytes: 1 << 20, ShutdownTimeout: 5 * time.Second}, logrus.NewEntry(l), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	defer func() { cancel(); <-done }()

	const files, batches, n = 4, 30, slabEvents
	var recycled atomic.Int64
	poison := func(b *event.Batch) {
		for i := range b.Events {
			for j := range b.Events[i].Value {
				b.Events[i].Value[j] = 'X'
			}
		}
		recycled.Add(1)
	}
	inst := record.NewInstance()
	type file struct {
		src *event.Source
		tr  *acktrack.Tracker
	}
	var fs []file
	for f := 0; f < files; f++ {
		fs = append(fs, file{src: event.NewSource("reuse", fmt.Sprintf("/var/log/app%d.log", f), "h", "10.0.0.1", nil), tr: acktrack.New(0)})
	}
	// File 3's batches (1024 lines of 1,100 bytes) are larger than a
	// record batch may be (1 MB).
	pad := func(f int) int { return map[bool]int{true: 1100, false: 150}[f == 3] }
	line := func(f, i int) string {
		return fmt.Sprintf("file %d line %08d %s", f, i, bytes.Repeat([]byte{'a' + byte(f)}, pad(f)))
	}
	lineLenOf := func(f int) int64 { return int64(len(line(f, 0)) + 1) }
	for j := 0; j < batches; j++ {
		for f, fl := range fs {
			lineLen := lineLenOf(f)
			b := &event.Batch{Events: make([]event.Event, n), Done: poison}
			ends, dones := make([]int64, n), make([]bool, n)
			for i := range b.Events {
				no := j*n + i
				ends[i] = int64(no+1) * lineLen
				v := []byte(line(f, no))
				b.Events[i] = event.Event{Source: fl.src, Value: v, Offset: int64(no) * lineLen, Instance: inst, Time: time.Now()}
				b.Bytes += len(v)
			}
			first := fl.tr.EmitBatch(ends, dones)
			for i := range b.Events {
				b.Events[i].Acker, b.Events[i].Seq = fl.tr, first+uint64(i)
			}
			sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
			if err := p.Send(sctx, b); err != nil {
				t.Fatalf("Send: %v", err)
			}
			scancel()
		}
	}
	total := files * batches * n
	// Every batch acknowledged; a stall of 10 s fails sooner than the
	// overall deadline (a mixed-up ack never comes).
	last, lastAt := int64(-1), time.Now()
	testutil.Eventually(t, 60*time.Second, func() bool {
		if r := recycled.Load(); r != last {
			last, lastAt = r, time.Now()
		} else if time.Since(lastAt) > 10*time.Second {
			t.Fatalf("no batch acknowledged for 10 s: %d of %d", r, files*batches)
		}
		return last == files*batches
	}, func() string { return fmt.Sprintf("%d of %d batches acknowledged", recycled.Load(), files*batches) })
	if p.reused.Load() == 0 {
		t.Fatal("no slab was reused: the test shows nothing")
	}
	for f, fl := range fs {
		if a, _, _ := fl.tr.State(); a != int64(batches*n)*lineLenOf(f) {
			t.Errorf("%s: acked up to byte %d of %d", fl.src.Path, a, int64(batches*n)*lineLenOf(f))
		}
	}
	if produced.Load() < 3 {
		t.Fatal("no produce request was refused: the test shows nothing")
	}

	c := testutil.Consume(t, k.Addr(), "reuse")
	testutil.Eventually(t, 60*time.Second, func() bool { return c.Len() >= total },
		func() string { return fmt.Sprintf("consumed %d of %d", c.Len(), total) })
	c.Close()
	seen := make(map[string]int, total)
	bad := 0
	for _, r := range c.Records() {
		seen[string(r.Value)]++
		hs := make([]*sarama.RecordHeader, 0, len(r.Headers))
		for k, v := range r.Headers {
			hs = append(hs, &sarama.RecordHeader{Key: []byte(k), Value: []byte(v)})
		}
		var f, no int
		if _, err := fmt.Sscanf(string(r.Value), "file %d line %d", &f, &no); err != nil || f < 0 || f >= files || string(r.Value) != line(f, no) {
			if bad++; bad <= 5 {
				t.Errorf("record %s/%d holds %.40q…: not a line that was sent", r.Topic, r.Offset, r.Value)
			}
			continue
		}
		v := record.ParseRecord(r.Key, kafka.Headers(hs))
		if off := int64(no) * lineLenOf(f); string(v.Path) != fs[f].src.Path || v.Offset != off || string(v.EventID) != record.EventID(inst, off) {
			if bad++; bad <= 5 {
				t.Errorf("line %d of file %d arrived with path %s, offset %d, id %s", no, f, v.Path, v.Offset, v.EventID)
			}
		}
	}
	for f := 0; f < files; f++ {
		for i := 0; i < batches*n; i++ {
			if got := seen[line(f, i)]; got != 1 {
				if bad++; bad <= 10 {
					t.Errorf("line %d of file %d stored %d times", i, f, got)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d records wrong of %d", bad, total)
	}
}
