// Command bench measures the pipeline the way an operator would judge it:
// the real logagent and logtransfer binaries run as processes against an
// in-process Kafka-protocol broker (kfake; for the agent's scenarios one
// that checks, counts and discards what it is sent, see discardBroker) and
// a minimal bulk sink that only parses and acknowledges, with the shipped default settings. It
// prints one table (medians of -runs runs) and writes it to -out.
//
//	go run ./scripts/bench            # or: make bench
//
// Scenarios:
//
//	kcat -P          the generated file into the broker with librdkafka (reference)
//	sarama alone     the same with sarama's AsyncProducer and nothing else (floor)
//	agent file→kafka the same file through logagent (acks=all, registry on)
//	agent 1000 idle  CPU and RSS with 1,000 tailed files that do not grow
//	agent 100 files  100 files written at 1k lines/s each: keeps up? p99 read→ack
//	transfer         records from the broker into the sink, offsets committed after ack
//	transfer nginx   the same with the nginx pipeline: parsed fields, the line's own time
//	end to end       10k lines/s appended → documents acknowledged by the sink
//	host metrics     CPU per collection (every output) and RSS added, beside
//	                 node_exporter's CPU per scrape and RSS
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/keyring"
)

var (
	runs       = flag.Int("runs", 3, "runs per scenario (the table shows medians)")
	lines      = flag.Int("lines", 5_000_000, "lines in the generated file")
	lineSize   = flag.Int("size", 200, "bytes per line, newline included")
	out        = flag.String("out", "scripts/bench/RESULTS.md", "where to write the table")
	only       = flag.String("only", "", "comma-separated scenario names to run (kcat,sarama,agent,idle,many,transfer,nginx,e2e,hostmetrics; fluentbit adds Fluent Bit's rows to agent, idle and transfer when -fluent-bit is found; fleet only when named); empty: all but fleet")
	binDir     = flag.String("bin", "bin", "directory with logagent and logtransfer (built by make build)")
	profile    = flag.String("profile", "", "directory: save a 5 s CPU profile of each agent file→kafka and transfer run there, and the transfer's allocation profile (enables [http] pprof)")
	transferN  = flag.Int("transfer-records", 2_000_000, "records for the transfer scenario")
	keep       = flag.Bool("keep", false, "keep the work directory")
	agentKafka = flag.String("agent-kafka", "", "extra [kafka] settings for logagent, ; separated, e.g. \"flush_interval = 50ms\" (experiments; the table is meant for defaults)")
	agentSign  = flag.Bool("agent-sign", true, "logagent signs its records ([agent] sign = true, the default); false: never (releases before signing)")
	signCost   = flag.Bool("sign-cost", true, "run the agent scenario also with sign = false, interleaved, and note what signing costs")
	agentEnv   = flag.String("agent-env", "", "extra environment for logagent, e.g. GOGC=200 (experiments; the table is meant for defaults)")
	transEnv   = flag.String("transfer-env", "", "extra environment for logtransfer, e.g. GODEBUG=gctrace=1 (experiments)")
	codec      = flag.String("compression", "lz4", "compression for kcat and the agent alike (none, gzip, snappy, lz4, zstd)")
)

type result struct {
	name       string
	seconds    float64 // wall time of the measured part
	bytes      float64
	lines      float64
	cpu        float64 // CPU seconds of the measured process
	rss        float64 // peak RSS bytes
	p50, p99   float64 // seconds; NaN if not measured
	cpuPercent float64 // for idle: % of one core; NaN otherwise
	note       string
	// inputRate marks rows whose rate is the writer's: MB/s and lines/s
	// are what was offered, and keptUp says whether the pipeline followed.
	inputRate bool
	keptUp    bool
	// hostPer and hostRSS are a host metrics row's CPU seconds per
	// collection (or scrape) and the RSS it adds (or has).
	hostPer, hostRSS float64
}

func main() {
	flag.Parse()
	work, err := os.MkdirTemp("", "logpipe-bench")
	check(err)
	if !*keep {
		defer os.RemoveAll(work)
	}
	want := func(s string) bool { return *only == "" || strings.Contains(","+*only+",", ","+s+",") }
	b := &bench{work: work}
	b.startEtcd()
	defer b.etcd.Close()

	var rows [][]result
	var kcat []result
	if want("kcat") || want("sarama") || want("agent") {
		b.genFile()
	}
	if want("kcat") {
		kcat = repeat("kcat -P (librdkafka)", b.kcat)
		rows = append(rows, kcat)
	}
	fb := fluentBitPath() != "" && want("fluentbit")
	if want("sarama") {
		rows = append(rows, repeat("sarama AsyncProducer alone", b.saramaAlone))
	}
	if want("agent") {
		if *agentSign && *signCost {
			signed, unsigned := b.agentSignCost()
			rows = append(rows, signed, unsigned)
		} else {
			rows = append(rows, repeat("agent file→kafka", b.agentFile))
		}
		if fb {
			rows = append(rows, repeat("Fluent Bit tail→kafka", b.fbFile))
		}
	}
	if want("idle") {
		rows = append(rows, repeat("agent 1000 idle files", b.agentIdle))
		if fb {
			rows = append(rows, repeat("Fluent Bit 1000 idle files", b.fbIdle))
		}
	}
	if want("many") {
		rows = append(rows, repeat("agent 100 files × 1k/s", b.agentMany))
	}
	if want("transfer") {
		rows = append(rows, repeat("transfer kafka→bulk sink", func(run int) result { return b.transfer(run, "") }))
		if fb {
			rows = append(rows, repeat("Fluent Bit kafka→es sink", b.fbTransfer))
		}
	}
	if want("nginx") {
		rows = append(rows, repeat("transfer, nginx pipeline", func(run int) result { return b.transfer(run, "nginx") }))
	}
	if want("e2e") {
		rows = append(rows, repeat("end to end 10k lines/s", b.endToEnd))
	}
	var host [][]result
	if want("hostmetrics") {
		host = append(host, repeat("agent host metrics, 1 s", b.hostMetrics), repeat("node_exporter "+NodeExporterVersion+", scraped 1 s", b.nodeExporter))
	}
	table := ""
	if len(rows) > 0 {
		table = render(rows, kcat)
	}
	if len(host) > 0 {
		table += renderHost(host)
	}
	if strings.Contains(","+*only+",", ",fleet,") { // only on demand: it takes minutes and hundreds of processes
		table += b.fleet()
	}
	fmt.Print(table)
	if *out != "" {
		check(os.WriteFile(*out, []byte(table), 0o644))
		fmt.Println("written to", *out)
	}
}

