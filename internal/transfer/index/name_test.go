package index

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// Period groups times that get one index name: a day for a daily
// pattern, a second otherwise; times a period apart never share a key.
func TestIndexPeriod(t *testing.T) {
	for _, c := range []struct {
		pattern string
		daily   bool
	}{
		{config.DefaultIndex, true}, {"logs-%{+2006.01}", true}, {"%{topic}", true}, {"%{topic}-%{+2006.01.02.15}", false},
		{"%{topic}-%{+2006.01.02-3pm}", false}, {"x-%{+2006-01-02t1504}", false}, {"x-%{+2006.01.02-05}", false}, {"%{topic}-%{+2006.002}", true},
	} {
		n, err := Parse(c.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if n.daily != c.daily {
			t.Errorf("%s: daily %v, want %v", c.pattern, n.daily, c.daily)
		}
		for _, base := range []time.Time{time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC)} {
			for _, d := range []time.Duration{0, time.Second, time.Hour, 13*time.Hour + 59*time.Minute, 24*time.Hour - time.Nanosecond, 24 * time.Hour, 36 * time.Hour} {
				for _, e := range []time.Duration{0, time.Second, 90 * time.Minute, 11 * time.Hour, 24 * time.Hour} {
					a, b := base.Add(d), base.Add(d+e)
					if n.Period(a) == n.Period(b) && n.Name("t", a) != n.Name("t", b) {
						t.Fatalf("%s: %v and %v share period %d but get %s and %s", c.pattern, a, b, n.Period(a), n.Name("t", a), n.Name("t", b))
					}
				}
			}
		}
	}
	n, _ := Parse(config.DefaultIndex)
	if a, b := time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 1, 0, 0, 0, time.UTC); n.Period(a) == n.Period(b) {
		t.Fatal("the days either side of the epoch share a period")
	}
}

func TestIndexNames(t *testing.T) {
	ts := time.Date(2026, 11, 23, 23, 59, 59, 0, time.FixedZone("X", 2*3600)) // 21:59 UTC
	f := func(pattern, topic, wantName, wantPattern string) {
		t.Helper()
		n, err := Parse(pattern)
		if err != nil {
			t.Fatalf("%q: %v", pattern, err)
		}
		if got := n.Name(topic, ts); got != wantName {
			t.Errorf("%q Name = %q, want %q", pattern, got, wantName)
		}
		if got := n.Pattern(topic); got != wantPattern {
			t.Errorf("%q Pattern = %q, want %q", pattern, got, wantPattern)
		}
	}
	f(config.DefaultIndex, "web_log", "web_log-2026.11.23", "web_log-*")
	f("logs-%{topic}-%{+2006.01}", "App_Log", "logs-app_log-2026.11", "logs-app_log-*")
	f("static", "t", "static", "static")
	f("%{topic}", "t", "t", "t")
	for _, bad := range []string{"", "%{topic", "%{nope}", "UPPER-%{topic}", "_x-%{topic}", "a b", "a*b", "%{topic}-%{+15:04:05.000}"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// Time reads back what Name wrote: for any topic and time, the index
// named for them gives a time that names the same index, no later than
// the time itself; an index of another topic, even one the pattern
// matches ("<topic>-x"), or a name with anything added, gives none.
func TestIndexTimeReadsBackName(t *testing.T) {
	patterns := []string{config.DefaultIndex, "logs-%{topic}-%{+2006.01}", "%{topic}-%{+2006.01.02.15}", "%{topic}.%{+2006}.%{+01}.%{+02}", "x-%{topic}-%{+2006-01-02t1504}", "%{topic}-%{+2006.002}"}
	rapid.Check(t, func(t *rapid.T) {
		n, err := Parse(rapid.SampledFrom(patterns).Draw(t, "pattern"))
		if err != nil {
			t.Fatal(err)
		}
		topic := rapid.StringMatching(`[a-z0-9][a-z0-9_.]{0,12}`).Draw(t, "topic")
		at := time.Unix(rapid.Int64Range(0, 4102444800).Draw(t, "unix"), 0).UTC()
		name := n.Name(topic, at)
		got, ok := n.Time(topic, name)
		if !ok || got.After(at) || n.Name(topic, got) != name {
			t.Fatalf("Time(%q, %q) = %v, %v; want a time no later than %v that names it", topic, name, got, ok, at)
		}
		if _, ok := n.Time(topic, n.Name(topic+"-x", at)); ok {
			t.Fatalf("an index of topic %q read as one of %q", topic+"-x", topic)
		}
		if _, ok := n.Time(topic, name+"-restored"); ok {
			t.Fatalf("%q read as an index of %q", name+"-restored", topic)
		}
	})
}
