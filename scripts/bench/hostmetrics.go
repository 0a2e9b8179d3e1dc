package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NodeExporterVersion is the anchor host metrics are compared with.
const NodeExporterVersion = "v1.12.1"

var nodeExporterBin = flag.String("node-exporter", "", "node_exporter binary for the host metrics rows (default: node_exporter on PATH or in GOPATH/bin, installed with go install "+NodeExporterVersion+" when absent)")

// hostWindow is how long host metrics are measured (one collection or
// scrape a second), after hostSettle.
// hostSettle is past the agent's memory governor's idle release (10 s
// without activity, checked every 2 s), so the agent without host metrics
// is measured as it rests.
const hostWindow, hostSettle = 60 * time.Second, 15 * time.Second

// hostMetrics measures what host metrics add to an agent at rest: its CPU
// over hostWindow with no host metrics, then with a collection every second
// to every output (Kafka, /metrics scraped every second as a Prometheus
// would, InfluxDB line protocol to a sink that accepts it), in one
// process. The row's cost per collection is the difference over the
// collections made.
func (b *bench) hostMetrics(run int) result {
	broker := newDiscardBroker(4, "hostmetrics")
	defer broker.Close()
	var points atomic.Int64
	influx := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		points.Add(n)
		w.WriteHeader(http.StatusNoContent)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	go influx.Serve(ln)
	defer influx.Close()

	a := b.startAgent(run, broker.ListenAddrs()[0], "hostmetrics")
	pid := a.cmd.Process.Pid
	time.Sleep(hostSettle)
	c0, t0, i0 := procCPU(pid), time.Now(), metrics(a.http)
	_, rss0, anon0 := scrapeFor(a.http, pid, hostWindow, false) // /metrics is scraped either way
	c1, t1, i1 := procCPU(pid), time.Now(), metrics(a.http)

	ip := strings.TrimSuffix(strings.TrimPrefix(a.key, "/logagent/"), "/collect_config")
	b.put("/logagent/"+ip+"/metrics_config", fmt.Sprintf(`{"interval":"1s","topic":"hostmetrics","prometheus":true,"influx":{"url":"http://%s/write?db=bench"}}`, ln.Addr()))
	time.Sleep(hostSettle)
	m0 := metrics(a.http)
	c2, t2 := procCPU(pid), time.Now()
	var profiled sync.WaitGroup
	if *profile != "" { // the profiler's own CPU counts in this run's figure
		profiled.Go(func() {
			saveProfile(a.http, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(hostWindow.Seconds())-5), filepath.Join(*profile, fmt.Sprintf("hostmetrics-%d.cpu.pprof", run)))
		})
	}
	series, rss1, anon1 := scrapeFor(a.http, pid, hostWindow, true)
	c3, t3 := procCPU(pid), time.Now()
	profiled.Wait()
	m1 := metrics(a.http)
	_, peakRSS := a.stop()

	collections := m1["logagent_hostmetrics_collections_total"] - m0["logagent_hostmetrics_collections_total"]
	idle := (c1 - c0) / t1.Sub(t0).Seconds()
	per := ((c3 - c2) - idle*t3.Sub(t2).Seconds()) / collections
	const allocs, gcs = "go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count"
	idleAlloc := (i1[allocs] - i0[allocs]) / t1.Sub(t0).Seconds()
	alloc := ((m1[allocs] - m0[allocs]) - idleAlloc*t3.Sub(t2).Seconds()) / collections
	gcPer := ((m1[gcs] - m0[gcs]) - (i1[gcs]-i0[gcs])/t1.Sub(t0).Seconds()*t3.Sub(t2).Seconds()) / collections
	acked := m1["logagent_hostmetrics_docs_acked_total"] - m0["logagent_hostmetrics_docs_acked_total"]
	return result{seconds: t3.Sub(t2).Seconds(), cpu: c3 - c2, rss: peakRSS, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		hostPer: per, hostRSS: rss1 - rss0,
		note: fmt.Sprintf("%.2f ms CPU per collection (%.0f collections, every output, /metrics scraped each second: %d node_ series; %.0f documents acked by the broker, %.0f KB of line protocol taken), "+
			"%.0f KB allocated and %.2f collections of the Go heap per collection, "+
			"%.3f %% of a core at a 10 s interval; RSS %+.1f MB (anonymous %+.1f MB) over the same agent without host metrics (%.1f MB; medians over each window)",
			per*1000, collections, series, acked, float64(points.Load())/1024, alloc/1024, gcPer, per/10*100, (rss1-rss0)/(1<<20), (anon1-anon0)/(1<<20), rss0/(1<<20))}
}

