package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// tapOpts are logctl tap's own flags.
type tapOpts struct {
	brokers string
	topics  []string
	count   int
	jsonOut bool
}

// tap follows the records flowing now, as they sit in Kafka with their
// headers (like Vector's tap): of one agent (its topics, its host's
// records; of one file with a path), or of whole topics (--topic). It
// starts at the end of every partition and stops on Ctrl-C, or after
// --count records.
func (c *cmd) tap(o *tapOpts, args []string) error {
	if len(args) > 2 || (len(args) == 0) == (len(o.topics) == 0) {
		return usageError("tap <ip> [path] | tap --topic T [--topic T2]")
	}
	var ip, path string
	topics := o.topics
	if len(args) > 0 {
		ip = args[0]
		if len(args) == 2 {
			path = args[1]
		}
		v, ok, err := c.fetch(c.collectKind(), ip)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%s is not set: the agent at %s collects nothing", c.collectKind().key(ip), ip)
		}
		var entries []struct{ Path, Topic string }
		if err := json.Unmarshal(v, &entries); err != nil {
			return fmt.Errorf("reading the collect config of %s: %w", ip, err)
		}
		for _, e := range entries {
			if !slices.Contains(topics, e.Topic) {
				topics = append(topics, e.Topic)
			}
		}
	}
	cl, err := kafkaClient(o.brokers, "logctl-tap")
	if err != nil {
		return err
	}
	defer cl.Close()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return fmt.Errorf("consuming: %w", err)
	}
	defer cons.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan *sarama.ConsumerMessage)
	var wg sync.WaitGroup
	for _, t := range topics {
		parts, err := cl.Partitions(t)
		if err != nil {
			return fmt.Errorf("topic %s: %w", t, err)
		}
		for _, p := range parts {
			pc, err := cons.ConsumePartition(t, p, sarama.OffsetNewest)
			if err != nil {
				return fmt.Errorf("consuming %s/%d: %w", t, p, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer pc.Close()
				for {
					select {
					case <-ctx.Done():
						return
					case m, ok := <-pc.Messages():
						if !ok {
							return
						}
						select {
						case msgs <- m:
						case <-ctx.Done():
							return
						}
					}
				}
			}()
		}
	}
	defer wg.Wait()
	defer cancel()
	what := "topics " + strings.Join(topics, ", ")
	if ip != "" {
		what = "the records of " + ip + " in " + what
		if path != "" {
			what += ", file " + path
		}
	}
	fmt.Fprintf(c.stderr, "tapping %s from now on (Ctrl-C stops)\n", what)
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			v := record.ParseRecord(m.Key, kafka.Headers(m.Headers))
			if ip != "" && !bytes.Equal(v.HostIP, []byte(ip)) {
				continue
			}
			if path != "" && !bytes.Equal(v.Path, []byte(path)) {
				continue
			}
			c.printTapped(o, m)
			if n++; o.count > 0 && n >= o.count {
				return nil
			}
		}
	}
}

// printTapped writes one record: where it sits, its headers, its value
// (escaped on its way to the terminal, as everything logctl prints).
func (c *cmd) printTapped(o *tapOpts, m *sarama.ConsumerMessage) {
	if o.jsonOut {
		h := map[string]string{}
		for _, x := range m.Headers {
			if x != nil && string(x.Key) != record.HeaderSig {
				h[string(x.Key)] = string(x.Value)
			}
		}
		b, _ := json.Marshal(map[string]any{"topic": m.Topic, "partition": m.Partition, "offset": m.Offset, "timestamp": m.Timestamp,
			"key": string(m.Key), "headers": h, "value": string(m.Value)})
		fmt.Fprintln(c.stdout, string(b))
		return
	}
	var hs []string
	for _, x := range m.Headers {
		if x == nil {
			continue
		}
		if string(x.Key) == record.HeaderSig {
			hs = append(hs, "sig=…")
			continue
		}
		hs = append(hs, string(x.Key)+"="+string(x.Value))
	}
	fmt.Fprintf(c.stdout, "%s/%d@%d %s key=%s %s\n  %s\n", m.Topic, m.Partition, m.Offset, m.Timestamp.UTC().Format(time.RFC3339Nano), m.Key,
		strings.Join(hs, " "), strings.ReplaceAll(string(m.Value), "\n", "\n  "))
}