func repeat(name string, f func(run int) result) []result {
	var rs []result
	for i := 0; i < *runs; i++ {
		r := f(i)
		r.name = name
		fmt.Fprintf(os.Stderr, "  %-28s run %d: %.2fs %.1f MB/s %.0f lines/s cpu %.2fs rss %.1f MB %s\n", name, i+1, r.seconds,
			r.bytes/r.seconds/1e6, r.lines/r.seconds, r.cpu, r.rss/(1<<20), r.note)
		rs = append(rs, r)
	}
	return rs
}

func median(rs []result, f func(result) float64) float64 {
	var v []float64
	for _, r := range rs {
		if x := f(r); !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func render(rows [][]result, kcat []result) string {
	var w strings.Builder
	fmt.Fprintf(&w, "# Benchmark results\n\n")
	fmt.Fprintf(&w, "`make bench` on %s, %d CPUs, %s; medians of %d runs; %d lines × %d bytes; shipped default settings, compression %s for kcat and the agent alike. Throughput is counted where the data arrives (the broker's end offsets, the bulk sink's documents). Rows marked \"offered\" run at the writer's rate and say whether the pipeline kept up.\n\n",
		hostname(), numCPU(), time.Now().UTC().Format("2006-01-02 15:04 MST"), *runs, *lines, *lineSize, *codec)
	fmt.Fprintf(&w, "| scenario | MB/s | lines/s | CPU s/GB | peak RSS MB | latency p50 / p99 | vs kcat -P | note |\n|---|---|---|---|---|---|---|---|\n")
	kmbs := math.NaN()
	if len(kcat) > 0 {
		kmbs = median(kcat, func(r result) float64 { return r.bytes / r.seconds / 1e6 })
	}
	for _, rs := range rows {
		if len(rs) == 0 {
			continue
		}
		mbs := median(rs, func(r result) float64 { return r.bytes / r.seconds / 1e6 })
		lps := median(rs, func(r result) float64 { return r.lines / r.seconds })
		cpg := median(rs, func(r result) float64 {
			if r.bytes == 0 {
				return math.NaN()
			}
			return r.cpu / (r.bytes / 1e9)
		})
		rss := median(rs, func(r result) float64 { return r.rss / (1 << 20) })
		p50 := median(rs, func(r result) float64 { return r.p50 })
		p99 := median(rs, func(r result) float64 { return r.p99 })
		cpuPct := median(rs, func(r result) float64 { return r.cpuPercent })
		lat := "–"
		if !math.IsNaN(p99) {
			lat = fmt.Sprintf("%s / %s", dur(p50), dur(p99))
		}
		ratio := "–"
		if !math.IsNaN(kmbs) && !math.IsNaN(mbs) && mbs > 0 && strings.Contains(rs[0].name, "file→kafka") {
			ratio = fmt.Sprintf("%.2f×", mbs/kmbs)
		}
		note := rs[len(rs)/2].note
		if !math.IsNaN(cpuPct) {
			note = fmt.Sprintf("%.2f %% of one core; %s", cpuPct, note)
		}
		mbsCell, lpsCell := num(mbs, 1), num(lps, 0)
		if rs[0].inputRate {
			// The writer's rate, not a throughput: say whether it was followed.
			kept := 0
			for _, r := range rs {
				if r.keptUp {
					kept++
				}
			}
			verdict := fmt.Sprintf("kept up %d/%d", kept, len(rs))
			mbsCell = fmt.Sprintf("%s offered (%s)", mbsCell, verdict)
			lpsCell = fmt.Sprintf("%s offered", lpsCell)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %s | %.1f | %s | %s | %s |\n", rs[0].name, mbsCell, lpsCell, num(cpg, 2), rss, lat, ratio, note)
	}
	return w.String()
}

func num(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) || v == 0 {
		return "–"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func dur(s float64) string {
	if math.IsNaN(s) {
		return "–"
	}
	if s < 1 {
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}

func hostname() string { h, _ := os.Hostname(); return h }

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type bench struct {
	work string
	etcd *embed.Etcd
	// signer signs the records fill produces.
	signer *record.SigningKey
	cli    *clientv3.Client
	ep     string
	file   string
	// unsigned starts agents with sign = false (the signing cost's row).
	unsigned bool
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (b *bench) startEtcd() {
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(b.work, "etcd")
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort()))
	pu, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", freePort()))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	check(err)
	<-e.Server.ReadyNotify()
	b.etcd, b.ep = e, cu.Host
	b.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{b.ep}, Logger: zap.NewNop()})
	check(err)
	// The transfer scenarios' records are signed as an agent of
	// bench-host/10.0.0.1 would sign them, and checked (the default).
	k, err := keyring.NewKey(time.Now())
	check(err)
	doc, err := json.Marshal(keyring.KeyDoc{IP: "10.0.0.1", Host: "bench-host", Keys: []keyring.Key{k}})
	check(err)
	parsed, err := keyring.Parse(doc)
	check(err)
	b.put("/logagent/keys/10.0.0.1", string(doc))
	b.signer = parsed.Signing()
}

// signLine is the agent's [agent] sign setting when -agent-sign=false or
// for the signing cost's row, and nothing otherwise (the default; a
// release before signing refuses the key).
func (b *bench) signLine() string {
	if *agentSign && !b.unsigned {
		return ""
	}
	return "sign = false\n"
}

// agentSignCost runs the agent scenario signed and with sign = false,
// interleaved run by run (the order alternating) so that drift on shared
// cores weighs on both alike, and notes on the signed row what signing
// costs: the median of the runs' paired CPU ratios.
func (b *bench) agentSignCost() (signed, unsigned []result) {
	const name, uname = "agent file→kafka", "agent file→kafka, sign = false"
	one := func(i int, off bool) {
		b.unsigned = off
		r := b.agentFile(i)
		b.unsigned = false
		n := name
		if off {
			n = uname
			unsigned = append(unsigned, r)
		} else {
			signed = append(signed, r)
		}
		fmt.Fprintf(os.Stderr, "  %-28s run %d: %.2fs %.1f MB/s %.0f lines/s cpu %.2fs rss %.1f MB %s\n", n, i+1, r.seconds,
			r.bytes/r.seconds/1e6, r.lines/r.seconds, r.cpu, r.rss/(1<<20), r.note)
	}
	for i := 0; i < *runs; i++ {
		one(i, i%2 == 0)
		one(i, i%2 != 0)
	}
	var ratios []float64
	for i := range signed {
		ratios = append(ratios, signed[i].cpu/signed[i].bytes/(unsigned[i].cpu/unsigned[i].bytes))
	}
	sort.Float64s(ratios)
	cost := fmt.Sprintf("; signing costs %+.1f %% CPU per GB (median of %d paired runs against the sign = false row; paired ratios %.2f…%.2f)",
		100*(ratios[len(ratios)/2]-1), len(ratios), ratios[0], ratios[len(ratios)-1])
	fmt.Fprintln(os.Stderr, "  "+cost[2:])
	for i := range signed {
		signed[i].name, signed[i].note = name, signed[i].note+cost
	}
	for i := range unsigned {
		unsigned[i].name = uname
	}
	return signed, unsigned
}

func (b *bench) put(key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := b.cli.Put(ctx, key, value)
	check(err)
}

// genFile writes lines of lineSize bytes that look like access logs.
func (b *bench) genFile() {
	b.file = filepath.Join(b.work, "big.log")
	f, err := os.Create(b.file)
	check(err)
	w := bufio.NewWriterSize(f, 1<<20)
	pad := strings.Repeat("x", *lineSize)
	for i := 0; i < *lines; i++ {
		head := fmt.Sprintf("10.%d.%d.%d - - [23/Nov/2026:10:00:00 +0000] \"GET /api/items/%d HTTP/1.1\" 200 %d \"-\" \"bench\" ", i%256, (i/256)%256, i%7, i, i%5000)
		if len(head) > *lineSize-1 {
			head = head[:*lineSize-1]
		}
		w.WriteString(head)
		w.WriteString(pad[:*lineSize-1-len(head)])
		w.WriteByte('\n')
	}
	check(w.Flush())
	check(f.Close())
	// Warm the page cache: the measure is from page cache.
	f, _ = os.Open(b.file)
	io.Copy(io.Discard, f)
	f.Close()
}

func newBroker(partitions int32, topics ...string) *kfake.Cluster {
	c, err := kfake.NewCluster(kfake.Ports(freePort()), kfake.SeedTopics(partitions, topics...), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(int(partitions)))
	check(err)
	return c
}

// usage returns the CPU seconds of a finished process. (Its rusage
// ru_maxrss is not used for memory: on Linux it includes the parent's RSS
// at fork time, i.e. this benchmark's in-process broker.)
func usage(ps *os.ProcessState) float64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// peak samples a running process's VmHWM (its own peak RSS) until stop is
// closed and returns the largest value seen.
func peak(pid int, stop <-chan struct{}) <-chan float64 {
	out := make(chan float64, 1)
	go func() {
		var m float64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if v := procStatus(pid, "VmHWM:"); !math.IsNaN(v) {
				m = math.Max(m, v)
			}
			select {
			case <-stop:
				out <- m
				return
			case <-t.C:
			}
		}
	}()
	return out
}

func (b *bench) kcat(int) result {
	return b.sender("kcat", func(addr string) *exec.Cmd {
		return exec.Command("kcat", "-P", "-b", addr, "-t", "bench", "-z", *codec, "-l", b.file)
	}, "install it: apt-get install kcat")
}

// saramaAlone is sarama's AsyncProducer with the agent's settings and
// nothing else (scripts/saramafloor): the floor under the agent's CPU.
func (b *bench) saramaAlone(int) result {
	return b.sender("saramafloor", func(addr string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(*binDir, "saramafloor"), "-broker", addr, "-topic", "bench", "-compression", *codec, "-file", b.file)
		if e := os.Getenv("SARAMAFLOOR_ENV"); e != "" { // experiments: e.g. GOGC=off GOMEMLIMIT=2GiB
			cmd.Env = append(os.Environ(), strings.Fields(e)...)
		}
		return cmd
	}, "make build builds it")
}

