package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// streamRecords produces records "line i" with event ids "<topic>-i" at
// about 5k/s until the returned stop is called; stop returns how many were
// acknowledged by the broker.
func streamRecords(t *testing.T, addr, topic string) (stop func() int) {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(addr, ",")...), kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		produced int
	)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for ctx.Err() == nil {
			<-tick.C
			mu.Lock()
			from := produced
			mu.Unlock()
			var recs []*kgo.Record
			for i := from; i < from+50; i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("line %d", i)),
					Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte(fmt.Sprintf("%s-%d", topic, i))}}})
			}
			if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			mu.Lock()
			produced += len(recs)
			mu.Unlock()
		}
	}()
	return func() int {
		cancel()
		<-stopped
		prod.Close()
		mu.Lock()
		defer mu.Unlock()
		return produced
	}
}

// Two instances in one consumer group on Apache Kafka's own group
// coordinator, writing to Elasticsearch 7.17; one is SIGKILLed mid-stream.
// The survivor takes its partitions over from the committed offsets, and
// every record is stored once, under its _id.
func TestRealGroupOneOfTwoKilled(t *testing.T) {
	kafka := testutil.SharedRealKafka(t)
	if err := kafka.K.CreateTopic("grouped", 8); err != nil {
		t.Fatal(err)
	}
	node := testutil.SharedRealES(t)
	es := testutil.ESClient{URL: node.URL()}
	ini := writeIni(t, kafka.Addr(), node.URL(), "grouped", 300, "")
	stop := streamRecords(t, kafka.Addr(), "grouped")
	a := start(t, ini, 0)
	b := start(t, ini, 1)
	for _, p := range []*testutil.Proc{a, b} {
		testutil.Eventually(t, 60*time.Second, func() bool { return strings.Contains(p.LogText(), "joined consumer group") },
			testutil.Msg("both instances joined"))
	}
	var have int
	testutil.Eventually(t, 60*time.Second, func() bool { have = es.Count(t, "grouped-*", ""); return have >= 5000 },
		func() string { return fmt.Sprintf("indexing (have %d)", have) })
	a.Kill()
	killedAt := es.Count(t, "grouped-*", "")
	testutil.Eventually(t, 60*time.Second, func() bool { have = es.Count(t, "grouped-*", ""); return have >= killedAt+10000 },
		func() string { return fmt.Sprintf("the survivor goes on (have %d)", have) })
	total := stop()
	testutil.Eventually(t, 120*time.Second, func() bool { have = es.Count(t, "grouped-*", ""); return have >= total },
		func() string { return fmt.Sprintf("%d documents, have %d", total, have) })
	if code := b.Term(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, b.LogText())
	}
	// Every id once and never rewritten: re-deliveries of what a was
	// writing are creates answered 409.
	seen := map[string]bool{}
	overwrites := 0
	es.Scan(t, "grouped-*", `[{"kafka.partition":"asc"},{"kafka.offset":"asc"}]`, false, func(h testutil.Hit) {
		if seen[h.ID] {
			t.Fatalf("_id %s stored twice", h.ID)
		}
		seen[h.ID] = true
		if h.Version > 1 {
			overwrites++
		}
	})
	missing := 0
	for i := 0; i < total; i++ {
		if !seen[record.DocID(nil, nil, []byte(fmt.Sprintf("grouped-%d", i)))] {
			missing++
		}
	}
	t.Logf("RESULT %-28s produced=%d stored=%d lost=%d overwrites=%d", "real group, one of two killed", total, len(seen), missing, overwrites)
	if overwrites != 0 {
		t.Errorf("%d documents rewritten by a re-delivery", overwrites)
	}
	if missing != 0 || len(seen) != total {
		t.Fatalf("%d documents for %d records, %d missing", len(seen), total, missing)
	}
}
