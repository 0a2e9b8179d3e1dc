package main

// The transfer killed where data is at risk: while Elasticsearch refuses
// every request (503) and while bulk answers are slow. Records it has
// consumed but Elasticsearch has not acknowledged must not have their
// offsets committed. scripts/mutants checks that these tests fail when
// offsets are committed on hand-over instead.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func riskIni(t *testing.T, kafka, es string) string {
	return writeIni(t, kafka, es, "risk", 200, "retry_backoff_max = 300ms\n")
}

func produceN(t *testing.T, addr, topic string, from, n int) {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	recs := make([]*kgo.Record, 0, n)
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("line %d", i)),
			Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte(fmt.Sprintf("%s-%d", topic, i))}}})
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// missingIDs counts the records 0..n-1 of topic with no document.
func missingIDs(es *fakees.Server, topic string, n int) int {
	have := map[string]bool{}
	for _, docs := range es.Docs() {
		for id := range docs {
			have[id] = true
		}
	}
	missing := 0
	for i := 0; i < n; i++ {
		if !have[record.DocID(nil, nil, []byte(fmt.Sprintf("%s-%d", topic, i)))] {
			missing++
		}
	}
	return missing
}

func killDuring(t *testing.T, name string, fault, heal func(es *fakees.Server), bite func(es *fakees.Server) bool) {
	kafka := testutil.StartKafka(t, 4)
	es := fakees.New(t)
	const n = 4000
	produceN(t, kafka.Addr(), "risk", 0, n/2)
	ini := riskIni(t, kafka.Addr(), es.URL())
	p := start(t, ini, 0)
	testutil.Eventually(t, 60*time.Second, func() bool { return es.Count() >= 500 }, testutil.Msg("indexing"))
	fault(es)
	produceN(t, kafka.Addr(), "risk", n/2, n/2) // consumed while the fault lasts
	testutil.Eventually(t, 30*time.Second, func() bool { return bite(es) }, testutil.Msg("the fault bites"))
	// Several mark (100 ms) and commit (500 ms) intervals pass with
	// records consumed and not acknowledged.
	time.Sleep(1500 * time.Millisecond)
	p.Kill()
	heal(es)
	p = start(t, ini, 1)
	testutil.Eventually(t, 90*time.Second, func() bool { return missingIDs(es, "risk", n) == 0 },
		func() string { return fmt.Sprintf("%d of %d records missing", missingIDs(es, "risk", n), n) })
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.LogText())
	}
	t.Logf("RESULT %-28s produced=%d stored=%d lost=0 overwrites=%d", name, n, es.Count(), es.Stats().Updated)
}

func TestSIGKILLWhileElasticsearchUnavailable(t *testing.T) {
	// The second half of the records arrives after the fault starts, so
	// the transfer holds unacknowledged ones when killed.
	killDuring(t, "sigkill during ES 503",
		func(es *fakees.Server) { es.SetUnavailable(true) },
		func(es *fakees.Server) { es.SetUnavailable(false) },
		func(es *fakees.Server) bool { return es.Stats().Rejected503Requests >= 3 })
}

func TestSIGKILLWhileBulkAnswersDelayed(t *testing.T) {
	killDuring(t, "sigkill during slow bulk",
		func(es *fakees.Server) { es.SetLatency(3 * time.Second) },
		func(es *fakees.Server) { es.SetLatency(0) },
		func(es *fakees.Server) bool { return es.InFlight() > 0 })
}