// scrapeFor fetches /metrics from addr every second for d and returns how
// many node_ series the last page had (node only: count them), and the
// median of process pid's resident and anonymous resident memory, read
// after each scrape: the agent's idle governor returns memory now and
// then, and a single reading would say when it last did.
func scrapeFor(addr string, pid int, d time.Duration, node bool) (series int, rss, anon float64) {
	var rs, as []float64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		series = scrape(addr, node)
		rs = append(rs, procStatus(pid, "VmRSS:"))
		as = append(as, procStatus(pid, "RssAnon:"))
	}
	return series, medianOf(rs), medianOf(as)
}

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// scrape fetches one /metrics page and counts its series (those named
// node_ when node is set).
func scrape(addr string, node bool) int {
	resp, err := plainHTTP.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	n := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' || node && !strings.HasPrefix(l, "node_") {
			continue
		}
		n++
	}
	return n
}

// nodeExporter measures node_exporter (the anchor) at rest and scraped
// every second, as hostMetrics measures the agent.
func (b *bench) nodeExporter(run int) result {
	bin := findNodeExporter()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	dir := filepath.Join(b.work, fmt.Sprintf("node-exporter-%d", run))
	check(os.MkdirAll(dir, 0o755))
	lf, err := os.Create(filepath.Join(dir, "node_exporter.log"))
	check(err)
	cmd := exec.Command(bin, "--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = lf, lf
	check(cmd.Start())
	stopc := make(chan struct{})
	peakc := peak(cmd.Process.Pid, stopc)
	waitHTTP(addr)
	pid := cmd.Process.Pid
	time.Sleep(hostSettle)
	c0, t0 := procCPU(pid), time.Now()
	time.Sleep(hostWindow)
	c1, t1 := procCPU(pid), time.Now()
	scrape(addr, false) // the first scrape sets things up
	c2, t2 := procCPU(pid), time.Now()
	scrapes := 0
	series := 0
	for end := time.Now().Add(hostWindow); time.Now().Before(end); time.Sleep(time.Second) {
		series = scrape(addr, false)
		scrapes++
	}
	c3, t3 := procCPU(pid), time.Now()
	rss := procStatus(pid, "VmRSS:")
	close(stopc)
	peakRSS := <-peakc
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	idle := (c1 - c0) / t1.Sub(t0).Seconds()
	per := ((c3 - c2) - idle*t3.Sub(t2).Seconds()) / float64(scrapes)
	return result{seconds: t3.Sub(t2).Seconds(), cpu: c3 - c2, rss: peakRSS, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		hostPer: per, hostRSS: rss,
		note: fmt.Sprintf("node_exporter %s, default collectors: %.2f ms CPU per scrape (%d scrapes, %d series), %.3f %% of a core at a 10 s interval; RSS %.1f MB",
			NodeExporterVersion, per*1000, scrapes, series, per/10*100, rss/(1<<20))}
}

// findNodeExporter finds the anchor's binary, installing it once.
func findNodeExporter() string {
	if *nodeExporterBin != "" {
		return *nodeExporterBin
	}
	if p, err := exec.LookPath("node_exporter"); err == nil && nodeExporterIs(p) {
		return p
	}
	gobin, err := exec.Command("go", "env", "GOPATH").Output()
	check(err)
	p := filepath.Join(strings.TrimSpace(string(gobin)), "bin", "node_exporter")
	if nodeExporterIs(p) {
		return p
	}
	fmt.Fprintf(os.Stderr, "installing node_exporter %s (go install, once) ...\n", NodeExporterVersion)
	cmd := exec.Command("go", "install", "github.com/prometheus/node_exporter@"+NodeExporterVersion)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	check(cmd.Run())
	return p
}

// nodeExporterIs reports whether p is node_exporter NodeExporterVersion.
func nodeExporterIs(p string) bool {
	out, err := exec.Command("go", "version", "-m", p).Output() // go install sets no version flag: read the module's
	return err == nil && strings.Contains(string(out), "github.com/prometheus/node_exporter\t"+NodeExporterVersion)
}

// renderHost is the host metrics table: the agent's rows beside the
// anchor's.
func renderHost(rows [][]result) string {
	var w strings.Builder
	fmt.Fprintf(&w, "\n## Host metrics\n\nCPU per collection (the agent: all metricsets, every output) or per scrape (node_exporter), over %s of one a second, less the process's own CPU at rest; medians of %d runs.\n\n", hostWindow, *runs)
	fmt.Fprintf(&w, "| row | CPU per collection / scrape | %% of a core at 10 s | RSS | note |\n|---|---|---|---|---|\n")
	for _, rs := range rows {
		if len(rs) == 0 {
			continue
		}
		per := median(rs, func(r result) float64 { return r.hostPer })
		rss := median(rs, func(r result) float64 { return r.hostRSS })
		rssCell := fmt.Sprintf("%.1f MB", rss/(1<<20))
		if strings.HasPrefix(rs[0].name, "agent") {
			rssCell = fmt.Sprintf("%+.1f MB over the agent without", rss/(1<<20))
		}
		fmt.Fprintf(&w, "| %s | %.2f ms | %.3f %% | %s | %s |\n", rs[0].name, per*1000, per/10*100, rssCell, rs[len(rs)/2].note)
	}
	return w.String()
}
