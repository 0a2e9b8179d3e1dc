package transfer

import (
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// A metrics document is the agent's object with the record's host first,
// on one line; anything else is refused with the reason.
func TestMetricBody(t *testing.T) {
	meta := &record.View{HostName: []byte(`web "1"`), HostIP: []byte("10.0.0.1")}
	f := func(value, want, wantErr string) {
		t.Helper()
		got, err := metricBody(meta, []byte(value))
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%q: error %v, want %q", value, err, wantErr)
			}
			return
		}
		if err != nil || string(got) != want {
			t.Errorf("%q: got %s, %v; want %s", value, got, err, want)
		}
	}
	f(`{"@timestamp":"2026-12-07T12:00:00.000Z","system":{"load":{"1":0.5}}}`,
		`{"host":{"name":"web \"1\"","ip":"10.0.0.1"},"ecs":{"version":"8.17.0"},"@timestamp":"2026-12-07T12:00:00.000Z","system":{"load":{"1":0.5}}}`, "")
	f("{\n  \"a\": 1\n}", `{"host":{"name":"web \"1\"","ip":"10.0.0.1"},"ecs":{"version":"8.17.0"},"a":1}`, "") // one line, whatever came
	f(`{}`, `{"host":{"name":"web \"1\"","ip":"10.0.0.1"},"ecs":{"version":"8.17.0"}}`, "")
	f(`{"ecs":{"version":"1.0.0"}}`, `{"host":{"name":"web \"1\"","ip":"10.0.0.1"},"ecs":{"version":"1.0.0"}}`, "") // its own kept
	f(`{"host":{"name":"other"}}`, "", `names "host"`)
	f(`[1]`, "", "not a JSON object")
	f(`{"a":1}{"b":2}`, "", "not valid JSON")
	f(`{"a":`, "", "not valid JSON")
	f(`"x"`, "", "not a JSON object")
	f(`{"a":"`+strings.Repeat("x", maxMetricDoc)+`"}`, "", "larger than 64 KiB")
}
