package config

import (
	"testing"
	"time"
)

// Period groups times that get one index name: a day for a daily
// pattern, a second otherwise; times a period apart never share a key.
func TestIndexPeriod(t *testing.T) {
	for _, c := range []struct {
		pattern string
		daily   bool
	}{
		{DefaultIndex, true}, {"logs-%{+2006.01}", true}, {"%{topic}", true}, {"%{topic}-%{+2006.01.02.15}", false},
		{"%{topic}-%{+2006.01.02-3pm}", false}, {"x-%{+2006-01-02t1504}", false}, {"x-%{+2006.01.02-05}", false}, {"%{topic}-%{+2006.002}", true},
	} {
		n, err := ParseIndex(c.pattern)
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
	n, _ := ParseIndex(DefaultIndex)
	if a, b := time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 1, 0, 0, 0, time.UTC); n.Period(a) == n.Period(b) {
		t.Fatal("the days either side of the epoch share a period")
	}
}
