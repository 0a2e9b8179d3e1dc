package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/inventory"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// traceOpts are logctl trace's own flags.
type traceOpts struct {
	brokers    string
	es         string
	group      string
	scan       int
	dlqSuffix  string
	quarSuffix string
}

// found is a record of the traced line in a topic.
type found struct {
	topic     string
	partition int32
	offset    int64
	msg       *sarama.ConsumerMessage
	view      record.View
}

// trace follows one line end to end: where the agent read it and whether
// Kafka acknowledged it, the record in Kafka (topic, partition, offset),
// whether the transfer committed past it, and its document (index, _id)
// or its dead-letter or quarantine record with the reason.
func (c *cmd) trace(o *traceOpts, args []string) error {
	if len(args) < 2 || len(args) > 3 {
		return usageError("trace <ip> <path> [offset|line-text]")
	}
	ip, path := args[0], args[1]
	offset, text := int64(-1), ""
	if len(args) == 3 {
		if n, err := strconv.ParseInt(args[2], 10, 64); err == nil && n >= 0 {
			offset = n
		} else {
			text = args[2]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout+2*time.Minute)
	defer cancel()
	w := c.stdout
	what := "the last line"
	switch {
	case offset >= 0:
		what = fmt.Sprintf("the line at offset %d", offset)
	case text != "":
		what = fmt.Sprintf("the last line holding %q", text)
	}
	fmt.Fprintf(w, "trace    %s of %s on %s\n", what, path, ip)

	// 1. The agent, from its inventory entry.
	var rep *inventory.Report
	err := c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Get(ctx, c.agentsPrefix+ip)
		if err != nil {
			return fmt.Errorf("reading the agent's inventory entry: %w", err)
		}
		if len(resp.Kvs) > 0 {
			var r inventory.Report
			if json.Unmarshal(resp.Kvs[0].Value, &r) == nil {
				rep = &r
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var topics []string
	var task *inventory.Task
	if rep == nil {
		fmt.Fprintf(w, "agent    %s is not live (no inventory entry): the topic comes from its collect config\n", ip)
		v, ok, err := c.fetch(c.collectKind(), ip)
		if err == nil && ok {
			var entries []struct{ Path, Topic string }
			_ = json.Unmarshal(v, &entries)
			for _, e := range entries {
				if e.Path == path {
					topics = append(topics, e.Topic)
				}
			}
		}
	} else {
		for i := range rep.Tasks {
			if rep.Tasks[i].Path == path {
				task = &rep.Tasks[i]
				topics = append(topics, task.Topic)
			}
		}
		if task == nil {
			fmt.Fprintf(w, "agent    %s (%s, version %s) follows no file %s now\n", ip, rep.Host, rep.Version, path)
		} else {
			state := "acknowledged by Kafka up to offset " + strconv.FormatInt(task.AckedOffset, 10)
			if offset >= 0 {
				if offset < task.AckedOffset {
					state += ": this line is acknowledged and in the agent's registry (saved within a second)"
				} else {
					state += ": this line is NOT acknowledged yet (read, in flight or waiting for Kafka)"
				}
			}
			fmt.Fprintf(w, "agent    %s (%s, version %s): %s → topic %s, %s; %s (as of %s)\n", ip, rep.Host, rep.Version, path, task.Topic, task.State,
				state, rep.Updated.Format(time.RFC3339))
		}
	}
	if len(topics) == 0 {
		return fmt.Errorf("no topic is known for %s on %s (neither its live agent nor its collect config names it)", path, ip)
	}

	// 2. The record in Kafka.
	cl, err := kafkaClient(o.brokers, "logctl-trace")
	if err != nil {
		return err
	}
	defer cl.Close()
	match := func(m *sarama.ConsumerMessage, v record.View) bool {
		if !bytes.Equal(m.Key, []byte(path)) && !bytes.Equal(v.Path, []byte(path)) {
			return false
		}
		switch {
		case offset >= 0:
			return v.HasOffset && v.Offset == offset
		case text != "":
			return bytes.Contains(m.Value, []byte(text))
		}
		return true
	}
	var rec *found
	for _, topic := range topics {
		parts, err := cl.Partitions(topic)
		if err != nil {
			fmt.Fprintf(w, "kafka    topic %s: %v\n", topic, err)
			continue
		}
		slices.Sort(parts)
		// The agent's partition for the file first, then the others (the
		// partition count may have changed since).
		first := parts[record.KeyHash([]byte(path))%uint32(len(parts))]
		order := append([]int32{first}, slices.DeleteFunc(slices.Clone(parts), func(p int32) bool { return p == first })...)
		for _, p := range order {
			if rec, err = c.scanFor(ctx, cl, topic, p, o.scan, match); err != nil {
				return err
			}
			if rec != nil {
				break
			}
		}
		if rec != nil {
			break
		}
	}
	if rec == nil {
		fmt.Fprintf(w, "kafka    not found in topic %s (the last %d records of each partition were read, --scan): not sent yet, or older\n", strings.Join(topics, ", "), o.scan)
		return errors.New("the line was not found in Kafka")
	}
	v := rec.view
	fmt.Fprintf(w, "kafka    %s partition %d offset %d: event.id %s, read %s, %d bytes: %s\n", rec.topic, rec.partition, rec.offset, v.EventID,
		rec.msg.Timestamp.UTC().Format(time.RFC3339Nano), len(rec.msg.Value), excerpt(rec.msg.Value))

	// 3. The transfer's group.
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err == nil {
		res, err := adm.ListConsumerGroupOffsets(o.group, map[string][]int32{rec.topic: {rec.partition}})
		if err == nil {
			if b := res.GetBlock(rec.topic, rec.partition); b != nil && b.Offset >= 0 {
				if b.Offset > rec.offset {
					fmt.Fprintf(w, "transfer group %s committed %s/%d at %d: past this record (indexed, or dead-lettered)\n", o.group, rec.topic, rec.partition, b.Offset)
				} else {
					fmt.Fprintf(w, "transfer group %s committed %s/%d at %d: NOT past this record yet (%d behind)\n", o.group, rec.topic, rec.partition, b.Offset, rec.offset-b.Offset+1)
				}
			} else {
				fmt.Fprintf(w, "transfer group %s has committed nothing for %s/%d\n", o.group, rec.topic, rec.partition)
			}
		}
	}

	// 4. Its document, or why there is none.
	id := record.DocID(v.HostName, v.HostIP, v.EventID)
	if len(v.EventID) == 0 {
		id = rec.topic + "-" + strconv.Itoa(int(rec.partition)) + "-" + strconv.FormatInt(rec.offset, 10)
	}
	idx, doc, err := searchID(ctx, o.es, rec.topic+"-*", id)
	switch {
	case err != nil:
		fmt.Fprintf(w, "index    cannot ask %s (--es): %v\n", o.es, err)
	case idx != "":
		fmt.Fprintf(w, "index    %s _id %s: stored\n         %s\n", idx, id, excerpt(doc))
		return nil
	default:
		fmt.Fprintf(w, "index    no document _id %s in %s-*\n", id, rec.topic)
	}
	for _, t := range []struct{ suffix, what string }{{o.dlqSuffix, "dead-letter"}, {o.quarSuffix, "quarantine"}} {
		topic := rec.topic + t.suffix
		parts, err := cl.Partitions(topic)
		if err != nil {
			continue
		}
		for _, p := range parts {
			f, err := c.scanFor(ctx, cl, topic, p, o.scan, func(m *sarama.ConsumerMessage, dv record.View) bool {
				return bytes.Equal(dv.EventID, v.EventID) && len(v.EventID) > 0
			})
			if err != nil {
				return err
			}
			if f != nil {
				reason := ""
				for _, h := range f.msg.Headers {
					if h != nil && (string(h.Key) == "dlq.reason" || string(h.Key) == "quarantine.reason") {
						reason = string(h.Value)
					}
				}
				fmt.Fprintf(w, "%-8s %s partition %d offset %d: reason %q\n", t.what, topic, p, f.offset, reason)
				return nil
			}
		}
	}
	fmt.Fprintln(w, "         not in the dead-letter or quarantine topics either: not consumed yet, or dropped by its pipeline")
	return nil
}

// scanFor reads up to the last n records of a partition, newest last, and
// returns the last one match accepts.
func (c *cmd) scanFor(ctx context.Context, cl sarama.Client, topic string, p int32, n int, match func(*sarama.ConsumerMessage, record.View) bool) (*found, error) {
	newest, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("reading the end of %s/%d: %w", topic, p, err)
	}
	oldest, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("reading the start of %s/%d: %w", topic, p, err)
	}
	if newest <= oldest {
		return nil, nil
	}
	start := max(oldest, newest-int64(n))
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return nil, fmt.Errorf("consuming %s: %w", topic, err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, p, start)
	if err != nil {
		return nil, fmt.Errorf("consuming %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var last *found
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %s/%d: %w", topic, p, ctx.Err())
		case err := <-pc.Errors():
			return nil, fmt.Errorf("reading %s/%d: %w", topic, p, err)
		case m := <-pc.Messages():
			v := record.ParseRecord(m.Key, kafka.Headers(m.Headers))
			if match(m, v) {
				last = &found{topic: topic, partition: p, offset: m.Offset, msg: m, view: v}
			}
			if m.Offset >= newest-1 {
				return last, nil
			}
		}
	}
}

// searchID finds the document of _id in the indices matching pattern.
func searchID(ctx context.Context, es, pattern, id string) (string, []byte, error) {
	body, _ := json.Marshal(map[string]any{"query": map[string]any{"ids": map[string]any{"values": []string{id}}}, "size": 1})
	u := strings.TrimSuffix(es, "/") + "/" + url.PathEscape(pattern) + "/_search?ignore_unavailable=true&allow_no_indices=true"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s: %s", resp.Status, excerpt(b))
	}
	var r struct {
		Hits struct {
			Hits []struct {
				Index  string          `json:"_index"`
				Source json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return "", nil, fmt.Errorf("reading the search answer: %w", err)
	}
	if len(r.Hits.Hits) == 0 {
		return "", nil, nil
	}
	return r.Hits.Hits[0].Index, r.Hits.Hits[0].Source, nil
}

// excerpt is b cut to a line's worth, for people.
func excerpt(b []byte) string {
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strings.ReplaceAll(s, "\n", "\\n")
}

// kafkaClient is a plain client of brokers (comma separated) for logctl's
// own reads (trace, tap): it never creates a topic.
func kafkaClient(brokers, id string) (sarama.Client, error) {
	conf := sarama.NewConfig()
	conf.ClientID = id
	conf.Version = sarama.V2_8_0_0
	conf.Metadata.AllowAutoTopicCreation = false
	kafka.NoMetrics(conf)
	cl, err := sarama.NewClient(strings.Split(brokers, ","), conf)
	if err != nil {
		return nil, fmt.Errorf("connecting to Kafka at %s (--kafka): %w", brokers, err)
	}
	return cl, nil
}
