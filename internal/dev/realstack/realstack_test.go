package realstack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ps []int
	// Below the ephemeral range, as testutil.FreePort does: a node
	// restarted on its port must not find it taken by an outgoing connection.
	for len(ps) < n {
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ps = append(ps, p)
	}
	for _, l := range ls {
		l.Close()
	}
	return ps
}

func dist(t *testing.T) *Dist {
	t.Helper()
	src, cache, err := Locate()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Provision(context.Background(), src, cache, testWriter{t})
	if errors.Is(err, ErrNoJava) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// A single node starts, serves metadata, is stopped cleanly, and comes back
// on its data; a second Provision is a no-op.
func TestKafkaSingleNodeRestart(t *testing.T) {
	d := dist(t)
	start := time.Now()
	if _, err := Provision(context.Background(), d.Src, d.Cache, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("second provisioning took %s", el)
	}
	ps := freePorts(t, 2)
	k, err := NewKafka(d, KafkaOptions{Dir: t.TempDir(), BrokerPorts: ps[:1], ControllerPorts: ps[1:]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop() })
	start = time.Now()
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka %s single node ready in %s", KafkaVersion, time.Since(start))
	if err := k.CreateTopic("t1", 2); err != nil {
		t.Fatal(err)
	}
	if err := k.StopNode(0); err != nil {
		t.Fatal(err)
	}
	if brokerListed(k.Addrs()[0], 1) {
		t.Fatal("stopped broker still answers")
	}
	if err := k.StartNode(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if l, err := k.Leader("t1", 1); err != nil || l != 0 {
		t.Fatalf("leader of t1/1 after restart: %d, %v", l, err)
	}
}

func TestKafkaThreeNodes(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 6)
	k, err := NewKafka(d, KafkaOptions{Dir: t.TempDir(), Nodes: 3, BrokerPorts: ps[:3], ControllerPorts: ps[3:]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop() })
	start := time.Now()
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka %s three nodes ready in %s", KafkaVersion, time.Since(start))
	if err := k.CreateTopic("t3", 3); err != nil {
		t.Fatal(err)
	}
	l, err := k.Leader("t3", 0)
	if err != nil {
		t.Fatal(err)
	}
	k.KillNode(l)
	deadline := time.Now().Add(60 * time.Second)
	for {
		nl, err := k.Leader("t3", 0)
		if err == nil && nl >= 0 && nl != l {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after killing node %d: %d, %v", l+1, nl, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("new leader elected %s after the kill", time.Since(deadline.Add(-60*time.Second)))
	start = time.Now()
	if err := k.StartNode(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node back in %s", time.Since(start))
	start = time.Now()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster stopped in %s", time.Since(start))
}

func TestESNode(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 2)
	e, err := NewES(d, ESOptions{Dir: t.TempDir(), HTTPPort: ps[0], TransportPort: ps[1]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop() })
	start := time.Now()
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("elasticsearch %s ready in %s", ESVersion, time.Since(start))
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if e.Process().Alive() {
		t.Fatal("still running after Stop")
	}
}

// The same REST cases against both search engines, one node at a time:
// GET /, a composable index template with ip and date mappings, _bulk
// (one good document, one the ip mapping refuses), a term query on the ip
// field and the index's health.
func TestSearchNode(t *testing.T) {
	for _, engine := range []string{Elasticsearch, OpenSearch} {
		t.Run(engine, func(t *testing.T) { testSearchNode(t, engine) })
	}
}

func testSearchNode(t *testing.T, engine string) {
	d := dist(t)
	if engine == OpenSearch {
		start := time.Now()
		if err := d.ProvisionOpenSearch(context.Background(), testWriter{t}); err != nil {
			t.Fatal(err)
		}
		t.Logf("opensearch provisioned in %s", time.Since(start))
	}
	ps := freePorts(t, 2)
	e, err := NewES(d, ESOptions{Engine: engine, Dir: t.TempDir(), HTTPPort: ps[0], TransportPort: ps[1]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		start := time.Now()
		if err := e.Stop(); err != nil {
			t.Error(err)
		}
		t.Logf("%s stopped in %s", engine, time.Since(start))
	})
	start := time.Now()
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %s ready in %s, RSS %s", engine, e.Version(), time.Since(start), rss(e.Process().PID))

	status, hdr, root := call(t, "GET", e.URL()+"/", "")
	t.Logf("GET / %d, X-Elastic-Product %q: %s", status, hdr.Get("X-Elastic-Product"), root)
	var info struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	if err := json.Unmarshal(root, &info); err != nil {
		t.Fatalf("decoding GET /: %v", err)
	}
	if info.Version.Number != e.Version() {
		t.Errorf("version %q, want %q", info.Version.Number, e.Version())
	}
	wantDist := "" // Elasticsearch has no distribution field
	if engine == OpenSearch {
		wantDist = "opensearch"
	}
	if info.Version.Distribution != wantDist {
		t.Errorf("distribution %q, want %q", info.Version.Distribution, wantDist)
	}

	status, _, body := call(t, "PUT", e.URL()+"/_index_template/logpipe-realstack", `{
		"index_patterns": ["rs-*"],
		"priority": 200,
		"template": {
			"settings": {"number_of_shards": 1, "number_of_replicas": 0},
			"mappings": {"properties": {
				"@timestamp": {"type": "date"},
				"client": {"type": "ip"},
				"message": {"type": "keyword"}
			}}
		}
	}`)
	if status != http.StatusOK || !strings.Contains(string(body), `"acknowledged":true`) {
		t.Fatalf("PUT _index_template: %d %s", status, body)
	}

	status, _, body = call(t, "POST", e.URL()+"/_bulk?refresh=wait_for",
		`{"index":{"_index":"rs-1","_id":"1"}}`+"\n"+
			`{"@timestamp":"2024-05-01T10:00:00Z","client":"10.1.2.3","message":"hello"}`+"\n"+
			`{"index":{"_index":"rs-1","_id":"2"}}`+"\n"+
			`{"@timestamp":"2024-05-01T10:00:01Z","client":"not-an-ip","message":"refused"}`+"\n")
	var bulk struct {
		Errors bool `json:"errors"`
		Items  []struct {
			Index struct {
				Status int `json:"status"`
				Error  struct {
					Type string `json:"type"`
				} `json:"error"`
			} `json:"index"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &bulk); err != nil || status != http.StatusOK || len(bulk.Items) != 2 {
		t.Fatalf("_bulk: %d %s (%v)", status, body, err)
	}
	if !bulk.Errors || bulk.Items[0].Index.Status != http.StatusCreated ||
		bulk.Items[1].Index.Status != http.StatusBadRequest || bulk.Items[1].Index.Error.Type != "mapper_parsing_exception" {
		t.Errorf("_bulk items: %s", body)
	}
	t.Logf("_bulk: %s", body)

	// A CIDR term matches only if the template made client an ip field.
	for _, term := range []string{"10.1.2.3", "10.1.0.0/16"} {
		status, _, body = call(t, "POST", e.URL()+"/rs-1/_search", `{"query":{"term":{"client":"`+term+`"}}}`)
		var res struct {
			Hits struct {
				Total struct {
					Value int `json:"value"`
				} `json:"total"`
				Hits []struct {
					ID     string         `json:"_id"`
					Source map[string]any `json:"_source"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := json.Unmarshal(body, &res); err != nil || status != http.StatusOK {
			t.Fatalf("_search: %d %s (%v)", status, body, err)
		}
		if res.Hits.Total.Value != 1 || len(res.Hits.Hits) != 1 || res.Hits.Hits[0].ID != "1" || res.Hits.Hits[0].Source["message"] != "hello" {
			t.Errorf("term client=%s: %s", term, body)
		}
	}

	status, _, body = call(t, "GET", e.URL()+"/_cluster/health/rs-1?wait_for_status=green&timeout=30s", "")
	if status != http.StatusOK || !strings.Contains(string(body), `"status":"green"`) {
		t.Errorf("health of rs-1: %d %s", status, body)
	}

	status, _, body = call(t, "GET", e.URL()+"/rs-missing/_search", "")
	t.Logf("search of a missing index: %d %s", status, body)
	if status != http.StatusNotFound || !strings.Contains(string(body), `"type":"index_not_found_exception"`) {
		t.Errorf("search of a missing index: %d %s", status, body)
	}
	t.Logf("%s at rest: RSS %s", engine, rss(e.Process().PID))
}

// call sends a JSON (or, to _bulk, NDJSON) request and returns the status,
// headers and body.
func call(t *testing.T, method, url, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.Contains(url, "/_bulk") {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, b
}

// rss is a process's resident set size, from /proc.
func rss(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// A cluster id that starts with "-" (base64url allows it) still formats.
func TestClusterIDStartingWithDash(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 2)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/cluster.id", []byte("-AAAAAAAAAAAAAAAAAAAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := NewKafka(d, KafkaOptions{Dir: dir, BrokerPorts: ps[:1], ControllerPorts: ps[1:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.prepare(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

// Maven's colour resets never reach the terminal of someone running make.
func TestNoANSIDropsEscapeSequences(t *testing.T) {
	var b bytes.Buffer
	w := noANSI{&b}
	for _, in := range []string{"\x1b[0m\x1b[0mrealstack: x\n", "plain\n", "a\x1b[1;31mred\x1b[m b\n"} {
		if n, err := w.Write([]byte(in)); n != len(in) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", in, n, err)
		}
	}
	if got := b.String(); got != "realstack: x\nplain\nared b\n" {
		t.Fatalf("got %q", got)
	}
}
