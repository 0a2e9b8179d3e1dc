package transferd

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// One topic whose index's ingest pipeline goes missing under load never
// stalls the others: its documents are held (retried with backoff, never
// dead-lettered) outside the bulk workers, another topic's records
// produced meanwhile are all stored while it is held, and once the
// pipeline is back every line of both is stored exactly once.
func TestHeldTopicLeavesTheOthersFlowing(t *testing.T) {
	e := newEnv(t, 4)
	const held, flowing = "tholda", "tholdb"
	const n = 6000
	var missing atomic.Bool
	missing.Store(true)
	e.es.SetItemFaultDetail(func(index, _ string, _ []byte) *fakees.Fault {
		if missing.Load() && strings.HasPrefix(index, held+"-") {
			return &fakees.Fault{Status: 400, Type: "illegal_argument_exception", Reason: "pipeline with id [gone] does not exist"}
		}
		return nil
	})
	dlq := testutil.Consume(t, e.kafka.Addr(), held+".dlq")
	e.produce(held, 0, n)
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s, %s\n", held, flowing)))
	testutil.Eventually(t, 30*time.Second, func() bool {
		return testutil.MetricValue(d.Prometheus(), "logtransfer_docs_retried_total", nil) >= 4*500
	},
		func() string { return "the held topic's documents refused: " + status(t, d) })
	e.produce(flowing, 0, n)
	testutil.Eventually(t, 30*time.Second, func() bool { return len(e.es.Docs()[flowing+"-2026.11.23"]) == n },
		func() string {
			return fmt.Sprintf("%d of %d documents of %s stored while %s is held: %s", len(e.es.Docs()[flowing+"-2026.11.23"]), n, flowing, held, status(t, d))
		})
	if _, still := d.writer.Held()[held]; !still || len(e.es.Docs()[held+"-2026.11.23"]) != 0 {
		t.Fatalf("the held topic was let through: %s", status(t, d))
	}
	if code, body := readyz(t, d); code == 200 || !strings.Contains(body, `ingest pipeline "gone" does not exist`) {
		t.Fatalf("/readyz %d %s while a topic is held", code, body)
	}
	missing.Store(false)
	e.waitDocs(2*n, 60*time.Second)
	e.checkDocs(held, n, nil)
	e.checkDocs(flowing, n, nil)
	if dlq.Len() != 0 {
		t.Fatalf("%d dead letters for a missing pipeline", dlq.Len())
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return len(d.writer.Held()) == 0 }, testutil.Msg("nothing held once the pipeline is back"))
}

// The same on Apache Kafka and Elasticsearch 7.17: the ingest pipeline an
// index names as its default_pipeline goes missing while its topic is
// consumed (Elasticsearch refuses to delete a pipeline an index names, so
// the index is pointed at one that does not exist, as a pipeline renamed
// by its owner would leave it); another topic's records produced
// meanwhile are all indexed while the first is held, and once the
// pipeline is there again every line of both is there once, through it.
func TestRealHeldTopicLeavesTheOthersFlowing(t *testing.T) {
	e, es := newRealEnv(t)
	run := time.Now().UnixNano()
	held, flowing := fmt.Sprintf("rholda%d", run), fmt.Sprintf("rholdb%d", run)
	name := fmt.Sprintf("lp-default-%d", run)
	const n = 2000
	es.JSON(t, 200, "PUT", "/_ingest/pipeline/"+name, `{"processors":[{"set":{"field":"labels.ingest","value":"yes"}}]}`, nil)
	point := func(p string) {
		es.JSON(t, 200, "PUT", "/"+held+"-2026.11.23/_settings", `{"index.default_pipeline":"`+p+`"}`, nil)
	}
	es.JSON(t, 200, "PUT", "/"+held+"-2026.11.23", `{"settings":{"index.default_pipeline":"`+name+`","number_of_replicas":0}}`, nil)
	dlq := testutil.Consume(t, e.kafka.Addr(), held+".dlq")
	e.produce(held, 0, n/2)
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s, %s\n", held, flowing)))
	waitCount(t, es, held+"-*", "", 1, 60*time.Second) // flowing through the pipeline
	point(name + "-gone")
	e.produce(held, n/2, n/2)
	testutil.Eventually(t, 60*time.Second, func() bool { return len(d.writer.Held()) > 0 },
		func() string { return "the topic held once its pipeline is gone: " + status(t, d) })
	e.produce(flowing, 0, n)
	waitCount(t, es, flowing+"-*", "", n, 60*time.Second)
	if c := es.Count(t, held+"-*", ""); c >= n {
		t.Fatalf("%d documents of the held topic indexed without their pipeline", c)
	}
	point(name)
	waitCount(t, es, held+"-*", "", n, 90*time.Second)
	if c := es.Count(t, held+"-*", `{"term":{"labels.ingest":"yes"}}`); c != n {
		t.Errorf("%d documents through the pipeline, want %d", c, n)
	}
	for _, topic := range []string{held, flowing} {
		if c := es.Count(t, topic+"-*", ""); c != n {
			t.Errorf("%s: %d documents for %d lines", topic, c, n)
		}
	}
	if dlq.Len() != 0 {
		t.Fatalf("%d dead letters for a missing pipeline", dlq.Len())
	}
}
