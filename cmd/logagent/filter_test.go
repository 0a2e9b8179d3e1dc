package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// Health-check lines excluded in the agent never reach Kafka; the file is
// still read to its end (nothing left behind in the registry), the drops
// are counted, and every record names its entry's pipeline.
func TestExcludedLinesNeverReachKafka(t *testing.T) {
	s := newStack(t, "")
	cons := testutil.Consume(t, s.kafka.Addr(), "filtered")
	p := filepath.Join(s.dir, "access.log")
	var b strings.Builder
	for i := 0; i < 200; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "10.0.0.1 - - [01/Dec/2026:10:00:%02d +0000] \"GET /healthz HTTP/1.1\" 200 2\n", i%60)
		} else {
			fmt.Fprintf(&b, "10.0.0.2 - - [01/Dec/2026:10:00:%02d +0000] \"GET /shop/%d HTTP/1.1\" 200 512\n", i%60, i)
		}
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s.etcd.Put(s.key(), fmt.Sprintf(`[{"path":%q,"topic":"filtered","exclude_lines":["\"GET /healthz"],"pipeline":"nginx"}]`, p))
	a := s.start()
	defer a.Term()
	waitForLines(t, cons, 100)
	testutil.Eventually(t, 20*time.Second, func() bool {
		return metric(s.get("/metrics"), fmt.Sprintf(`logagent_file_bytes_behind{path=%q,topic="filtered"}`, p)) == 0
	}, func() string { return "the file read to its end:\n" + s.get("/metrics") })
	if n := metric(s.get("/metrics"), "logagent_events_filtered_total"); n != 100 {
		t.Errorf("logagent_events_filtered_total %v, want 100", n)
	}
	if st := s.get("/status"); !strings.Contains(st, `"filtered": 100`) {
		t.Errorf("/status does not show the file's 100 filtered events:\n%s", st)
	}
	if code := a.Term(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	for _, r := range cons.Records() {
		if strings.Contains(string(r.Value), "/healthz") {
			t.Fatalf("an excluded line reached Kafka: %q", r.Value)
		}
		if r.Headers["pipeline"] != "nginx" {
			t.Fatalf("record without its pipeline header: %v", r.Headers)
		}
	}
	if n := cons.Len(); n != 100 {
		t.Fatalf("%d records, want the 100 kept lines", n)
	}
}