// sender runs a program that sends the generated file to the broker and
// exits when all is acknowledged.
func (b *bench) sender(name string, command func(addr string) *exec.Cmd, hint string) result {
	broker := newDiscardBroker(4, "bench")
	defer broker.Close()
	start := time.Now()
	cmd := command(broker.addr())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		check(fmt.Errorf("%s: %v (%s)", name, err, hint))
	}
	stop := make(chan struct{})
	peakc := peak(cmd.Process.Pid, stop)
	err := cmd.Wait()
	close(stop)
	if err != nil {
		check(fmt.Errorf("%s: %v: %s", name, err, stderr.String()))
	}
	secs := time.Since(start).Seconds()
	cpu, rss := usage(cmd.ProcessState), <-peakc
	if got := broker.records("bench"); got != int64(*lines) {
		check(fmt.Errorf("%s: the broker holds %d records, want %d", name, got, *lines))
	}
	return result{seconds: secs, bytes: float64(*lines * *lineSize), lines: float64(*lines), cpu: cpu, rss: rss, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		note: "counted in the broker"}
}

// agent is a logagent subprocess.
type agent struct {
	cmd   *exec.Cmd
	http  string
	key   string
	stopc chan struct{}
	peakc <-chan float64
}

func (b *bench) startAgent(run int, brokerAddr, name string) *agent {
	if b.unsigned {
		name += "-unsigned" // a registry and a host of its own
	}
	dir := filepath.Join(b.work, fmt.Sprintf("%s-%d", name, run))
	check(os.MkdirAll(dir, 0o755))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	ip := fmt.Sprintf("10.99.%d.%d", run, len(name))
	ini := filepath.Join(dir, "logagent.ini")
	check(os.WriteFile(ini, []byte(fmt.Sprintf("[kafka]\naddress = %s\ncompression = %s\n%s\n[etcd]\naddress = %s\n[agent]\n%sip = %s\ndata_dir = %s\nallowed_paths = /**\n[http]\naddr = %s\npprof = %v\n[log]\nlevel = warn\n",
		brokerAddr, *codec, strings.ReplaceAll(*agentKafka, ";", "\n"), b.ep, b.signLine(), ip, filepath.Join(dir, "data"), httpAddr, *profile != "")), 0o644))
	cmd := exec.Command(filepath.Join(*binDir, "logagent"), "-config", ini)
	if *agentEnv != "" {
		cmd.Env = append(os.Environ(), strings.Fields(*agentEnv)...)
	}
	lf, err := os.Create(filepath.Join(dir, "agent.log"))
	check(err)
	cmd.Stdout, cmd.Stderr = lf, lf
	check(cmd.Start())
	a := &agent{cmd: cmd, http: httpAddr, key: "/logagent/" + ip + "/collect_config", stopc: make(chan struct{})}
	a.peakc = peak(cmd.Process.Pid, a.stopc)
	waitHTTP(httpAddr)
	return a
}

