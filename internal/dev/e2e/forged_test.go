package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// forgedRecords is the attack of issue 25: whoever can produce to a topic
// reads the event ids in the stored _ids and produces, before the agent
// ships them, records with that host's name, IP and the event ids of the
// lines still to come. Stored with create, they would take those _ids and
// the real lines would be answered 409, gone. The agent is killed while
// the files go on growing, a record is forged for every line start after
// the last stored line, then the agent comes back: every real line must be
// stored once, no forgery at all, and every forgery be in the quarantine
// topic.
func forgedRecords(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log", "b.log")
	s.killAgent()
	time.Sleep(2 * time.Second) // lines pile up in the files, unread
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	const ip = "10.20.30.40"
	idPrefix := record.DocID([]byte(host), []byte(ip), nil)
	inst, last := map[string]string{}, map[string]int64{}
	for _, d := range s.store.Docs() {
		var doc struct {
			Log struct {
				File   struct{ Path string }
				Offset int64
			}
		}
		if json.Unmarshal(d.Source, &doc) != nil || !strings.HasPrefix(d.ID, idPrefix) {
			continue
		}
		ev := strings.TrimPrefix(d.ID, idPrefix)
		i := strings.LastIndexByte(ev, '-')
		if i < 0 {
			continue
		}
		p := doc.Log.File.Path
		inst[p] = ev[:i]
		last[p] = max(last[p], doc.Log.Offset)
	}
	if len(inst) != 2 {
		t.Fatalf("event ids of %d files seen in the store, want 2", len(inst))
	}
	var msgs []*sarama.ProducerMessage
	for p, in := range inst {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for off := int(last[p]); ; {
			nl := bytes.IndexByte(data[off:], '\n')
			if nl < 0 || off+nl+1 >= len(data) {
				break
			}
			off += nl + 1
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: s.topic, Key: sarama.StringEncoder(p), Value: sarama.StringEncoder("FORGED: nothing happened here"),
				Headers: []sarama.RecordHeader{
					{Key: []byte(record.HeaderHostName), Value: []byte(host)},
					{Key: []byte(record.HeaderHostIP), Value: []byte(ip)},
					{Key: []byte(record.HeaderEventID), Value: []byte(fmt.Sprintf("%s-%d", in, off))},
				},
			})
		}
	}
	if len(msgs) < 1000 {
		t.Fatalf("only %d lines to forge", len(msgs))
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	prod, err := sarama.NewSyncProducer([]string{fmt.Sprintf("127.0.0.1:%d", s.kafkaPort)}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := prod.SendMessages(msgs); err != nil {
		t.Fatalf("forging: %v", err)
	}
	prod.Close()
	s.startAgent()
	s.finish("forged records ahead of the agent", w, func(docs map[string]json.RawMessage) {
		for id, raw := range docs {
			if bytes.Contains(raw, []byte("FORGED")) {
				t.Errorf("forged record stored as %s", id)
				break
			}
		}
		if q := s.records(s.topic + ".quarantine"); q != int64(len(msgs)) {
			t.Errorf("%d records in the quarantine topic, want the %d forged; %s\nthe transfer's claims and held records judged alone:\n%s",
				q, len(msgs), s.quarantineReasons(int(q)), grepLines(s.transfer.LogText(), 60, "claim started", "claim ended", "held records judged alone", "joined consumer group"))
		}
	})
}

// quarantineReasons reads the n records of the quarantine topic and says,
// for the agent's own lines among them, why each was quarantined (counted
// by reason), with where they were in the topic: what to look at when
// a genuine line is found there.
func (s *sys) quarantineReasons(n int) string {
	c := testutil.Consume(s.t, fmt.Sprintf("127.0.0.1:%d", s.kafkaPort), s.topic+".quarantine")
	deadline := time.Now().Add(30 * time.Second)
	for c.Len() < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	reasons := map[string]int{}
	var where []string
	for _, r := range c.Records() {
		if bytes.HasPrefix(r.Value, []byte("FORGED")) {
			continue
		}
		reasons[r.Headers["dlq.reason"]]++
		if len(where) < 5 {
			where = append(where, r.Headers["dlq.source"]+" "+r.Headers[record.HeaderEventID])
		}
	}
	return fmt.Sprintf("genuine lines quarantined, by reason: %v; first at %v", reasons, where)
}

// grepLines returns the last max lines of text holding any of subs.
func grepLines(text string, max int, subs ...string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return strings.Join(out, "\n")
}
