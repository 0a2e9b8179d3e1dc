package indexlife

import (
	"io"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// A topic's retention is etcd's for the topic, else etcd's default_days,
// else the ini's; an invalid document is refused whole and the last good
// one stays; a deleted one brings the ini's back.
func TestOverridesKeepTheLastGoodDocument(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	reg := prometheus.NewRegistry()
	o := NewOverrides(logrus.NewEntry(l), reg)
	if o.Days("web", 30) != 30 {
		t.Fatal("no document: not the ini's")
	}
	o.Update([]byte(`{"default_days":14,"topics":{"web":7,"audit":0}}`), 5, true)
	for topic, want := range map[string]int{"web": 7, "audit": 0, "other": 14} {
		if got := o.Days(topic, 30); got != want {
			t.Errorf("%s: %d days, want %d", topic, got, want)
		}
	}
	o.Update([]byte(`{"topics":{"web":1}`), 6, true) // cut short
	if got := o.Days("web", 30); got != 7 {
		t.Errorf("after an invalid document: %d days, want the last good one's 7", got)
	}
	st := o.Status("/k")
	if st.Revision != 5 || st.ErrorRevision != 6 || st.Error == "" {
		t.Errorf("status %+v", st)
	}
	if n := testutil.MetricValue(reg, "logtransfer_retention_config_errors_total", nil); n != 1 {
		t.Errorf("refusals counted %v", n)
	}
	o.Update([]byte(`{"topics":{"web":3}}`), 7, true) // no default: the ini's for the rest
	if o.Days("web", 30) != 3 || o.Days("other", 30) != 30 || o.Status("/k").Error != "" {
		t.Errorf("a valid document after a refusal: web %d, other %d, %+v", o.Days("web", 30), o.Days("other", 30), o.Status("/k"))
	}
	o.Update(nil, 0, false)
	if o.Days("web", 30) != 30 || o.Status("/k").InForce != nil {
		t.Error("after the delete: not the ini's")
	}
}

func TestParseOverridesRefusesWhatIsNotARetention(t *testing.T) {
	for doc, want := range map[string]string{
		`[]`:                               "cannot unmarshal array",
		`{"days":3}`:                       `unknown field "days"`,
		`{"default_days":-1}`:              "default_days -1: want 0 (keep for ever) to 36500",
		`{"topics":{"a":36501}}`:           `"a": 36501 days`,
		`{"topics":{"bad name":1}}`:        `"bad name"`,
		`{"topics":{"a":1}} {}`:            "data after the JSON object",
		`{"default_days":"7"}`:             "cannot unmarshal string",
		`{"topics":{"a":1.5}}`:             "cannot unmarshal number 1.5",
		strings.Repeat(" ", 65<<10) + `{}`: "bytes, at most 65536",
	} {
		if _, err := ParseOverrides([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60q: %v, want an error with %q", doc, err, want)
		}
	}
	d, err := ParseOverrides([]byte(`{"default_days":0,"topics":{}}`))
	if err != nil || d.DefaultDays == nil || *d.DefaultDays != 0 {
		t.Errorf("default_days 0 (keep for ever): %+v, %v", d, err)
	}
}