func (a *agent) stop() (cpu, rss float64) {
	close(a.stopc)
	rss = <-a.peakc
	a.cmd.Process.Signal(syscall.SIGTERM)
	a.cmd.Wait()
	return usage(a.cmd.ProcessState), rss
}

func waitHTTP(addr string) {
	for i := 0; i < 300; i++ {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	check(fmt.Errorf("%s did not start", addr))
}

// plainHTTP does not ask for gzip: compressing /metrics at every poll
// would cost the measured process CPU of its own.
var plainHTTP = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}

// metrics fetches a Prometheus text page into name{labels} -> value.
func metrics(addr string) map[string]float64 {
	resp, err := plainHTTP.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err == nil {
			m[l[:i]] = v
		}
	}
	return m
}

// quantile estimates a quantile from a Prometheus histogram in m.
func quantile(m map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	for k, v := range m {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		i := strings.Index(k, `le="`)
		s := k[i+4 : len(k)-2]
		le, err := strconv.ParseFloat(s, 64)
		if s == "+Inf" {
			le, err = math.Inf(1), nil
		}
		if err == nil {
			bs = append(bs, bucket{le, v})
		}
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return math.NaN()
	}
	total := bs[len(bs)-1].n
	rank := q * total
	prevLe, prevN := 0.0, 0.0
	for _, b := range bs {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return prevLe
			}
			return prevLe + (b.le-prevLe)*(rank-prevN)/math.Max(b.n-prevN, 1)
		}
		prevLe, prevN = b.le, b.n
	}
	return prevLe
}

