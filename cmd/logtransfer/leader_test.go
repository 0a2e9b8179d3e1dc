package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/ctl"
	"github.com/logpipe/logpipe/internal/dev/realstack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// leaderStatus is what /status says of the election and retention.
type leaderStatus struct {
	Leader struct {
		ID      string
		Leading bool
		Leader  string
		Since   time.Time
	}
	Retention struct {
		Deleted []deletion
	}
}

type deletion struct {
	Index string
	At    time.Time
}

func statusOf(addr string) (leaderStatus, bool) {
	var st leaderStatus
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/status")
	if err != nil {
		return st, false
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st) == nil
}

// Three transfers elect one leader in etcd: it alone deletes what expires.
// SIGKILLed, its lease runs out and a follower takes over within the
// lease's TTL and deletes what expires next. Watched all along (every
// 50 ms), at no moment do two say they lead, and each expired index is
// deleted by the one leading then (Apache Kafka, embedded etcd, on
// Elasticsearch 7.17 and on OpenSearch 2.19).
func TestRealLeaderRunsRetentionAndAFollowerTakesOver(t *testing.T) {
	for _, engine := range []string{realstack.Elasticsearch, realstack.OpenSearch} {
		t.Run(engine, func(t *testing.T) { leaderTakeOver(t, engine) })
	}
}

