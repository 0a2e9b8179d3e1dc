package fakees

// Conformance: the same protocol cases run against this fake and against a
// real Elasticsearch 7.17 node, and the test fails where their answers
// differ in what logtransfer reads: HTTP status, the bulk "errors" flag and
// each item's status, result and error type, template acknowledgements and
// refusals, and _count. The real node is the reference; a difference is a
// bug in the fake.

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

type confStep struct{ method, path, body string }

type confCase struct {
	name  string
	steps []confStep
}

func nd(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

var confCases = []confCase{
	{"index, then the same _id again", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}a","_id":"1"}}`, `{"message":"one"}`)},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}a","_id":"1"}}`, `{"message":"one again"}`)},
	}},
	{"create an existing _id is 409", []confStep{
		{"POST", "/_bulk", nd(`{"create":{"_index":"{p}b","_id":"1"}}`, `{"message":"one"}`)},
		{"POST", "/_bulk", nd(`{"create":{"_index":"{p}b","_id":"1"}}`, `{"message":"one"}`, `{"create":{"_index":"{p}b","_id":"2"}}`, `{"message":"two"}`)},
	}},
	{"index without _id", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}c"}}`, `{"message":"auto"}`)},
	}},
	{"a value, then an object at the same name", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}d","_id":"1"}}`, `{"app":"shop"}`)},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}d","_id":"2"}}`, `{"app.name":"shop"}`, `{"index":{"_index":"{p}d","_id":"3"}}`, `{"app":{"name":"x"}}`)},
	}},
	{"an object, then a value at the same name", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}e","_id":"1"}}`, `{"app":{"name":"x"}}`)},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}e","_id":"2"}}`, `{"app":"shop"}`)},
	}},
	{"a long, then a string that is not a number", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}f","_id":"1"}}`, `{"n":5}`)},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}f","_id":"2"}}`, `{"n":"abc"}`, `{"index":{"_index":"{p}f","_id":"3"}}`, `{"n":"7"}`)},
	}},
	{"a template's long field gets an object", []confStep{
		{"PUT", "/_index_template/{p}tl", `{"index_patterns":["{p}tl-*"],"priority":5,"template":{"mappings":{"properties":{"log":{"properties":{"offset":{"type":"long"}}}}}}}`},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}tl-1","_id":"1"}}`, `{"log":{"offset":{"a":1}}}`, `{"index":{"_index":"{p}tl-1","_id":"2"}}`, `{"log":{"offset":12}}`)},
	}},
	{"strings as keyword by a dynamic template", []confStep{
		{"PUT", "/_index_template/{p}tk", `{"index_patterns":["{p}tk-*"],"priority":6,"template":{"mappings":{"dynamic_templates":[{"s":{"match_mapping_type":"string","mapping":{"type":"keyword","ignore_above":1024}}}]}}}`},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}tk-1","_id":"1"}}`, `{"app":"shop"}`)},
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}tk-1","_id":"2"}}`, `{"app.name":"x"}`)},
	}},
	{"document that is not JSON", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}g","_id":"1"}}`, `not json`, `{"index":{"_index":"{p}g","_id":"2"}}`, `{"message":"fine"}`)},
	}},
	{"invalid index name", []confStep{
		{"POST", "/_bulk", nd(`{"index":{"_index":"{p}UPPER","_id":"1"}}`, `{"message":"x"}`)},
	}},
	{"overlapping templates at one priority", []confStep{
		{"PUT", "/_index_template/{p}t1", `{"index_patterns":["{p}x-*"],"priority":10}`},
		{"PUT", "/_index_template/{p}t2", `{"index_patterns":["{p}x-error-*"],"priority":10}`},
		{"PUT", "/_index_template/{p}t2", `{"index_patterns":["{p}x-error-*"],"priority":11}`},
	}},
	{"_count", []confStep{
		{"POST", "/_bulk?refresh=true", nd(`{"index":{"_index":"{p}h","_id":"1"}}`, `{"m":"a"}`, `{"index":{"_index":"{p}h","_id":"2"}}`, `{"m":"b"}`, `{"index":{"_index":"{p}h","_id":"1"}}`, `{"m":"c"}`)},
		{"GET", "/{p}h/_count", ""},
		{"GET", "/{p}missing/_count", ""},
	}},
}

// summary is what logtransfer reads of an answer, in a stable text form.
func summary(status int, body []byte) string {
	var r struct {
		Errors *bool `json:"errors"`
		Items  []map[string]struct {
			Status int    `json:"status"`
			Result string `json:"result"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
		Error *struct {
			Type string `json:"type"`
		} `json:"error"`
		Count        *int  `json:"count"`
		Acknowledged *bool `json:"acknowledged"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Sprintf("%d (not JSON)", status)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d", status)
	if r.Errors != nil {
		fmt.Fprintf(&b, " errors=%v", *r.Errors)
	}
	for _, it := range r.Items {
		for op, v := range it {
			fmt.Fprintf(&b, " [%s %d %s", op, v.Status, v.Result)
			if v.Error != nil {
				b.WriteString(" " + v.Error.Type)
				if v.Error.Type == "mapper_parsing_exception" {
					// The reason goes into the dead letter: compare it up to the
					// document-specific tail.
					reason, _, _ := strings.Cut(v.Error.Reason, " in document")
					b.WriteString(" (" + reason + ")")
				}
			}
			b.WriteString("]")
		}
	}
	if r.Error != nil {
		b.WriteString(" error=" + r.Error.Type)
	}
	if r.Count != nil {
		fmt.Fprintf(&b, " count=%d", *r.Count)
	}
	if r.Acknowledged != nil {
		fmt.Fprintf(&b, " acknowledged=%v", *r.Acknowledged)
	}
	return b.String()
}

func runCase(t *testing.T, url, prefix string, c confCase) []string {
	es := testutil.ESClient{URL: url}
	var out []string
	for _, s := range c.steps {
		r := strings.NewReplacer("{p}", prefix, "{P}", strings.ToUpper(prefix))
		st, body := es.Do(t, s.method, r.Replace(s.path), r.Replace(s.body))
		out = append(out, summary(st, body))
	}
	return out
}

func TestConformanceWithRealElasticsearch(t *testing.T) {
	real := testutil.SharedRealES(t)
	run := fmt.Sprintf("conf%d-", rand.Intn(1e6))
	var report []string
	for i, c := range confCases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			prefix := fmt.Sprintf("%s%d-", run, i)
			want := runCase(t, real.URL(), prefix, c)
			fake := New(t)
			got := runCase(t, fake.URL(), prefix, c)
			for j := range want {
				line := fmt.Sprintf("%-45s step %d  real: %s", c.name, j+1, want[j])
				if got[j] != want[j] {
					t.Errorf("step %d %s %s:\n  real: %s\n  fake: %s", j+1, c.steps[j].method, c.steps[j].path, want[j], got[j])
					line += "  FAKE DIFFERS: " + got[j]
				}
				report = append(report, line)
			}
		})
	}
	sort.Stable(sort.StringSlice(report))
	if os.Getenv("CONFORMANCE_REPORT") != "" {
		t.Log("\n" + strings.Join(report, "\n"))
	}
}