func (b *bench) agentFile(run int) result {
	broker := newDiscardBroker(4, "bench")
	defer broker.Close()
	a := b.startAgent(run, broker.ListenAddrs()[0], "file")
	m0 := metrics(a.http)
	mallocs0, allocBytes0, gcs0 := m0["go_memstats_mallocs_total"], m0["go_memstats_alloc_bytes_total"], m0["go_gc_duration_seconds_count"]
	saves0 := m0["logagent_registry_saves_total"]
	start := time.Now()
	b.put(a.key, fmt.Sprintf(`[{"path":%q,"topic":"bench"}]`, b.file))
	// The profiles are taken while the agent runs; one that outlasts the
	// run is waited for before the agent is stopped.
	var profiles sync.WaitGroup
	if *profile != "" {
		profiles.Go(func() {
			saveProfile(a.http, "/debug/pprof/profile?seconds=5", filepath.Join(*profile, fmt.Sprintf("agent-%d.cpu.pprof", run)))
			saveProfile(a.http, "/debug/pprof/heap?gc=1", filepath.Join(*profile, fmt.Sprintf("agent-%d.heap.pprof", run)))
		})
		benchProfile(filepath.Join(*profile, fmt.Sprintf("agent-%d.bench.cpu.pprof", run)))
		profiles.Go(func() { // where the goroutines wait, mid-run
			time.Sleep(time.Second)
			saveProfile(a.http, "/debug/pprof/goroutine?debug=1", filepath.Join(*profile, fmt.Sprintf("agent-%d.goroutines.txt", run)))
			// What waits on what (go tool trace): 1 s mid-run.
			saveProfile(a.http, "/debug/pprof/trace?seconds=1", filepath.Join(*profile, fmt.Sprintf("agent-%d.trace", run)))
		})
	}
	for broker.records("bench") < int64(*lines) {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("the broker did not get the whole file in 10 minutes"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	// The registry must have followed the acks (the agent advances it only
	// on acknowledgement): wait until it reports every line acknowledged.
	for metrics(a.http)["logagent_events_acked_total"] < float64(*lines) {
		if time.Since(start) > 11*time.Minute {
			check(fmt.Errorf("the broker has the file but the agent counts fewer acks"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	m := metrics(a.http)
	if *profile != "" {
		saveProfile(a.http, "/debug/pprof/allocs", filepath.Join(*profile, fmt.Sprintf("agent-%d.allocs.pprof", run)))
	}
	profiles.Wait()
	cpu, rss := a.stop()
	allocs := (m["go_memstats_mallocs_total"] - mallocs0) / float64(*lines)
	allocBytes := (m["go_memstats_alloc_bytes_total"] - allocBytes0) / float64(*lines)
	return result{seconds: secs, bytes: float64(*lines * *lineSize), lines: float64(*lines), cpu: cpu, rss: rss,
		p50: quantile(m, "logagent_ack_latency_seconds", 0.5), p99: quantile(m, "logagent_ack_latency_seconds", 0.99), cpuPercent: math.NaN(),
		note: fmt.Sprintf("counted in the broker; %.1f heap allocations and %.0f bytes allocated per line (whole process), %.0f GC cycles; %.0f registry saves", allocs, allocBytes, m["go_gc_duration_seconds_count"]-gcs0, m["logagent_registry_saves_total"]-saves0)}
}

// procCPU returns utime+stime of pid in seconds.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// procStatus reads a "kB" field of /proc/<pid>/status in bytes.
func procStatus(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return math.NaN()
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return math.NaN()
}

// idleFiles is the idle scenarios' directory of idleN one-line files.
func (b *bench) idleFiles(name string) string {
	dir := filepath.Join(b.work, name)
	check(os.MkdirAll(dir, 0o755))
	for i := 0; i < idleN; i++ {
		check(os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), []byte("one line\n"), 0o644))
	}
	return dir
}

const idleN = 1000

// idleSettle is how long an idle scenario waits after the last line was
// sent before it measures for idleWindow: long enough for what a process
// does once idle (Go returning memory, poll intervals backing off, Fluent
// Bit's own timers) to have happened, so "at rest" is the state an idle
// host lives in, not the end of the start-up burst.
const idleSettle, idleWindow = 30 * time.Second, 30 * time.Second

func (b *bench) agentIdle(run int) result {
	broker := newDiscardBroker(4, "idle")
	defer broker.Close()
	dir := b.idleFiles(fmt.Sprintf("idle-%d", run))
	a := b.startAgent(run, broker.ListenAddrs()[0], "idle")
	b.put(a.key, fmt.Sprintf(`[{"path":%q,"topic":"idle"}]`, filepath.Join(dir, "*.log")))
	for metrics(a.http)["logagent_events_acked_total"] < idleN {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(idleSettle)
	pid := a.cmd.Process.Pid
	c0, t0 := procCPU(pid), time.Now()
	if *profile != "" {
		go saveProfile(a.http, fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(idleWindow.Seconds())-2), filepath.Join(*profile, fmt.Sprintf("idle-%d.cpu.pprof", run)))
	}
	time.Sleep(idleWindow)
	c1, t1 := procCPU(pid), time.Now()
	rssNow, rssFile := procStatus(pid, "VmRSS:"), procStatus(pid, "RssFile:")
	m := metrics(a.http)
	if *profile != "" {
		saveProfile(a.http, "/debug/pprof/heap", filepath.Join(*profile, fmt.Sprintf("idle-%d.heap.pprof", run)))
		saveProfile(a.http, "/debug/pprof/goroutine?debug=1", filepath.Join(*profile, fmt.Sprintf("idle-%d.goroutines.txt", run)))
		if smaps, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid)); err == nil {
			_ = os.WriteFile(filepath.Join(*profile, fmt.Sprintf("idle-%d.smaps", run)), smaps, 0o644)
		}
	}
	_, rss := a.stop()
	return result{seconds: t1.Sub(t0).Seconds(), cpu: c1 - c0, rss: math.Max(rss, rssNow), p50: math.NaN(), p99: math.NaN(),
		cpuPercent: 100 * (c1 - c0) / t1.Sub(t0).Seconds(), note: fmt.Sprintf("1,000 files; %s, idle %v before it; at rest RSS %.1f MB (file-backed %.1f, heap in use %.1f, stacks %.1f, %d goroutines)", idleWindow, idleSettle, rssNow/(1<<20),
			rssFile/(1<<20), m["go_memstats_heap_inuse_bytes"]/(1<<20), m["go_memstats_stack_inuse_bytes"]/(1<<20), int(m["go_goroutines"]))}
}

func (b *bench) agentMany(run int) result {
	broker := newDiscardBroker(4, "many")
	defer broker.Close()
	dir := filepath.Join(b.work, fmt.Sprintf("many-%d", run))
	check(os.MkdirAll(dir, 0o755))
	const files, perSec, seconds = 100, 1000, 20
	fds := make([]*os.File, files)
	for i := range fds {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("m%03d.log", i)))
		check(err)
		fds[i] = f
	}
	a := b.startAgent(run, broker.ListenAddrs()[0], "many")
	b.put(a.key, fmt.Sprintf(`[{"path":%q,"topic":"many"}]`, filepath.Join(dir, "*.log")))
	time.Sleep(2 * time.Second) // the glob scan finds the files
	line := []byte(strings.Repeat("y", *lineSize-1) + "\n")
	start := time.Now()
	written := 0
	tick := time.NewTicker(10 * time.Millisecond)
	buf := bytes.Repeat(line, perSec/100)
	for time.Since(start) < seconds*time.Second {
		<-tick.C
		for _, f := range fds {
			f.Write(buf)
			written += perSec / 100
		}
	}
	tick.Stop()
	for _, f := range fds {
		f.Close()
	}
	secs := time.Since(start).Seconds()
	// Lag when the writer stopped, in the broker, and how long it took to
	// reach 0: the pipeline kept up if the lag was gone within a second.
	lagAtStop := int64(written) - broker.records("many")
	deadline := time.Now().Add(60 * time.Second)
	got := int64(0)
	for {
		got = broker.records("many")
		if got >= int64(written) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	behind := time.Since(start).Seconds() - secs
	m := metrics(a.http)
	cpu, rss := a.stop()
	kept := got >= int64(written) && behind <= 1
	note := fmt.Sprintf("kept up: lag %d lines when the writer stopped, 0 after %.2f s (counted in the broker)", lagAtStop, behind)
	if !kept {
		note = fmt.Sprintf("FELL BEHIND: lag %d lines when the writer stopped; %d of %d in the broker after %.1f s", lagAtStop, got, written, behind)
	}
	return result{seconds: secs, bytes: float64(written * *lineSize), lines: float64(written), cpu: cpu, rss: rss,
		p50: quantile(m, "logagent_ack_latency_seconds", 0.5), p99: quantile(m, "logagent_ack_latency_seconds", 0.99), cpuPercent: math.NaN(), note: note,
		inputRate: true, keptUp: kept}
}

// sink is a minimal bulk endpoint: it parses the NDJSON body and answers
// with per-item results, nothing else, so the measure is logtransfer's own
// cost. For latency it reads the write time embedded in the message.
type sink struct {
	// uniq, if set, is a bitset of the generated lines seen (by the
	// number in "/api/items/N "), distinct how many were set.
	uniq     []uint64
	distinct atomic.Int64
	docs     atomic.Int64
	parsed   atomic.Int64 // documents with an http.response.status_code, if parsedCheck
	// parsedCheck makes the sink count parsed (a pipeline scenario).
	parsedCheck bool
	first       atomic.Int64 // when the first bulk request arrived (unix ns)
	mu          sync.Mutex
	lats        []float64
	measure     bool
	srv         *http.Server
	addr        string
}

func newSink() *sink {
	s := &sink{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	s.addr = l.Addr().String()
	s.srv = &http.Server{Handler: s}
	go s.srv.Serve(l)
	return s
}

var (
	tsKey     = []byte(`"message":"T`)
	statusKey = []byte(`"http.response.status_code":`)
)

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/_bulk") {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"acknowledged":true,"version":{"number":"8.13.0"}}`)
		return
	}
	s.first.CompareAndSwap(0, time.Now().UnixNano())
	// Read into a buffer of the announced size: growing one (io.ReadAll)
	// was a tenth of the sink's CPU, which shares the machine with what
	// it measures.
	var body []byte
	if r.ContentLength > 0 && r.ContentLength < 64<<20 {
		body = make([]byte, r.ContentLength)
		_, err := io.ReadFull(r.Body, body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	} else {
		body, _ = io.ReadAll(r.Body)
	}
	now := time.Now().UnixNano()
	n, parsed := 0, 0
	for len(body) > 0 {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			break
		}
		n++
		// Only a scenario with a pipeline looks for its field: the search
		// (a quote starts it, and documents are full of quotes) was 40 %
		// of the sink's CPU.
		if s.parsedCheck && n%2 == 0 && bytes.Contains(body[:i], statusKey) {
			parsed++
		}
		if s.uniq != nil && n%2 == 0 {
			s.see(body[:i])
		}
		if s.measure && n%2 == 0 {
			if j := bytes.Index(body[:i], tsKey); j >= 0 {
				rest := body[j+len(tsKey) : i]
				if k := bytes.IndexByte(rest, ' '); k > 0 {
					if ts, err := strconv.ParseInt(string(rest[:k]), 10, 64); err == nil {
						s.mu.Lock()
						s.lats = append(s.lats, float64(now-ts)/1e9)
						s.mu.Unlock()
					}
				}
			}
		}
		body = body[i+1:]
	}
	items := n / 2
	var out bytes.Buffer
	out.Grow(40 + items*32)
	out.WriteString(`{"took":1,"errors":false,"items":[`)
	for i := 0; i < items; i++ {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(`{"create":{"status":201,"result":"created"}}`)
	}
	out.WriteString("]}")
	w.Header().Set("Content-Type", "application/json")
	w.Write(out.Bytes())
	s.parsed.Add(int64(parsed))
	s.docs.Add(int64(items))
}

