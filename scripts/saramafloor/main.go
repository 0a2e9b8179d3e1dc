// Command saramafloor sends a file's lines to Kafka through sarama's
// AsyncProducer with the agent's producer settings and nothing else: no
// tailing, registry, bounds or acknowledgement tracking. scripts/bench
// runs it as the "sarama AsyncProducer alone" row: what the chosen client
// costs by itself per GB, the floor under the agent's own number.
//
//	go run ./scripts/saramafloor -broker 127.0.0.1:9092 -topic bench -file lines.log
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/platform/kafka"
)

func main() {
	broker := flag.String("broker", "127.0.0.1:9092", "broker address")
	topic := flag.String("topic", "bench", "topic")
	file := flag.String("file", "", "file whose lines are sent, one record each")
	codec := flag.String("compression", "lz4", "none, gzip, snappy, lz4 or zstd")
	flag.Parse()
	if err := run(*broker, *topic, *file, *codec); err != nil {
		fmt.Fprintln(os.Stderr, "saramafloor:", err)
		os.Exit(1)
	}
}

func run(broker, topic, file, codec string) error {
	c := sarama.NewConfig()
	kafka.NoMetrics(c)
	c.Version = sarama.V2_8_0_0
	c.Producer.RequiredAcks = sarama.WaitForAll
	var cc sarama.CompressionCodec
	if err := cc.UnmarshalText([]byte(codec)); err != nil {
		return fmt.Errorf("compression %q: %w", codec, err)
	}
	c.Producer.Compression = cc
	c.Producer.Return.Successes = true
	c.Producer.Partitioner = sarama.NewHashPartitioner
	c.Producer.Flush.Frequency = 10 * time.Millisecond
	c.Producer.Flush.Bytes = 1 << 20
	c.Producer.MaxMessageBytes = 1 << 20
	c.Net.MaxOpenRequests = 5
	c.ChannelBufferSize = 4096
	ap, err := sarama.NewAsyncProducer([]string{broker}, c)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	done := make(chan int)
	go func() {
		n := 0
		for range ap.Successes() {
			n++
		}
		done <- n
	}()
	go func() {
		for e := range ap.Errors() {
			fmt.Fprintln(os.Stderr, "saramafloor: send failed:", e.Err)
			os.Exit(1)
		}
	}()
	// The agent's record: the path as key, host name, IP and event id.
	key := sarama.ByteEncoder(file)
	static := []sarama.RecordHeader{{Key: []byte("host.name"), Value: []byte("bench-host")}, {Key: []byte("host.ip"), Value: []byte("10.0.0.1")}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sent := 0
	var off int64
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		h := append(static[:2:2], sarama.RecordHeader{Key: []byte("event.id"), Value: fmt.Appendf(nil, "0123456789abcdef0123456789abcdef-%d", off)})
		off += int64(len(line)) + 1
		ap.Input() <- &sarama.ProducerMessage{Topic: topic, Key: key, Value: sarama.ByteEncoder(line), Headers: h, Timestamp: time.Now()}
		sent++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	ap.AsyncClose()
	if got := <-done; got != sent {
		return fmt.Errorf("%d of %d acknowledged", got, sent)
	}
	return nil
}
