package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/transfer/document"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

func hdrs(kv ...string) []*sarama.RecordHeader {
	var out []*sarama.RecordHeader
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &sarama.RecordHeader{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
	}
	return out
}

func TestDocuments(t *testing.T) {
	ts := time.Date(2026, 11, 23, 10, 11, 12, 345000000, time.UTC)
	f := func(name string, msg *sarama.ConsumerMessage, wantID string, want map[string]any) {
		t.Helper()
		meta := record.ParseRecord(msg.Key, kafka.Headers(msg.Headers))
		var fc fieldsCache
		p := partsOf(msg, &meta, fc.fragment(meta.Fields, meta.RootFields), eventTime(msg))
		body := p.Render(nil)
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: body is not valid JSON: %v\n%s", name, err, body)
		}
		if id := docID(msg, &meta, &claimState{}); id != wantID {
			t.Errorf("%s: _id %q, want %q", name, id, wantID)
		}
		// Every document says its ECS version and its dataset (here the
		// topic: no pipeline).
		want["ecs"] = map[string]any{"version": document.ECSVersion}
		ev, _ := want["event"].(map[string]any)
		if ev == nil {
			ev = map[string]any{}
			want["event"] = ev
		}
		ev["dataset"] = msg.Topic
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		if string(gj) != string(wj) {
			t.Errorf("%s:\n got %s\nwant %s", name, gj, wj)
		}
	}
	kafka := func(topic string, p, o float64) map[string]any {
		return map[string]any{"topic": topic, "partition": p, "offset": o}
	}
	f("agent record", &sarama.ConsumerMessage{
		Topic: "web_log", Partition: 3, Offset: 42, Timestamp: ts, Value: []byte(`GET /x "q" 200`),
		Headers: hdrs("host.name", "web-1", "host.ip", "10.0.0.1", "log.file.path", "/var/log/a.log", "log.offset", "1024",
			"event.id", "abc-1024", "log.flags", "multiline,split", "fields", `{"service":"shop","env":"prod"}`),
	}, record.DocID([]byte("web-1"), []byte("10.0.0.1"), []byte("abc-1024")), map[string]any{
		"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": `GET /x "q" 200`,
		"host":  map[string]any{"name": "web-1", "ip": "10.0.0.1"},
		"log":   map[string]any{"file": map[string]any{"path": "/var/log/a.log"}, "offset": 1024.0, "flags": []any{"multiline", "split"}},
		"kafka": kafka("web_log", 3, 42), "fields": map[string]any{"service": "shop", "env": "prod"},
	})
	f("agent record: its agent, fields at the root, nested", &sarama.ConsumerMessage{
		Topic: "web_log", Partition: 3, Offset: 43, Timestamp: ts, Value: []byte(`x`),
		Headers: hdrs("host.name", "web-1", "host.ip", "10.0.0.1", "agent.id", "3f2a", "agent.version", "1.2.3",
			"event.id", "abc-1025", "fields.root", `{"service.name":"shop","labels.env":"prod","host":"evil","event.kind":"x"}`),
	}, record.DocID([]byte("web-1"), []byte("10.0.0.1"), []byte("abc-1025")), map[string]any{
		"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "x",
		"host":  map[string]any{"name": "web-1", "ip": "10.0.0.1"},
		"agent": map[string]any{"type": "logagent", "id": "3f2a", "name": "web-1", "version": "1.2.3"},
		"log":   map[string]any{"offset": 1025.0},
		"kafka": kafka("web_log", 3, 43), "service": map[string]any{"name": "shop"}, "labels": map[string]any{"env": "prod"},
		"event": map[string]any{"kind": "x"},
	})
	f("agent record: path from the key, offset from the event id", &sarama.ConsumerMessage{
		Topic: "web_log", Partition: 1, Offset: 9, Timestamp: ts, Value: []byte("x"), Key: []byte("/var/log/b.log"),
		Headers: hdrs("host.name", "web-1", "host.ip", "10.0.0.1", "event.id", "0123456789abcdef0123456789abcdef-77"),
	}, record.DocID([]byte("web-1"), []byte("10.0.0.1"), []byte("0123456789abcdef0123456789abcdef-77")), map[string]any{
		"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "x",
		"host":  map[string]any{"name": "web-1", "ip": "10.0.0.1"},
		"log":   map[string]any{"file": map[string]any{"path": "/var/log/b.log"}, "offset": 77.0},
		"kafka": kafka("web_log", 1, 9),
	})
	f("foreign producer with a key: not taken for a path", &sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: 8, Timestamp: ts, Value: []byte("k"), Key: []byte("user-42")},
		"t-0-8", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "k", "kafka": kafka("t", 0, 8)})
	f("foreign producer: no headers", &sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: 7, Timestamp: ts, Value: []byte("plain")},
		"t-0-7", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "plain", "kafka": kafka("t", 0, 7)})
	f("invalid UTF-8 and control characters", &sarama.ConsumerMessage{Topic: "t", Offset: 1, Timestamp: ts,
		Value: []byte("bad \xff\xfe utf8\ttab\x01\u2028 é"), Headers: hdrs("log.offset", "not-a-number", "host.ip", "1.2.3.4")},
		"t-0-1", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "bad \ufffd\ufffd utf8\ttab\x01\u2028 é",
			"host": map[string]any{"ip": "1.2.3.4"}, "kafka": kafka("t", 0, 1)})
	f("static fields under fields overwrite nothing", &sarama.ConsumerMessage{Topic: "t", Offset: 2, Timestamp: ts, Value: []byte("x"),
		Headers: hdrs("fields", `{"message":"evil","host.name":"evil","ok":"yes"}`)},
		"t-0-2", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "x", "kafka": kafka("t", 0, 2),
			"fields": map[string]any{"message": "evil", "host": map[string]any{"name": "evil"}, "ok": "yes"}})
	f("static fields at the root overwrite nothing", &sarama.ConsumerMessage{Topic: "t", Offset: 4, Timestamp: ts, Value: []byte("x"),
		Headers: hdrs("host.name", "h", "fields.root", `{"message":"evil","host.name":"evil","ok":"yes"}`)},
		"t-0-4", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "x", "kafka": kafka("t", 0, 4),
			"host": map[string]any{"name": "h"}, "ok": "yes"})
	f("empty value", &sarama.ConsumerMessage{Topic: "t", Offset: 3, Timestamp: ts},
		"t-0-3", map[string]any{"@timestamp": "2026-11-23T10:11:12.345000000Z", "message": "", "kafka": kafka("t", 0, 3)})
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \ slash /`, "nl\ncr\rtab\t", "\x00\x1f\x7f", "€ 日本語 😀", "<html>&amp;", "\u2028\u2029"} {
		got := jsonenc.AppendString(nil, []byte(s))
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != s {
			t.Errorf("appendString(%q) = %s, decodes to %q (%v)", s, got, back, err)
		}
	}
}

func TestEventTimeFallback(t *testing.T) {
	block := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := eventTime(&sarama.ConsumerMessage{BlockTimestamp: block}); !got.Equal(block) {
		t.Fatalf("block timestamp not used: %v", got)
	}
	if got := eventTime(&sarama.ConsumerMessage{}); time.Since(got) > time.Minute {
		t.Fatalf("no timestamp should fall back to now, got %v", got)
	}
}

func BenchmarkDocument(b *testing.B) {
	msg := &sarama.ConsumerMessage{Topic: "web_log", Partition: 3, Offset: 42, Timestamp: time.Now(),
		Value: []byte(strings.Repeat("10.0.0.1 - - [23/Nov/2026:10:11:12 +0000] \"GET /api/items HTTP/1.1\" 200 512 ", 2)),
		Headers: hdrs("host.name", "web-1", "host.ip", "10.0.0.1", "log.file.path", "/var/log/nginx/access.log", "log.offset", "1024",
			"event.id", "9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024", "fields", `{"service":"nginx"}`)}
	b.ReportAllocs()
	var buf []byte
	var fc fieldsCache
	for i := 0; i < b.N; i++ {
		meta := record.ParseRecord(msg.Key, kafka.Headers(msg.Headers))
		p := partsOf(msg, &meta, fc.fragment(meta.Fields, meta.RootFields), msg.Timestamp)
		buf = p.Render(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDocumentNginx is the transfer's work per record with the nginx
// pipeline: headers, the access-log parse, the document and its index.
func BenchmarkDocumentNginx(b *testing.B) {
	idx, err := index.Parse(config.DefaultIndex)
	if err != nil {
		b.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	c := NewConsumer(Options{Index: idx, MaxFuture: 24 * time.Hour}, logrus.NewEntry(l), nil)
	msg := &sarama.ConsumerMessage{Topic: "web_log", Partition: 3, Offset: 42, Timestamp: time.Now(),
		Value: []byte(`203.0.113.9 - alice [23/Nov/2019:10:11:12 +0100] "GET /api/items?id=42 HTTP/1.1" 404 512 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"`),
		Headers: hdrs("host.name", "web-1", "host.ip", "10.0.0.1", "log.file.path", "/var/log/nginx/access.log", "log.offset", "1024",
			"event.id", "9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024", "pipeline", "nginx")}
	st := &claimState{}
	b.ReportAllocs()
	var n int
	for i := 0; i < b.N; i++ {
		d, _ := c.document(context.Background(), gatedOf(msg), st)
		n = len(body(d))
	}
	b.SetBytes(int64(n))
}

// gatedOf is msg as the gate hands it on with no Verifier.
func gatedOf(msg *sarama.ConsumerMessage) *gated {
	return &gated{msg: msg, view: record.ParseRecord(msg.Key, kafka.Headers(msg.Headers)), end: msg.Offset + 1}
}

// body is d's source document, however it is kept.
func body(d *eswriter.Doc) []byte {
	if d.Body == nil {
		return d.Parts.Render(nil)
	}
	return d.Body
}

// Ids handed out from a claim's arena keep their bytes while later ids
// fill it and its successors.
func TestArenaIDsStayIntact(t *testing.T) {
	var st claimState
	var got, want []string
	for i := 0; i < 2000; i++ {
		meta := record.View{HostName: []byte(fmt.Sprintf("host-%d", i%7)), HostIP: []byte("10.0.0.1"),
			EventID: []byte(fmt.Sprintf("0123456789abcdef0123456789abcdef-%d", i*200))}
		got = append(got, docID(&sarama.ConsumerMessage{}, &meta, &st))
		want = append(want, record.DocID(meta.HostName, meta.HostIP, meta.EventID))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("id %d is %q, want %q", i, got[i], want[i])
		}
	}
}
