package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// putKey writes an etcd key, retrying while etcd comes back.
func (s *sys) putKey(key, value string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.cli.Put(ctx, key, value)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("etcd put %s: %v", key, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hostDoc is the part of a stored host metrics document the checks read.
type hostDoc struct {
	Timestamp string `json:"@timestamp"`
	Host      struct {
		Name string `json:"name"`
		IP   string `json:"ip"`
	} `json:"host"`
	Metricset struct {
		Name string `json:"name"`
	} `json:"metricset"`
	System struct {
		Filesystem struct {
			Mount string `json:"mount_point"`
		} `json:"filesystem"`
		Network struct {
			Name string `json:"name"`
		} `json:"network"`
		Diskio struct {
			Name string `json:"name"`
		} `json:"diskio"`
	} `json:"system"`
}

// interval names a document's collection and what it is about.
func (d hostDoc) interval() string {
	return d.Metricset.Name + "|" + d.System.Filesystem.Mount + d.System.Network.Name + d.System.Diskio.Name + "|" + d.Timestamp
}

// metricDocs reads the stored documents of the indices of topic.
func (s *sys) metricDocs(topic string) []hostDoc {
	var raws []json.RawMessage
	if s.backend != "fake" {
		testutil.ESClient{URL: s.realES.URL()}.Scan(s.t, topic+"-*", `[{"@timestamp":"asc"},{"_id":"asc"}]`, true,
			func(h testutil.Hit) { raws = append(raws, h.Source) })
	} else {
		for index, docs := range s.es.Docs() {
			if strings.HasPrefix(index, topic+"-") {
				for _, raw := range docs {
					raws = append(raws, raw)
				}
			}
		}
	}
	out := make([]hostDoc, 0, len(raws))
	for _, r := range raws {
		var d hostDoc
		if err := json.Unmarshal(r, &d); err != nil {
			s.t.Fatalf("stored metrics document %s: %v", r, err)
		}
		out = append(out, d)
	}
	return out
}

// Host metrics every second through a 10 s broker outage: once the
// broker is back every interval is in the store, none twice (one memory
// document per second from the first to the last, and no document of a
// collection twice), with the agent's host; on the real node the shares
// are numbers a range query finds.
func metricsOutage(t *testing.T, be string) {
	s := newSys(t, be, "")
	w := s.start("a.log")
	mtopic := s.topic + "_metrics"
	key := "/logagent/10.20.30.40/metrics_config"
	s.putKey(key, fmt.Sprintf(`{"interval":"1s","topic":%q}`, mtopic))
	memory := func() int {
		n := 0
		for _, d := range s.metricDocs(mtopic) {
			if d.Metricset.Name == "memory" {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return memory() >= 3 },
		func() string {
			return fmt.Sprintf("host metrics stored (memory documents %d)\nagent:\n%s\ntransfer:\n%s", memory(), tail(s.agent.LogText(), 20), tail(s.transfer.LogText(), 40))
		})
	s.stopBroker()
	time.Sleep(10 * time.Second) // the outage, with collections every second
	s.startBroker()
	after := memory()
	testutil.Eventually(t, 60*time.Second, func() bool { return memory() >= after+13 }, testutil.Msg("host metrics flowing again"))
	// Stop sending (the collections go on for nothing), then wait until
	// everything the agent handed on is stored.
	s.putKey(key, `{"interval":"1s"}`)
	var sent float64
	testutil.Eventually(t, 60*time.Second, func() bool {
		sent = s.agentMetric("logagent_hostmetrics_docs_sent_total")
		return sent > 0 && s.agentMetric("logagent_hostmetrics_docs_acked_total") == sent && len(s.metricDocs(mtopic)) >= int(sent)
	}, func() string {
		perTime := map[string]int{}
		for _, d := range s.metricDocs(mtopic) {
			perTime[d.Timestamp]++
		}
		return fmt.Sprintf("every metrics document stored: sent %v, acked %v, stored %d; documents per collection %v\ntransfer:\n%s",
			sent, s.agentMetric("logagent_hostmetrics_docs_acked_total"), len(s.metricDocs(mtopic)), perTime, tail(s.transfer.LogText(), 400))
	})
	docs := s.metricDocs(mtopic)
	seen := map[string]int{}
	var seconds []time.Time
	for _, d := range docs {
		if seen[d.interval()]++; seen[d.interval()] == 2 {
			t.Errorf("%s stored twice", d.interval())
		}
		if d.Host.Name == "" || d.Host.IP != "10.20.30.40" {
			t.Errorf("host %+v", d.Host)
		}
		if d.Metricset.Name == "memory" {
			ts, err := time.Parse(time.RFC3339Nano, d.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			seconds = append(seconds, ts)
		}
	}
	if len(docs) != int(sent) {
		t.Errorf("%d documents stored, the agent sent %v", len(docs), sent)
	}
	sort.Slice(seconds, func(i, j int) bool { return seconds[i].Before(seconds[j]) })
	missing := 0
	for i := 1; i < len(seconds); i++ {
		if gap := seconds[i].Sub(seconds[i-1]); gap != time.Second {
			missing += int(gap/time.Second) - 1
			t.Errorf("no interval between %s and %s", seconds[i-1].Format(time.TimeOnly), seconds[i].Format(time.TimeOnly))
		}
	}
	if skipped := s.agentMetric("logagent_hostmetrics_skipped_total"); skipped != 0 {
		t.Errorf("%v collections skipped", skipped)
	}
	if be != "fake" {
		es := testutil.ESClient{URL: s.realES.URL()}
		cpu := 0
		for _, d := range docs {
			if d.Metricset.Name == "cpu" {
				cpu++
			}
		}
		if n := es.Count(t, mtopic+"-*", `{"range":{"system.cpu.total.norm.pct":{"gte":0,"lte":1}}}`); n != cpu || cpu == 0 {
			t.Errorf("a range query on system.cpu.total.norm.pct finds %d documents of %d cpu documents", n, cpu)
		}
		var m map[string]struct {
			Mappings map[string]struct {
				Mapping map[string]struct {
					Type string `json:"type"`
				} `json:"mapping"`
			} `json:"mappings"`
		}
		es.JSON(t, 200, "GET", "/"+mtopic+"-*/_mapping/field/system.cpu.total.norm.pct", "", &m)
		for index, im := range m {
			if got := im.Mappings["system.cpu.total.norm.pct"].Mapping["pct"].Type; got != "float" {
				t.Errorf("%s maps system.cpu.total.norm.pct as %q, want float", index, got)
			}
		}
		if len(m) == 0 {
			t.Error("no index maps system.cpu.total.norm.pct")
		}
	}
	t.Logf("%d memory documents, one a second from %s to %s; %d documents in all; %d intervals missing",
		len(seconds), seconds[0].Format(time.TimeOnly), seconds[len(seconds)-1].Format(time.TimeOnly), len(docs), missing)
	s.finish("host metrics through broker down 10s", w, nil)
}