// since is the time from the first bulk request until now: a transfer's
// rate without its start (joining the group, the first fetches), which
// is a few hundred milliseconds of a run of seconds and varies.
func (s *sink) since() float64 {
	return time.Since(time.Unix(0, s.first.Load())).Seconds()
}

var itemKey = []byte("/api/items/")

// see marks the generated line a document carries.
func (s *sink) see(doc []byte) {
	j := bytes.Index(doc, itemKey)
	if j < 0 {
		return
	}
	v := 0
	for _, c := range doc[j+len(itemKey):] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int(c-'0')
	}
	if v/64 >= len(s.uniq) {
		return
	}
	mask := uint64(1) << (v % 64)
	if atomic.OrUint64(&s.uniq[v/64], mask)&mask == 0 {
		s.distinct.Add(1)
	}
}

type transferProc struct {
	cmd   *exec.Cmd
	http  string
	stopc chan struct{}
	peakc <-chan float64
}

func (b *bench) startTransfer(run int, brokerAddr, sinkAddr, topic, name string) *transferProc {
	return b.startTransferGroup(run, brokerAddr, sinkAddr, topic, name, fmt.Sprintf("bench-%s-%d", name, run))
}

// startTransferGroup is startTransfer in consumer group group.
func (b *bench) startTransferGroup(run int, brokerAddr, sinkAddr, topic, name, group string) *transferProc {
	dir := filepath.Join(b.work, fmt.Sprintf("%s-%d", name, run))
	check(os.MkdirAll(dir, 0o755))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort())
	ini := filepath.Join(dir, "logtransfer.ini")
	check(os.WriteFile(ini, []byte(fmt.Sprintf("[kafka]\naddress = %s\ntopics = %s\ngroup_id = %s\n[etcd]\naddress = %s\n[es]\naddress = http://%s\nmanage_templates = false\n[transfer]\ndata_dir = %s\n[http]\naddr = %s\npprof = %v\n[log]\nlevel = warn\n",
		brokerAddr, topic, group, b.ep, sinkAddr, filepath.Join(dir, "data"), httpAddr, *profile != "")), 0o644))
	cmd := exec.Command(filepath.Join(*binDir, "logtransfer"), "-config", ini)
	if *transEnv != "" {
		cmd.Env = append(os.Environ(), strings.Fields(*transEnv)...)
	}
	lf, err := os.Create(filepath.Join(dir, "transfer.log"))
	check(err)
	cmd.Stdout, cmd.Stderr = lf, lf
	check(cmd.Start())
	t := &transferProc{cmd: cmd, http: httpAddr, stopc: make(chan struct{})}
	t.peakc = peak(cmd.Process.Pid, t.stopc)
	waitHTTP(httpAddr)
	return t
}

