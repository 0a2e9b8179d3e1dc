package indexlife

import (
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

// Whatever the pattern, the retention and the clock: an index the
// transfer owns is expired exactly when every instant its name covers is
// more than the retention old (never an event still within it); an index
// without the marker, marked for another topic, or named otherwise, never
// is, whatever its age.
func TestExpiredExactlyWhenAllItHoldsIsPastRetention(t *testing.T) {
	patterns := []string{config.DefaultIndex, "logs-%{topic}-%{+2006.01}", "%{topic}-%{+2006.01.02.15}", "%{topic}-%{+2006.002}"}
	rapid.Check(t, func(t *rapid.T) {
		n, err := index.Parse(rapid.SampledFrom(patterns).Draw(t, "pattern"))
		if err != nil {
			t.Fatal(err)
		}
		topic := rapid.SampledFrom([]string{"web_log", "app", "nginx"}).Draw(t, "topic")
		days := rapid.IntRange(1, 60).Draw(t, "days")
		event := time.Unix(rapid.Int64Range(1.6e9, 1.9e9).Draw(t, "event"), 0).UTC()
		// Ages near the retention, where a day's error shows, and any.
		age := time.Duration(rapid.Int64Range(-3600, 100*86400).Draw(t, "age")) * time.Second
		if rapid.Bool().Draw(t, "near") {
			age = time.Duration(days)*24*time.Hour + time.Duration(rapid.Int64Range(-2*86400, 2*86400).Draw(t, "around"))*time.Second
		}
		now := event.Add(age)
		name := n.Name(topic, event)

		ix := judge(n, topic, name, eswriter.ManagedBy, topic, days, now)
		// The index also holds the last instant of its period: the
		// latest event it can hold is what must be past the retention.
		last := event
		for n.Name(topic, last.Add(time.Second)) == name && last.Sub(event) < 400*24*time.Hour {
			last = last.Add(time.Hour)
		}
		for n.Name(topic, last) != name {
			last = last.Add(-time.Second)
		}
		if ix.Expired && now.Sub(last) <= time.Duration(days)*24*time.Hour-time.Hour {
			t.Fatalf("%s (event at %v) expired at %v under %d days: an instant it holds (%v) is within the retention", name, event, now, days, last)
		}
		if !ix.Expired && now.Sub(last) > time.Duration(days)*24*time.Hour+time.Hour {
			t.Fatalf("%s kept at %v under %d days: everything in it (up to %v) is older", name, now, days, last)
		}
		for _, other := range []Index{
			judge(n, topic, name, "", topic, days, now),
			judge(n, topic, name, eswriter.ManagedBy, topic+"x", days, now),
			judge(n, topic, n.Name(topic+"-x", event), eswriter.ManagedBy, topic, days, now),
			judge(n, topic, name, eswriter.ManagedBy, topic, 0, now),
		} {
			if other.Expired || other.Kept == "" {
				t.Fatalf("%+v: not the transfer's (or no retention), yet not kept", other)
			}
		}
	})
}
