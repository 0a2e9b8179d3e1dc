package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

func quietEntry() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func placeConsumer(t testing.TB, pipes *pipeline.Set) *Consumer {
	t.Helper()
	idx, err := index.Parse(config.DefaultIndex)
	if err != nil {
		t.Fatal(err)
	}
	return NewConsumer(Options{Index: idx, MaxFuture: 24 * time.Hour, MaxAge: 7 * 24 * time.Hour, Pipelines: pipes}, quietEntry(), nil)
}

func stampHeader(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// TestPlacement: the index comes from the agent's stamp, bounded by the
// record's own Kafka timestamp; a time parsed from the line is
// @timestamp only.
func TestPlacement(t *testing.T) {
	c := placeConsumer(t, nil)
	kts := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	nginx := `203.0.113.9 - - [23/Nov/2019:10:11:12 +0000] "GET / HTTP/1.1" 404 5 "-" "curl"`
	f := func(name string, msg *sarama.ConsumerMessage, index, outOfRange string, ts time.Time) {
		t.Helper()
		d, _ := c.document(context.Background(), gatedOf(msg), &claimState{})
		if d.Index != index {
			t.Errorf("%s: index %s, want %s", name, d.Index, index)
		}
		var doc struct {
			Timestamp time.Time `json:"@timestamp"`
			Event     struct {
				OutOfRange string `json:"timestamp_out_of_range"`
			}
		}
		if err := json.Unmarshal(body(d), &doc); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, body(d))
		}
		if doc.Event.OutOfRange != outOfRange || (!ts.IsZero() && !doc.Timestamp.Equal(ts)) {
			t.Errorf("%s: @timestamp %v, out of range %q; want %v, %q", name, doc.Timestamp, doc.Event.OutOfRange, ts, outOfRange)
		}
	}
	msg := func(ts time.Time, value string, kv ...string) *sarama.ConsumerMessage {
		return &sarama.ConsumerMessage{Topic: "web", Value: []byte(value), Timestamp: ts, Headers: hdrs(append([]string{"host.name", "h", "event.id", "g-1"}, kv...)...)}
	}
	f("stamped a second before midnight, sent after", msg(kts.Add(6*time.Second), "x", "index.time", stampHeader(kts)), "web-2026.12.01", "", kts.Add(6*time.Second))
	f("no stamp: the Kafka timestamp", msg(kts, "x"), "web-2026.12.01", "", kts)
	f("the line's own 2019 time is @timestamp only", msg(kts, nginx, "index.time", stampHeader(kts), "pipeline", "nginx"),
		"web-2026.12.01", "", time.Date(2019, 11, 23, 10, 11, 12, 0, time.UTC))
	f("unknown pipeline", msg(kts, "x", "index.time", stampHeader(kts), "pipeline", "nope"), "web-2026.12.01", "", kts)
	f("re-sent after the agent was down three days", msg(kts.Add(72*time.Hour), "x", "index.time", stampHeader(kts)), "web-2026.12.01", "", kts.Add(72*time.Hour))
	f("stamp far after the Kafka timestamp", msg(kts, "x", "index.time", stampHeader(kts.Add(400*24*time.Hour))), "web-2026.12.01", "future", kts)
	f("stamp far before it", msg(kts, "x", "index.time", stampHeader(kts.Add(-60*24*time.Hour))), "web-2026.12.01", "past", kts)
	// (@timestamp is then when it was consumed; the index is not.)
	f("no time at all", &sarama.ConsumerMessage{Topic: "web", Value: []byte("x")}, "web-1970.01.01", "undated", time.Time{})
}