func (t *transferProc) stop() (cpu, rss float64) {
	close(t.stopc)
	rss = <-t.peakc
	t.cmd.Process.Signal(syscall.SIGTERM)
	t.cmd.Wait()
	return usage(t.cmd.ProcessState), rss
}

// benchProfile writes the bench's own 5 s CPU profile to file: its side
// (broker, sink) shares the machine with what it measures.
func benchProfile(file string) {
	check(os.MkdirAll(filepath.Dir(file), 0o755))
	f, err := os.Create(file)
	check(err)
	check(pprof.StartCPUProfile(f))
	time.AfterFunc(5*time.Second, func() { pprof.StopCPUProfile(); f.Close() })
}

// saveProfile fetches a pprof endpoint of the process at addr into file.
func saveProfile(addr, path, file string) {
	resp, err := (&http.Client{Timeout: time.Minute}).Get("http://" + addr + path)
	check(err)
	defer resp.Body.Close()
	check(os.MkdirAll(filepath.Dir(file), 0o755))
	f, err := os.Create(file)
	check(err)
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	check(err)
	fmt.Fprintln(os.Stderr, "  profile written to", file)
}

// benchPath is the file the transfer scenarios' records come from: the
// record key, as the agent sends it.
var benchPath = []byte("/var/log/bench.log")

// fill produces n agent-style records of lineSize bytes into topic, naming
// pipe (if any) in their pipeline header.
func (b *bench) fill(addr, topic string, n int, pipe string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	check(err)
	defer cl.Close()
	parts := b.partitions(cl, topic)
	// Values like the generated access log, so compression ratios (and
	// with them the consumer's memory) are realistic.
	val := func(i int) []byte {
		v := fmt.Appendf(nil, "10.%d.%d.%d - - [23/Nov/2026:10:00:%02d +0000] \"GET /api/items/%d HTTP/1.1\" %d %d \"-\" \"Mozilla/5.0 (X11; Linux x86_64) bench/%d\" rt=0.%03d ",
			i%256, (i/256)%256, i%7, i%60, i, 200+(i%5)*100, i%5000, i%97, i%1000)
		for len(v) < *lineSize-1 {
			v = append(v, "abcdefghijklmnopqrstuvwxyz0123456789"[len(v)%36])
		}
		return v[:*lineSize-1]
	}
	hdr := func(i int) []kgo.RecordHeader {
		h := []kgo.RecordHeader{
			{Key: "host.name", Value: []byte("bench-host")}, {Key: "host.ip", Value: []byte("10.0.0.1")},
			{Key: "event.id", Value: []byte(fmt.Sprintf("0123456789abcdef0123456789abcdef-%d", i**lineSize))},
		}
		if pipe != "" {
			h = append(h, kgo.RecordHeader{Key: "pipeline", Value: []byte(pipe)})
		}
		return h
	}
	// The records go in chunks of benchChunk consecutive records of one
	// partition, signed as the agent signs them (host headers the context,
	// the signature on the last).
	var ch record.Chunk
	var hs []*record.Header
	chunk := make([]*kgo.Record, 0, benchChunk)
	var wg sync.WaitGroup
	var ferr atomic.Value
	for i := 0; i < n; i++ {
		v := val(i)
		r := &kgo.Record{Topic: topic, Key: benchPath, Value: v, Headers: hdr(i), Partition: parts[(i/benchChunk)%len(parts)]}
		if len(chunk) == 0 {
			ch.Reset(b.signer, topic, 2)
		}
		hs = hs[:0]
		for _, x := range r.Headers {
			hs = append(hs, &record.Header{Key: []byte(x.Key), Value: x.Value})
		}
		ch.Add(r.Key, r.Value, hs)
		chunk = append(chunk, r)
		if len(chunk) < benchChunk && i < n-1 {
			continue
		}
		sig, err := ch.AppendSig(nil)
		check(err)
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: record.HeaderSig, Value: sig})
		for _, r := range chunk {
			wg.Add(1)
			cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
				if err != nil {
					ferr.Store(err)
				}
				wg.Done()
			})
		}
		chunk = chunk[:0]
	}
	wg.Wait()
	if err, _ := ferr.Load().(error); err != nil {
		check(err)
	}
}