func leaderTakeOver(t *testing.T, engine string) {
	kafka := testutil.SharedRealKafka(t)
	node := testutil.SharedRealSearch(t, engine)
	es := testutil.ESClient{URL: node.URL()}
	etcd := testutil.StartEtcd(t)
	const topic = "leadret"
	addrs := make([]string, 3)
	procs := make([]*testutil.Proc, 3)
	for i := range procs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
		ini := filepath.Join(t.TempDir(), "logtransfer.ini")
		err := os.WriteFile(ini, []byte(fmt.Sprintf(`[kafka]
address = %s
topics = %s
session_timeout = 6s
[etcd]
address = %s
discover_topics = true
election_ttl = 2s
[es]
address = %s
flush_interval = 50ms
[index]
replicas = 0
retention_days = 7
retention_interval = 1s
[transfer]
verify_signatures = false
data_dir = %s
[http]
addr = %s
[log]
level = %s
`, kafka.Addr(), topic, etcd.Endpoint(), node.URL(), t.TempDir(), addrs[i], logLevel())), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		procs[i] = start(t, ini, i)
	}
	// The watcher: who says it leads, every 50 ms, until the test ends.
	var mu sync.Mutex
	var both []string
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			var leading []string
			for i, a := range addrs {
				if st, ok := statusOf(a); ok && st.Leader.Leading && procs[i].Running() {
					leading = append(leading, st.Leader.ID)
				}
			}
			if len(leading) > 1 {
				mu.Lock()
				both = append(both, strings.Join(leading, " and "))
				mu.Unlock()
			}
		}
	}()
	defer func() {
		close(stop)
		<-watched
		mu.Lock()
		defer mu.Unlock()
		if len(both) > 0 {
			t.Errorf("two transfers led at once %d times: %v", len(both), both[0])
		}
	}()

	leader := func() int {
		for i, a := range addrs {
			if st, ok := statusOf(a); ok && st.Leader.Leading && procs[i].Running() {
				return i
			}
		}
		return -1
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return leader() >= 0 }, testutil.Msg("a leader"))
	// The leader installs the topic's template; an index created from it
	// carries the marker, as the transfer's own do.
	testutil.Eventually(t, 30*time.Second, func() bool { st, _ := es.Do(t, "GET", "/_index_template/logpipe-"+topic, ""); return st == 200 },
		testutil.Msg("the leader installed the template"))
	deletedBy := func(index string) int {
		for i, a := range addrs {
			if st, ok := statusOf(a); ok && slices.ContainsFunc(st.Retention.Deleted, func(d deletion) bool { return d.Index == index }) {
				return i
			}
		}
		return -1
	}
	expire := func(daysAgo int) string {
		name := topic + "-" + time.Now().UTC().AddDate(0, 0, -daysAgo).Format("2006.01.02")
		es.JSON(t, 200, "PUT", "/"+name, `{}`, nil)
		return name
	}
	// logctl transfers reads the election: the three, the leader first.
	transfers := func(want int, leaderID string) string {
		var out string
		testutil.Eventually(t, 30*time.Second, func() bool {
			var o, e bytes.Buffer
			if ctl.Run([]string{"-endpoints", etcd.Endpoint(), "transfers"}, nil, &o, &e) != 0 {
				out = e.String()
				return false
			}
			out = o.String()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			return len(lines) == want+1 && strings.HasPrefix(lines[1], leaderID+" ") && strings.Contains(lines[1], "leader")
		}, func() string {
			return fmt.Sprintf("logctl transfers: %d live, %s leading; have:\n%s", want, leaderID, out)
		})
		return out
	}
	idOf := func(i int) string { st, _ := statusOf(addrs[i]); return st.Leader.ID }
	first := leader()
	t.Logf("logctl transfers:\n%s", transfers(3, idOf(first)))
	idx1 := expire(10)
	testutil.Eventually(t, 30*time.Second, func() bool { return deletedBy(idx1) >= 0 }, testutil.Msg("%s deleted", idx1))
	if by := deletedBy(idx1); by != first {
		t.Fatalf("%s deleted by transfer %d; transfer %d leads", idx1, by, first)
	}

	// What the first leader did, before it dies: its acts, and when it
	// took the lead.
	before, _ := statusOf(addrs[first])
	procs[first].Kill()
	killed := time.Now()
	testutil.Eventually(t, 30*time.Second, func() bool { l := leader(); return l >= 0 && l != first }, testutil.Msg("a follower leads"))
	took := time.Since(killed)
	second := leader()
	t.Logf("logctl transfers after the SIGKILL:\n%s", transfers(2, idOf(second)))
	idx2 := expire(11)
	testutil.Eventually(t, 30*time.Second, func() bool { return deletedBy(idx2) >= 0 }, testutil.Msg("%s deleted", idx2))
	if by := deletedBy(idx2); by != second {
		t.Fatalf("%s deleted by transfer %d; transfer %d leads", idx2, by, second)
	}
	after, _ := statusOf(addrs[second])
	t.Logf("%s: transfer %d led from %s and deleted %v; SIGKILLed at %s, transfer %d led from %s (%v later; lease 2 s) and deleted %v", engine,
		first, before.Leader.Since.Format(stampFmt), acts(before.Retention.Deleted), killed.Format(stampFmt),
		second, after.Leader.Since.Format(stampFmt), after.Leader.Since.Sub(killed).Round(10*time.Millisecond), acts(after.Retention.Deleted))
	// Two never act at once: the successor took the lead only after the
	// leader died (its lease ran out), and every act of each was while it
	// led.
	if !after.Leader.Since.After(killed) {
		t.Errorf("transfer %d took the lead at %s, before transfer %d was killed at %s", second, after.Leader.Since.Format(stampFmt), first, killed.Format(stampFmt))
	}
	for _, d := range before.Retention.Deleted {
		if d.At.Before(before.Leader.Since) || d.At.After(killed) {
			t.Errorf("transfer %d deleted %s at %s, outside its lead (from %s to its death at %s)", first, d.Index, d.At.Format(stampFmt), before.Leader.Since.Format(stampFmt), killed.Format(stampFmt))
		}
	}
	for _, d := range after.Retention.Deleted {
		if d.At.Before(after.Leader.Since) {
			t.Errorf("transfer %d deleted %s at %s, before it led (from %s)", second, d.Index, d.At.Format(stampFmt), after.Leader.Since.Format(stampFmt))
		}
	}
	// Within the lease's TTL of the death, plus the campaign and this
	// test's polling of /status.
	if lag := after.Leader.Since.Sub(killed); lag > 2*time.Second+2*time.Second {
		t.Errorf("the take-over took %v for a 2 s lease (seen by the test after %v)", lag, took)
	}
}

const stampFmt = "15:04:05.000"

// acts lists deletions as index at time.
func acts(ds []deletion) string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s at %s", d.Index, d.At.Format(stampFmt))
	}
	return b.String()
}