// TestPlacementDependsOnTheRecordAlone is the invariant behind create's
// deduplication: every delivery of a record gets the same index and _id,
// whatever the pipelines in force (none loaded, v1, v2 with another time
// layout, deleted), the clock (the fake clock moves across midnights and
// years between deliveries) or the claim state of the consumer.
func TestPlacementDependsOnTheRecordAlone(t *testing.T) {
	v1 := `[{"dissect":{"pattern":"%{ts} %{rest}"}},{"timestamp":{"field":"ts","layouts":["2006-01-02"]}}]`
	v2 := `[{"dissect":{"pattern":"%{day} %{rest}"}},{"timestamp":{"field":"rest","layouts":["15:04:05"]}}]`
	world := func(value string) *pipeline.Set {
		s := pipeline.NewSet(pipeline.DefaultPrefix, quietEntry(), nil)
		if value != "" {
			s.Update(1, map[string]pipeline.Def{pipeline.DefaultPrefix + "app": {Value: []byte(value), Revision: 1}})
		}
		return s
	}
	worlds := []*pipeline.Set{nil, world(""), world(v1), world(v2)}
	// Stated outright first, as rapid may draw few records whose time
	// only some pipeline versions parse: a line whose own day one version
	// parses and another does not is placed in one index under both.
	msg := &sarama.ConsumerMessage{Topic: "app-x", Offset: 7, Value: []byte("2020-01-02 03:04:05 hello"),
		Timestamp: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC), Headers: hdrs("pipeline", "app")}
	var first string
	for i, w := range worlds {
		d, _ := placeConsumer(t, w).document(context.Background(), gatedOf(msg), &claimState{})
		if d == nil {
			t.Fatalf("world %d: no document", i)
		}
		if i == 0 {
			first = d.Index
		} else if d.Index != first {
			t.Fatalf("the line placed in %s under pipeline world %d, in %s under world 0", d.Index, i, first)
		}
	}
	rapid.Check(t, func(rt *rapid.T) {
		var hs []string
		if rapid.Bool().Draw(rt, "agent") {
			hs = append(hs, "host.name", "web-1", "host.ip", "10.0.0.1", "event.id", fmt.Sprintf("%032x-%d", rapid.Uint64().Draw(rt, "gen"), rapid.Int64Range(0, 1<<40).Draw(rt, "offset")))
		}
		switch rapid.IntRange(0, 3).Draw(rt, "stamp") {
		case 1:
			hs = append(hs, "index.time", strconv.FormatInt(rapid.Int64Range(-1<<40, 1<<42).Draw(rt, "stamp ms"), 10))
		case 2:
			hs = append(hs, "index.time", rapid.StringN(0, 12, -1).Draw(rt, "stamp text"))
		}
		if p := rapid.SampledFrom([]string{"", "app", "nginx", "json", "syslog", "missing"}).Draw(rt, "pipeline"); p != "" {
			hs = append(hs, "pipeline", p)
		}
		day := time.Unix(rapid.Int64Range(0, 4102444800).Draw(rt, "day"), 0).UTC()
		value := rapid.SampledFrom([]string{
			day.Format("2006-01-02") + " " + day.Format("15:04:05") + " hello",
			`{"@timestamp":"` + day.Format(time.RFC3339) + `","message":"m"}`,
			`203.0.113.9 - - [` + day.Format("02/Jan/2006:15:04:05 -0700") + `] "GET / HTTP/1.1" 200 5 "-" "-"`,
			"<34>" + day.Format(time.Stamp) + " host app[1]: x",
			"plain line",
		}).Draw(rt, "value")
		msg := &sarama.ConsumerMessage{Topic: rapid.SampledFrom([]string{"web", "app-x"}).Draw(rt, "topic"),
			Partition: rapid.Int32Range(0, 7).Draw(rt, "partition"), Offset: rapid.Int64Range(0, 1<<40).Draw(rt, "kafka offset"),
			Value: []byte(value), Headers: hdrs(hs...)}
		if rapid.IntRange(0, 5).Draw(rt, "kafka ts") > 0 {
			msg.Timestamp = time.UnixMilli(rapid.Int64Range(1, 1<<42).Draw(rt, "kafka ts ms"))
		}
		const deliveries = 4
		var ws [deliveries]int
		var later [deliveries]time.Duration
		for i := range deliveries {
			ws[i] = rapid.IntRange(0, len(worlds)-1).Draw(rt, "world")
			later[i] = time.Duration(rapid.Int64Range(0, 3*365*24).Draw(rt, "hours later")) * time.Hour
		}
		// The deliveries run on a fake clock that moves hours to years
		// (across midnights) between them.
		var got [deliveries][2]string
		var at [deliveries]time.Time
		synctest.Test(t, func(t *testing.T) {
			for i := range deliveries {
				time.Sleep(later[i])
				at[i] = time.Now()
				if d, _ := placeConsumer(t, worlds[ws[i]]).document(context.Background(), gatedOf(msg), &claimState{}); d != nil {
					got[i] = [2]string{d.Index, d.ID}
				}
			}
		})
		for i := range deliveries {
			if got[i][0] == "" {
				rt.Fatalf("delivery %d: no document", i)
			}
			if got[i] != got[0] {
				rt.Fatalf("delivery %d at %v placed the record at %v, the first (at %v) at %v", i, at[i], got[i], at[0], got[0])
			}
		}
	})
}

// signedStub stands for the key ring at the edge: the records are judged
// signed (what a signature proves is the ring's test).
type signedStub struct{}

func (signedStub) Check(_ context.Context, _ []*sarama.ConsumerMessage, _ []record.View, _ time.Time, _ *record.Chunk, out []record.Verdict) bool {
	for i := range out {
		out[i] = record.Verdict{Signed: true}
	}
	return true
}

// A signed record's index is its stamp's day, whatever Kafka timestamp it
// is produced again with (the timestamp is not signed): every copy meets
// its _id in one index and none makes an index of its own. Unsigned
// records keep the bounded rule.
func TestSignedRecordsArePlacedByTheirStamp(t *testing.T) {
	idx, err := index.Parse(config.DefaultIndex)
	if err != nil {
		t.Fatal(err)
	}
	c := NewConsumer(Options{Index: idx, MaxFuture: 24 * time.Hour, MaxAge: 7 * 24 * time.Hour, Verify: signedStub{}}, quietEntry(), nil)
	rapid.Check(t, func(rt *rapid.T) {
		stamp := time.UnixMilli(rapid.Int64Range(1, 4102444800000).Draw(rt, "stamp")).UTC()
		var first *eswriter.Doc
		for i, n := 0, rapid.IntRange(1, 4).Draw(rt, "copies"); i < n; i++ {
			kts := time.UnixMilli(rapid.Int64Range(-1, 4102444800000).Draw(rt, "kts")).UTC()
			msg := &sarama.ConsumerMessage{Topic: "web", Value: []byte("x"), Timestamp: kts,
				Headers: hdrs("host.name", "h", "host.ip", "10.0.0.1", "event.id", "g-1", "index.time", stampHeader(stamp), "sig", "s")}
			if kts.UnixMilli() < 0 {
				msg.Timestamp = time.Time{}
			}
			g := gatedOf(msg)
			g.verdict = record.Verdict{Signed: true}
			d, _ := c.document(context.Background(), g, &claimState{})
			if want := "web-" + stamp.Format("2006.01.02"); d.Index != want {
				rt.Fatalf("copy %d (Kafka timestamp %v): index %s, want %s", i, kts, d.Index, want)
			}
			if first == nil {
				first = d
			} else if d.ID != first.ID {
				rt.Fatalf("copy %d: _id %s, first %s", i, d.ID, first.ID)
			}
		}
	})
}
