package testutil

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// NeedBinary is the path of a server binary Debian packages
// (scripts/deps.sh installs them). Without it the test is skipped, except
// under CI=true, where a real server that cannot be had is a failure.
func NeedBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("%s not installed (Debian package %s; scripts/deps.sh test installs it)", name, pkg)
		}
		t.Fatalf("%s not installed (Debian package %s)", name, pkg)
	}
	return p
}

// InfluxDB is a real InfluxDB 1.x (Debian's influxd) of this test, in a
// temporary directory; it is stopped at cleanup.
type InfluxDB struct {
	t    testing.TB
	Proc *Proc
	Addr string // host:port of its HTTP API
}

// StartInfluxDB starts influxd and waits until it answers /ping.
func StartInfluxDB(t testing.TB) *InfluxDB {
	t.Helper()
	bin := NeedBinary(t, "influxd", "influxdb")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[http]
  enabled = true
  bind-address = %q
  log-enabled = false
[monitor]
  store-enabled = false
`, FreePort(t), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), addr)
	cf := filepath.Join(dir, "influxdb.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	db := &InfluxDB{t: t, Addr: addr, Proc: StartProc(t, filepath.Join(dir, "influxd.log"), bin, "-config", cf)}
	Eventually(t, 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/ping")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusNoContent
	}, func() string { return "influxd answering /ping; its log:\n" + db.Proc.LogText() })
	return db
}

// Query runs an InfluxQL statement (on db, "" for none) and returns the
// first series' rows.
func (d *InfluxDB) Query(db, q string) [][]any {
	d.t.Helper()
	v := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		v.Set("db", db)
	}
	resp, err := http.PostForm("http://"+d.Addr+"/query", v)
	if err != nil {
		d.t.Fatalf("influx query %q: %v", q, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &r); err != nil || resp.StatusCode != http.StatusOK || r.Error != "" {
		d.t.Fatalf("influx query %q: %d %s", q, resp.StatusCode, body)
	}
	if len(r.Results) == 0 || r.Results[0].Error != "" {
		d.t.Fatalf("influx query %q: %s", q, body)
	}
	if len(r.Results[0].Series) == 0 {
		return nil
	}
	return r.Results[0].Series[0].Values
}

// Prometheus is a real Prometheus (Debian's prometheus) of this test,
// scraping targets every second; it is stopped at cleanup.
type Prometheus struct {
	t    testing.TB
	Proc *Proc
	Addr string
}

// StartPrometheus starts prometheus scraping targets (host:port) as job
// and waits until it is ready.
func StartPrometheus(t testing.TB, job string, targets ...string) *Prometheus {
	t.Helper()
	bin := NeedBinary(t, "prometheus", "prometheus")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	ts, _ := json.Marshal(targets)
	conf := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: %q\n    static_configs:\n      - targets: %s\n", job, ts)
	cf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{t: t, Addr: addr, Proc: StartProc(t, filepath.Join(dir, "prometheus.log"), bin,
		"--config.file="+cf, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr)}
	Eventually(t, 60*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, func() string { return "prometheus ready; its log:\n" + p.Proc.LogText() })
	return p
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Metric map[string]string
	Value  float64
}

// Query runs an instant PromQL query.
func (p *Prometheus) Query(q string) []Sample {
	p.t.Helper()
	resp, err := http.PostForm("http://"+p.Addr+"/api/v1/query", url.Values{"query": {q}})
	if err != nil {
		p.t.Fatalf("promql %q: %v", q, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Status != "success" {
		p.t.Fatalf("promql %q: %d %s", q, resp.StatusCode, body)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, s := range r.Data.Result {
		str, _ := s.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			p.t.Fatalf("promql %q: value %v", q, s.Value)
		}
		out = append(out, Sample{Metric: s.Metric, Value: v})
	}
	return out
}

// HostCPUs and HostBootTime are /proc/stat's count of cpuN lines and its
// btime: what host metrics must report exactly.
func HostCPUs(t testing.TB) (cpus int, btime uint64) {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Skipf("no /proc/stat: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "cpu"); ok && len(rest) > 0 && rest[0] >= '0' && rest[0] <= '9' {
			cpus++
		}
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			btime, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	return cpus, btime
}

// HostMemTotal is /proc/meminfo's MemTotal in bytes.
func HostMemTotal(t testing.TB) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Skipf("no /proc/meminfo: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n * 1024
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// FSSize is statfs(2)'s size of the file system holding path, in bytes.
func FSSize(t testing.TB, path string) uint64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * uint64(st.Bsize)
}

// Within reports whether got is within frac of want.
func Within(got, want, frac float64) bool { return math.Abs(got-want) <= frac*want }

// WatchOpens watches path for opens (inotify, read without blocking, so it
// works on a fake clock too); the returned func counts those seen since
// its last call. Without inotify the test is skipped.
func WatchOpens(t testing.TB, path string) func() int {
	t.Helper()
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		t.Skipf("no inotify: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if _, err := syscall.InotifyAddWatch(fd, path, syscall.IN_OPEN); err != nil {
		t.Fatal(err)
	}
	return func() int {
		n := 0
		buf := make([]byte, 4096)
		for {
			m, err := syscall.Read(fd, buf)
			if m <= 0 || err != nil {
				return n
			}
			for off := 0; off+syscall.SizeofInotifyEvent <= m; {
				ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
				if ev.Mask&syscall.IN_OPEN != 0 {
					n++
				}
				off += syscall.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}
}
