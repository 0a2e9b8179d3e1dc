package transfer

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/transfer/document"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

// ecsReference is the field reference of document.ECSVersion: name and
// type of every ECS field, from the ECS repository's generated/csv/fields.csv
// (tag v8.17.0), its Field and Type columns.
const ecsReference = "testdata/ecs-8.17.0-fields.csv"

// notECS are the fields the documents hold outside ECS, each a name or a
// prefix ending in a dot, and why.
var notECS = map[string]string{
	"kafka.":                       "where the record was read (Filebeat's kafka input names them so)",
	"log.flags":                    "multiline / split (Filebeat's log.flags)",
	"log.offset":                   "where the line starts in its file (Filebeat's log.offset)",
	"event.timestamp_out_of_range": "the bound an index-time stamp crossed (the transfer's own)",
	"fields.":                      "the collect entry's fields, a namespace of their own (Filebeat's fields.*)",
	"json.":                        "a JSON line's keys that would replace the document's own",
}

func loadECS(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(ecsReference)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("reading %s: %v", ecsReference, err)
	}
	out := map[string]string{}
	for _, r := range rows[1:] {
		out[r[0]] = r[1]
	}
	if out["@timestamp"] != "date" || out["host.ip"] != "ip" || len(out) < 1500 {
		t.Fatalf("%s does not look like ECS's field reference (%d fields)", ecsReference, len(out))
	}
	return out
}

// mappedTypes is the template's explicit mapping: each field's type by
// its dotted name.
func mappedTypes(t *testing.T) map[string]string {
	t.Helper()
	var tmpl struct {
		Template struct {
			Mappings struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(eswriter.TemplateBody("web_log", "web_log-*", config.IndexSettings{Shards: 1, Replicas: 0, RefreshInterval: time.Second}), &tmpl); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(prefix string, props map[string]json.RawMessage)
	walk = func(prefix string, props map[string]json.RawMessage) {
		for name, raw := range props {
			var m struct {
				Type       string                     `json:"type"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			json.Unmarshal(raw, &m)
			if m.Properties != nil {
				walk(prefix+name+".", m.Properties)
				continue
			}
			out[prefix+name] = m.Type
		}
	}
	walk("", tmpl.Template.Mappings.Properties)
	return out
}

// family is the type family a type belongs to, as ECS groups them
// (keyword, wildcard and constant_keyword are one family, so are text
// and match_only_text): the engines the tests run lack the x-pack and
// mapper-extras types, so a field is mapped in its family's base type.
func family(typ string) string {
	switch typ {
	case "wildcard", "constant_keyword":
		return "keyword"
	case "match_only_text":
		return "text"
	}
	return typ
}

// leaves walks a document and calls f with each value's dotted name; it
// reports a name that holds a dot (the document would not be nested).
func leaves(t *testing.T, doc map[string]any, prefix string, f func(name string, v any)) {
	for k, v := range doc {
		if strings.Contains(k, ".") {
			t.Errorf("name %q in %q holds a dot: documents are nested objects", k, prefix)
		}
		if m, ok := v.(map[string]any); ok {
			leaves(t, m, prefix+k+".", f)
			continue
		}
		f(prefix+k, v)
	}
}

// Every field the transfer and the built-in pipelines put in a document
// is ECS's, by name and type (the template maps it as ECS types it), but
// for the few kept apart in notECS; and the ECS basics are there.
func TestDocumentsFollowECS(t *testing.T) {
	ecs := loadECS(t)
	mapped := mappedTypes(t)
	idx, err := index.Parse(config.DefaultIndex)
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(os.Stderr)
	c := NewConsumer(Options{Index: idx, MaxFuture: 24 * time.Hour, MaxAge: 7 * 24 * time.Hour}, logrus.NewEntry(l), nil)
	now := time.Now()
	agentHeaders := []string{"host.name", "web-1", "host.ip", "10.0.0.1", "agent.id", "0f8e3b52-6e0d-4c8a-9d43-9f1f0c7e2a11",
		"agent.version", "1.4.0", "event.id", "9f8e7d6c5b4a39281706f5e4d3c2b1a0-1024", "fields", `{"service":"shop","team.name":"web"}`}
	// userKeys are a JSON line's own names: theirs, not the transfer's, so
	// not held to be ECS's; when they are, their type must be ECS's.
	userKeys := map[string]bool{"log.level": true, "trace.id": true}
	lines := []struct{ name, pipeline, line string }{
		{"plain line", "", "GET /x 200"},
		{"nginx", "nginx", `203.0.113.9 - alice [23/Nov/2019:10:11:12 +0100] "GET /api/items?id=42 HTTP/1.1" 404 512 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"`},
		{"apache, client not an address", "apache", `client.example - - [23/Nov/2019:10:11:12 +0100] "POST /form HTTP/1.0" 200 -`},
		{"syslog RFC 3164", "syslog", `<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`},
		{"syslog RFC 5424", "syslog", `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`},
		{"json", "json", `{"message":"hi","time":"2026-12-07T10:00:00Z","log.level":"info","host":"spoofed","trace":{"id":"abc"}}`},
		{"a pipeline that fails", "syslog", `not syslog at all`},
	}
	seen := map[string]bool{}
	for i, tc := range lines {
		hs := append([]string(nil), agentHeaders...)
		if tc.pipeline != "" {
			hs = append(hs, "pipeline", tc.pipeline)
		}
		// One record's index-time stamp lies past the bounds, so
		// event.timestamp_out_of_range is shown too.
		if i == 0 {
			hs = append(hs, "index.time", "1")
		}
		msg := &sarama.ConsumerMessage{Topic: "web_log", Partition: 1, Offset: int64(i), Timestamp: now, Value: []byte(tc.line), Headers: hdrs(hs...),
			Key: []byte("/var/log/nginx/access.log")}
		d, _ := c.document(context.Background(), gatedOf(msg), &claimState{})
		b := body(d)
		var doc map[string]any
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", tc.name, err, b)
		}
		leaves(t, doc, "", func(name string, v any) {
			seen[name] = true
			for k := range notECS {
				if name == k || strings.HasSuffix(k, ".") && strings.HasPrefix(name, k) {
					return
				}
			}
			want, ok := ecs[name]
			if !ok {
				if !userKeys[name] {
					t.Errorf("%s: field %q is not in ECS %s\n%s", tc.name, name, document.ECSVersion, b)
				}
				return
			}
			got, ok := mapped[name]
			if !ok { // mapped as it comes (the template's dynamic mapping)
				switch v.(type) {
				case string:
					got = "keyword"
				case float64:
					got = "float"
				}
			}
			if family(got) != family(want) {
				t.Errorf("%s: field %q is mapped %q, ECS types it %q", tc.name, name, got, want)
			}
		})
	}
	for _, name := range []string{"@timestamp", "message", "ecs.version", "host.name", "host.ip", "agent.type", "agent.id", "agent.name",
		"agent.version", "event.dataset", "event.ingested", "event.created", "error.message", "log.file.path", "log.offset",
		"source.ip", "source.address", "http.request.method", "url.original", "user_agent.original", "log.syslog.priority",
		"process.name", "process.pid", "fields.service", "fields.team.name", "event.timestamp_out_of_range"} {
		if !seen[name] {
			t.Errorf("no document showed %s", name)
		}
	}
	var names []string
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%d fields checked: %s", len(names), strings.Join(names, " "))
}
