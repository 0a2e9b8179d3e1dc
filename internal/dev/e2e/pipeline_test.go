package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// Processing through both daemons, on both backends: an nginx log written
// in November 2019 and an application log with a custom pipeline.
//
//   - The nginx lines are searchable by status code and carry @timestamp
//     from the line (2019-11-23), in the index of the day they were read
//     (the agent's stamp: a re-delivery under another pipeline version
//     meets its _id there).
//   - Health-check lines excluded by the collect entry never reach Kafka
//     (the topic holds only the other lines).
//   - The custom pipeline, changed with etcdctl put while everything runs,
//     applies to the records after the change without a restart: lines
//     before it carry version 1's fields, lines after it version 2's.
func TestProcessingThroughBothDaemons(t *testing.T) {
	for _, be := range backends {
		t.Run(be, func(t *testing.T) {
			if be != "fake" {
				testutil.NeedReal(t)
			}
			processing(t, be)
		})
	}
}

const (
	nginxLines  = 300 // 100 each of 200, 404, 500
	healthLines = 100
	appBatch    = 50
)

func processing(t *testing.T, be string) {
	s := newSys(t, be, "")
	transferHTTP := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	ini, err := os.ReadFile(s.transIni)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.transIni, bytes.Replace(ini, []byte("addr = 127.0.0.1:0"), []byte("addr = "+transferHTTP), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	const appKey = "/logtransfer/pipelines/app"
	version := func(v int) string {
		return fmt.Sprintf(`[{"dissect":{"pattern":"%%{log.level} user=%%{user.name} %%{msg}"}},{"set":{"field":"labels.pipeline_version","value":"v%d"}}]`, v)
	}
	s.etcdctlPut(appKey, version(1))

	access, app := filepath.Join(s.logs, "access.log"), filepath.Join(s.logs, "app.log")
	var b strings.Builder
	for i := 0; i < nginxLines; i++ {
		if i%3 == 0 {
			fmt.Fprintf(&b, "10.9.9.9 - - [23/Nov/2019:08:00:%02d +0100] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\"\n", i%60)
		}
		status := []int{200, 404, 500}[i%3]
		fmt.Fprintf(&b, "203.0.113.%d - - [23/Nov/2019:%02d:%02d:%02d +0100] \"GET /shop/item/%d HTTP/1.1\" %d %d \"-\" \"Mozilla/5.0\"\n",
			i%250, 10+i/3600, (i/60)%60, i%60, i, status, 100+i)
	}
	writeFile(t, access, b.String(), false)
	writeFile(t, app, appLines("INFO", "first batch"), false)
	s.put(fmt.Sprintf(`[{"path":%q,"topic":%q,"pipeline":"nginx","exclude_lines":["\"GET /healthz"]},{"path":%q,"topic":%q,"pipeline":"app"}]`,
		access, s.topic, app, s.topic))
	s.startTransfer()
	s.startAgent()
	waitStored := func(n int) {
		t.Helper()
		testutil.Eventually(t, 90*time.Second, func() bool { return s.store.Count() >= n },
			func() string {
				return fmt.Sprintf("%d documents, have %d\n%s\n%s", n, s.store.Count(), tail(s.agent.LogText(), 20), tail(s.transfer.LogText(), 20))
			})
	}
	waitStored(nginxLines + appBatch)

	// Version 2, with etcdctl; once the transfer reports it in use, new
	// lines follow.
	rev := s.etcdctlPut(appKey, version(2))
	var status string
	testutil.Eventually(t, 30*time.Second, func() bool {
		var st struct {
			Pipelines struct {
				Revisions map[string]int64 `json:"revisions"`
			} `json:"pipelines"`
		}
		status = httpGet("http://" + transferHTTP + "/status")
		return json.Unmarshal([]byte(status), &st) == nil && st.Pipelines.Revisions["app"] == rev
	}, func() string {
		return fmt.Sprintf("the transfer using revision %d of %s; /status %s", rev, appKey, status)
	})
	writeFile(t, app, appLines("WARN", "second batch"), true)
	want := nginxLines + 2*appBatch
	waitStored(want)

	if n := s.records(s.topic); n != int64(want) {
		t.Errorf("the topic holds %d records, want %d: the %d excluded health checks reached Kafka", n, want, healthLines)
	}
	for idx := range s.indexCounts() {
		if strings.HasSuffix(idx, "-2019.11.23") {
			t.Errorf("index %s exists: a line's own time picked its index (indices %v)", idx, s.indexCounts())
		}
	}
	byStatus := map[float64]int{}
	versions := map[string]int{}
	for _, d := range s.store.Docs() {
		var src map[string]any
		if err := json.Unmarshal(d.Source, &src); err != nil {
			t.Fatalf("document %s: %v", d.ID, err)
		}
		msg, _ := src["message"].(string)
		switch {
		case strings.Contains(msg, "/healthz"):
			t.Fatalf("an excluded health check was stored: %s", d.Source)
		case strings.Contains(msg, "HTTP/1.1"):
			code, _ := field(src, "http.response.status_code").(float64)
			byStatus[code]++
			// The agent sends the path as the key and the offset inside
			// the event id; the document has both.
			if p, _ := field(src, "log.file.path").(string); p != access {
				t.Fatalf("nginx document with log.file.path %q, want %s: %s", p, access, d.Source)
			}
			if _, ok := field(src, "log.offset").(float64); !ok {
				t.Fatalf("nginx document without log.offset: %s", d.Source)
			}
			if ts, _ := src["@timestamp"].(string); !strings.HasPrefix(ts, "2019-11-23T") {
				t.Fatalf("nginx document with @timestamp %q, want the line's own 2019-11-23: %s", ts, d.Source)
			}
		default:
			v, _ := field(src, "labels.pipeline_version").(string)
			batch := "first"
			if strings.Contains(msg, "second batch") {
				batch = "second"
			}
			if user, _ := field(src, "user.name").(string); !strings.HasPrefix(user, "u") {
				t.Fatalf("application line not dissected: %s", d.Source)
			}
			versions[batch+" "+v]++
		}
	}
	if byStatus[200] != 100 || byStatus[404] != 100 || byStatus[500] != 100 {
		t.Errorf("nginx documents by status %v, want 100 each of 200, 404 and 500", byStatus)
	}
	if versions["first v1"] != appBatch || versions["second v2"] != appBatch {
		t.Errorf("application documents by batch and pipeline version %v, want %d first v1 and %d second v2", versions, appBatch, appBatch)
	}
	if s.realES != nil { // searchable by status code and by the lines' own day, as Kibana would ask
		es := testutil.ESClient{URL: s.realES.URL()}
		day := s.topic + "-*"
		if n := es.Count(t, day, `{"range":{"@timestamp":{"gte":"2019-11-23T00:00:00Z","lt":"2019-11-24T00:00:00Z"}}}`); n != nginxLines {
			t.Errorf("%d documents dated 2019-11-23, want the %d nginx lines", n, nginxLines)
		}
		if n := es.Count(t, day, `{"term":{"http.response.status_code":404}}`); n != 100 {
			t.Errorf("%d documents with status 404 in %s, want 100", n, day)
		}
		if n := es.Count(t, day, `{"range":{"http.response.status_code":{"gte":500}}}`); n != 100 {
			t.Errorf("%d documents with status >= 500 in %s, want 100", n, day)
		}
		if n := es.Count(t, s.topic+"-*", `{"term":{"labels.pipeline_version":"v2"}}`); n != appBatch {
			t.Errorf("%d documents of pipeline version v2, want %d", n, appBatch)
		}
	}
	if code := s.agent.Term(); code != 0 {
		t.Errorf("agent exit %d", code)
	}
	if code := s.transfer.Term(); code != 0 {
		t.Errorf("transfer exit %d", code)
	}
}

func appLines(level, batch string) string {
	var b strings.Builder
	for i := 0; i < appBatch; i++ {
		fmt.Fprintf(&b, "%s user=u%d %s line %d\n", level, i, batch, i)
	}
	return b.String()
}

func writeFile(t *testing.T, path, content string, appendTo bool) {
	t.Helper()
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// field reads a dotted name from a document source, whether it was sent
// flat ("a.b": v, as the pipelines write) or nested.
func field(src map[string]any, name string) any {
	if v, ok := src[name]; ok {
		return v
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if sub, ok := src[name[:i]].(map[string]any); ok {
			if v := field(sub, name[i+1:]); v != nil {
				return v
			}
		}
	}
	return nil
}

func httpGet(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// etcdctlPut writes key with the etcdctl an operator would use (Debian's
// etcd-client, which scripts/deps.sh installs) and returns the revision it
// created.
func (s *sys) etcdctlPut(key, value string) int64 {
	s.t.Helper()
	etcdctl, err := exec.LookPath("etcdctl")
	if err != nil {
		s.t.Fatalf("etcdctl not found (scripts/deps.sh installs Debian's etcd-client): %v", err)
	}
	var out []byte
	testutil.Eventually(s.t, 30*time.Second, func() bool {
		cmd := exec.Command(etcdctl, "--endpoints="+s.etcdAddr, "--dial-timeout=2s", "put", "-w", "json", key, value)
		cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
		out, err = cmd.CombinedOutput()
		return err == nil
	}, func() string { return fmt.Sprintf("etcdctl put %s: %v %s", key, err, out) })
	var res struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.Header.Revision == 0 {
		s.t.Fatalf("etcdctl put -w json printed %s (%v)", out, err)
	}
	return res.Header.Revision
}