// benchChunk is how many records the transfer scenarios' signatures cover,
// about what the agent's chunks hold at full speed.
const benchChunk = 256

// partitions lists topic's partitions (the broker makes it on first use).
func (b *bench) partitions(cl *kgo.Client, topic string) []int32 {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil && len(resp.Topics) == 1 && resp.Topics[0].ErrorCode == 0 && len(resp.Topics[0].Partitions) > 0 {
			var ps []int32
			for _, p := range resp.Topics[0].Partitions {
				ps = append(ps, p.Partition)
			}
			return ps
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("no partitions for %s: %v", topic, err))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// transfer times the transfer from a full topic to the sink, the records
// naming pipe (if any). Allocations are the whole process's (mallocs
// counted by the Go runtime) per document.
func (b *bench) transfer(run int, pipe string) result {
	broker := newBroker(8, "tbench")
	defer broker.Close()
	n := *transferN
	b.fill(broker.ListenAddrs()[0], "tbench", n, pipe)
	s := newSink()
	s.uniq = make([]uint64, (n+63)/64)
	s.parsedCheck = pipe != ""
	defer s.srv.Close()
	name := "transfer"
	if pipe != "" {
		name += "-" + pipe
	}
	start := time.Now()
	t := b.startTransfer(run, broker.ListenAddrs()[0], s.addr, "tbench", name)
	mallocs0 := metrics(t.http)["go_memstats_mallocs_total"]
	if *profile != "" {
		go saveProfile(t.http, "/debug/pprof/profile?seconds=5", filepath.Join(*profile, fmt.Sprintf("%s-%d.cpu.pprof", name, run)))
		benchProfile(filepath.Join(*profile, fmt.Sprintf("%s-%d.bench.cpu.pprof", name, run)))
	}
	for s.docs.Load() < int64(n) {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("transfer did not index %d records in 10 minutes (%d)", n, s.docs.Load()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start).Seconds()
	secs := s.since()
	allocs := (metrics(t.http)["go_memstats_mallocs_total"] - mallocs0) / float64(n)
	if *profile != "" {
		saveProfile(t.http, "/debug/pprof/allocs", filepath.Join(*profile, fmt.Sprintf("%s-%d.allocs.pprof", name, run)))
	}
	cpu, rss := t.stop()
	note := fmt.Sprintf("%d records over 8 partitions, 16 workers; %.1f s from the first bulk request to the last document (%.1f s from the start); %.1f heap allocations per document (whole process); %d duplicates", n, secs, total, allocs, s.docs.Load()-s.distinct.Load())
	if pipe != "" {
		note += fmt.Sprintf("; %d of %d documents in the sink have parsed fields", s.parsed.Load(), s.docs.Load())
		if s.parsed.Load() != int64(n) {
			check(fmt.Errorf("the sink got %d of %d documents with parsed fields: the %s pipeline did not run on every record", s.parsed.Load(), n, pipe))
		}
	}
	return result{seconds: secs, lines: float64(n), bytes: float64(n * *lineSize), cpu: cpu, rss: rss, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		note: note}
}

func (b *bench) endToEnd(run int) result {
	broker := newBroker(4, "e2e")
	defer broker.Close()
	s := newSink()
	defer s.srv.Close()
	s.measure = true
	dir := filepath.Join(b.work, fmt.Sprintf("e2e-%d", run))
	check(os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, "app.log")
	f, err := os.Create(p)
	check(err)
	t := b.startTransfer(run, broker.ListenAddrs()[0], s.addr, "e2e", "e2e")
	a := b.startAgent(run, broker.ListenAddrs()[0], "e2e")
	b.put(a.key, fmt.Sprintf(`[{"path":%q,"topic":"e2e"}]`, p))
	time.Sleep(2 * time.Second)
	const rate, seconds = 10000, 20
	pad := strings.Repeat("p", *lineSize-30)
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	written := 0
	var buf []byte
	for time.Since(start) < seconds*time.Second {
		<-tick.C
		buf = buf[:0]
		now := time.Now().UnixNano()
		for i := 0; i < rate/100; i++ {
			buf = fmt.Appendf(buf, "T%d %s\n", now, pad)
		}
		f.Write(buf)
		written += rate / 100
	}
	tick.Stop()
	f.Close()
	stopped := time.Now()
	lagAtStop := int64(written) - s.docs.Load()
	deadline := time.Now().Add(60 * time.Second)
	for s.docs.Load() < int64(written) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	behind := time.Since(stopped).Seconds()
	t.stop()
	cpu, rss := a.stop()
	s.mu.Lock()
	lats := append([]float64(nil), s.lats...)
	s.mu.Unlock()
	sort.Float64s(lats)
	q := func(x float64) float64 {
		if len(lats) == 0 {
			return math.NaN()
		}
		return lats[min(int(x*float64(len(lats))), len(lats)-1)]
	}
	kept := s.docs.Load() >= int64(written) && behind <= 2
	note := fmt.Sprintf("kept up: lag %d lines when the writer stopped, 0 after %.2f s (counted in the sink); CPU/RSS are the agent's", lagAtStop, behind)
	if !kept {
		note = fmt.Sprintf("FELL BEHIND: lag %d lines when the writer stopped; %d of %d in the sink after %.1f s", lagAtStop, s.docs.Load(), written, behind)
	}
	return result{seconds: seconds, lines: float64(written), bytes: float64(written * *lineSize), cpu: cpu, rss: rss, p50: q(0.5), p99: q(0.99), cpuPercent: math.NaN(),
		note: note, inputRate: true, keptUp: kept}
}
