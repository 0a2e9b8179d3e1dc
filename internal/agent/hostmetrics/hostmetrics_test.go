package hostmetrics

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// The figures are the kernel's: memory total within 1 % of /proc/meminfo,
// the CPU count and boot time exactly /proc/stat's, the root file system's
// size exactly statfs(2)'s.
func TestCollectAgreesWithTheKernel(t *testing.T) {
	s, err := NewCollector(DefaultFilters()).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range s.Errs {
		t.Logf("not collected: %v", e)
	}
	cpus, btime := testutil.HostCPUs(t)
	if s.NumCPU != cpus || len(s.CPUs) != cpus {
		t.Errorf("%d CPUs (%d time sets), /proc/stat has %d", s.NumCPU, len(s.CPUs), cpus)
	}
	for i, c := range s.CPUs {
		if c.CPU != "cpu"+strconv.Itoa(i) {
			t.Errorf("CPU %d is %q: not in order", i, c.CPU)
		}
	}
	if s.BootTime != btime {
		t.Errorf("boot time %d, /proc/stat btime %d", s.BootTime, btime)
	}
	if s.Mem == nil {
		t.Fatal("no memory figures")
	}
	if want := testutil.HostMemTotal(t); !testutil.Within(float64(s.Mem.Total), float64(want), 0.01) {
		t.Errorf("memory total %d, /proc/meminfo %d", s.Mem.Total, want)
	}
	if s.Load == nil || s.Procs == nil || s.Procs.ProcsTotal == 0 {
		t.Errorf("load %v, processes %v", s.Load, s.Procs)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/", &st); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range s.FS {
		if f.Mount != "/" {
			continue
		}
		found = true
		if want := st.Blocks * uint64(st.Bsize); f.Size != want {
			t.Errorf("/ is %d bytes, statfs says %d", f.Size, want)
		}
		if f.Files != st.Files {
			t.Errorf("/ has %d inodes, statfs says %d", f.Files, st.Files)
		}
	}
	if !found {
		t.Errorf("/ is not among the file systems: %+v", s.FS)
	}
	for _, f := range s.FS {
		if DefaultFilters().FSTypes.MatchString(f.Type) {
			t.Errorf("%s (%s) is a pseudo file system, reported", f.Mount, f.Type)
		}
	}
	lo := false
	for _, n := range s.Nets {
		lo = lo || n.Name == "lo"
	}
	if !lo {
		t.Errorf("no loopback among the interfaces: %+v", s.Nets)
	}
}

// Two snapshots made by hand, with known CPU times.
func twoSnapshots() (*Snapshot, *Snapshot) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	c := func(name string, user, system, idle, iowait, guest float64) cpu.TimesStat {
		return cpu.TimesStat{CPU: name, User: user, System: system, Idle: idle, Iowait: iowait, Guest: guest}
	}
	prev := &Snapshot{Time: t0, NumCPU: 2,
		CPUs:  []cpu.TimesStat{c("cpu0", 100, 50, 800, 50, 10), c("cpu1", 200, 100, 650, 50, 0)},
		Total: c("cpu-total", 300, 150, 1450, 100, 10)}
	// cpu0: 10 s passed: user +4 (guest +1), system +1, idle +4, iowait +1
	// cpu1: 10 s passed: user +1, system +1, idle +8
	cur := &Snapshot{Time: t0.Add(10 * time.Second), NumCPU: 2,
		CPUs:     []cpu.TimesStat{c("cpu0", 104, 51, 804, 51, 11), c("cpu1", 201, 101, 658, 50, 0)},
		Total:    c("cpu-total", 305, 152, 1462, 101, 11),
		Mem:      &mem.VirtualMemoryStat{Total: 1000, Available: 600, Free: 200, Used: 400},
		Load:     &load.AvgStat{Load1: 1, Load5: 0.5, Load15: 0.25},
		Procs:    &load.MiscStat{ProcsTotal: 90, ProcsRunning: 3, ProcsBlocked: 1},
		FS:       []Filesystem{{Device: "/dev/vda", Mount: "/mnt/a b,c=d", Type: "ext4", Size: 1000, Free: 300, Avail: 300, Files: 50, FilesFree: 20}},
		BootTime: uint64(t0.Add(-time.Hour).Unix()),
	}
	return prev, cur
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// CPU shares come from the two collections: Telegraf's percentages (guest
// time out of user) and Metricbeat's pct (across cores) and norm.pct.
func TestCPUSharesFromTwoCollections(t *testing.T) {
	prev, cur := twoSnapshots()
	if r := RatesBetween(nil, cur); r.OK {
		t.Fatal("rates without a previous collection")
	}
	r := RatesBetween(prev, cur)
	if !r.OK {
		t.Fatal("no rates")
	}
	// Total: 20 s of CPU time: user 5, system 2, idle 12, iowait 1.
	if tot := r.Total; !near(tot.Of(tot.User), 0.25) || !near(tot.Of(tot.System), 0.1) || !near(tot.Of(tot.Idle), 0.6) || !near(tot.Of(tot.Iowait), 0.05) || !near(tot.Busy(), 0.35) {
		t.Errorf("total shares %+v", tot)
	}
	if c0 := r.CPU["cpu0"]; !near(c0.Of(c0.User), 0.4) || !near(c0.Of(c0.Guest), 0.1) {
		t.Errorf("cpu0 shares %+v", c0)
	}
	lines := string(AppendInflux(nil, "h1", cur, r))
	for _, want := range []string{
		"cpu,cpu=cpu-total,host=h1 usage_guest=5,usage_guest_nice=0,usage_idle=60,usage_iowait=5,usage_irq=0,usage_nice=0,usage_softirq=0,usage_steal=0,usage_system=10,usage_user=20 ",
		"cpu,cpu=cpu0,host=h1 usage_guest=10,usage_guest_nice=0,usage_idle=40,usage_iowait=10,usage_irq=0,usage_nice=0,usage_softirq=0,usage_steal=0,usage_system=10,usage_user=30 ",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("no line %q in\n%s", want, lines)
		}
	}
	if strings.Contains(string(AppendInflux(nil, "h1", cur, Rates{})), "cpu,") {
		t.Error("cpu points without rates")
	}
	var cpuDoc map[string]any
	for _, d := range BeatDocs("h1", cur, r, 10*time.Second) {
		if d.Metricset == "cpu" {
			json.Unmarshal(d.JSON, &cpuDoc)
		}
	}
	if got := path(cpuDoc, "system.cpu.total.pct"); got != 0.7 {
		t.Errorf("system.cpu.total.pct = %v, want 0.7 (two cores 35 %% busy)", got)
	}
	if got := path(cpuDoc, "system.cpu.total.norm.pct"); got != 0.35 {
		t.Errorf("system.cpu.total.norm.pct = %v, want 0.35", got)
	}
	if got := path(cpuDoc, "system.cpu.cores"); got != 2.0 {
		t.Errorf("system.cpu.cores = %v", got)
	}
}

// path follows a dotted path through decoded JSON.
func path(doc map[string]any, p string) any {
	var cur any = doc
	for _, k := range strings.Split(p, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// Line protocol: tags in key order with host among them, escaped; integer
// counters with i; one point per line, with the collection's time.
func TestInfluxLinesAreTelegrafs(t *testing.T) {
	_, cur := twoSnapshots()
	lines := strings.Split(strings.TrimSuffix(string(AppendInflux(nil, "web 1", cur, Rates{})), "\n"), "\n")
	want := map[string]string{
		"mem":       `mem,host=web\ 1 active=0i,available=600i,available_percent=60,buffered=0i,cached=0i,dirty=0i,free=200i,inactive=0i,shared=0i,slab=0i,swap_cached=0i,swap_free=0i,swap_total=0i,total=1000i,used=400i,used_percent=40`,
		"system":    `system,host=web\ 1 load1=1,load15=0.25,load5=0.5,n_cpus=2i`,
		"disk":      `disk,device=vda,fstype=ext4,host=web\ 1,mode=rw,path=/mnt/a\ b\,c\=d free=300i,inodes_free=20i,inodes_total=50i,inodes_used=30i,total=1000i,used=700i,used_percent=70`,
		"processes": `processes,host=web\ 1 blocked=1i,running=3i,total=90i`,
	}
	ts := " " + strconv.FormatInt(cur.Time.UnixNano(), 10)
	seen := map[string]bool{}
	for _, l := range lines {
		m := l[:strings.IndexAny(l, ", ")]
		if w, ok := want[m]; ok && !seen[m] {
			seen[m] = true
			if l != w+ts {
				t.Errorf("%s:\n got %s\nwant %s", m, l, w+ts)
			}
		}
		if !strings.HasSuffix(l, ts) {
			t.Errorf("line without the collection's time: %s", l)
		}
	}
	for m := range want {
		if !seen[m] {
			t.Errorf("no %s point in\n%s", m, strings.Join(lines, "\n"))
		}
	}
	if !strings.Contains(strings.Join(lines, "\n"), "system,host=web\\ 1 uptime=3610i") {
		t.Errorf("no uptime point in\n%s", strings.Join(lines, "\n"))
	}
	// A control character in a tag cannot end the line.
	s := &Snapshot{Time: cur.Time, Nets: cur.Nets}
	s.FS = []Filesystem{{Device: "x", Mount: "/a\nb", Type: "ext4", Size: 1}}
	if out := string(AppendInflux(nil, "h", s, Rates{})); strings.Count(out, "\n") != 1 {
		t.Errorf("a newline in a mount point split the point: %q", out)
	}
}

// Metricbeat's names and types: numbers as numbers, one document per
// file system, the dataset of process_summary as Metricbeat names it.
func TestBeatDocsAreMetricbeats(t *testing.T) {
	prev, cur := twoSnapshots()
	docs := BeatDocs("h1", cur, RatesBetween(prev, cur), 10*time.Second)
	got := map[string]map[string]any{}
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal(d.JSON, &m); err != nil {
			t.Fatalf("%s: %v", d.Metricset, err)
		}
		got[d.Metricset] = m
		if path(m, "host.name") != "h1" || path(m, "event.module") != "system" || path(m, "metricset.name") != d.Metricset ||
			path(m, "@timestamp") != "2026-12-07T12:00:10.000Z" || path(m, "metricset.period") != 10000.0 {
			t.Errorf("%s: common fields wrong: %s", d.Metricset, d.JSON)
		}
	}
	checks := []struct {
		set, path string
		want      any
	}{
		{"memory", "system.memory.total", 1000.0},
		{"memory", "system.memory.actual.used.pct", 0.4},
		{"memory", "system.memory.actual.free", 600.0},
		{"memory", "system.memory.used.bytes", 800.0},
		{"load", "system.load.1", 1.0},
		{"load", "system.load.norm.5", 0.25},
		{"filesystem", "system.filesystem.mount_point", "/mnt/a b,c=d"},
		{"filesystem", "system.filesystem.used.pct", 0.7},
		{"filesystem", "system.filesystem.available", 300.0},
		{"process_summary", "system.process.summary.running", 3.0},
		{"process_summary", "event.dataset", "system.process.summary"},
		{"uptime", "system.uptime.duration.ms", 3610000.0},
		{"cpu", "event.dataset", "system.cpu"},
	}
	for _, c := range checks {
		if v := path(got[c.set], c.path); v != c.want {
			t.Errorf("%s %s = %v (%T), want %v", c.set, c.path, v, v, c.want)
		}
	}
	// The same collection renders the same documents, under the same ids.
	again := BeatDocs("h1", cur, RatesBetween(prev, cur), 10*time.Second)
	for i := range docs {
		if string(docs[i].JSON) != string(again[i].JSON) || DocID("h1", cur, docs[i]) != DocID("h1", cur, again[i]) {
			t.Errorf("%s rendered twice differs", docs[i].Metricset)
		}
	}
}

// /metrics shows the last collection in node_exporter's names; before the
// first, none; a scrape does not collect (two scrapes show one time).
func TestPrometheusShowsTheLastCollectionInNodeExporterNames(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := &Prom{}
	reg.MustRegister(p)
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 0 {
		t.Fatalf("before the first collection: %d families, %v", len(mfs), err)
	}
	s, err := NewCollector(DefaultFilters()).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.Set(s)
	gather := func() map[string]*dto.MetricFamily {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			out[mf.GetName()] = mf
		}
		return out
	}
	fams := gather()
	one := func(name string, labels map[string]string) *dto.Metric {
		t.Helper()
		mf := fams[name]
		if mf == nil {
			t.Errorf("no %s", name)
			return nil
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return m
		}
		t.Errorf("no %s%v", name, labels)
		return nil
	}
	if m := one("node_memory_MemTotal_bytes", nil); m != nil && m.GetGauge().GetValue() != float64(s.Mem.Total) {
		t.Errorf("node_memory_MemTotal_bytes %v, collected %d", m.GetGauge().GetValue(), s.Mem.Total)
	}
	if m := one("node_cpu_seconds_total", map[string]string{"cpu": "0", "mode": "idle"}); m != nil && m.GetCounter().GetValue() != s.CPUs[0].Idle {
		t.Errorf("node_cpu_seconds_total{cpu=0,mode=idle} %v, collected %v", m.GetCounter().GetValue(), s.CPUs[0].Idle)
	}
	if mf := fams["node_cpu_seconds_total"]; mf != nil && len(mf.GetMetric()) != 8*s.NumCPU {
		t.Errorf("%d node_cpu_seconds_total series for %d CPUs", len(mf.GetMetric()), s.NumCPU)
	}
	one("node_filesystem_avail_bytes", map[string]string{"mountpoint": "/"})
	one("node_network_receive_bytes_total", map[string]string{"device": "lo"})
	for _, name := range []string{"node_load1", "node_load5", "node_load15", "node_boot_time_seconds", "node_procs_running", "node_procs_blocked", "node_memory_MemAvailable_bytes"} {
		one(name, nil)
	}
	t1 := one("node_time_seconds", nil).GetGauge().GetValue()
	fams = gather()
	if t2 := one("node_time_seconds", nil).GetGauge().GetValue(); t2 != t1 || t1 != float64(s.Time.UnixNano())/1e9 {
		t.Errorf("node_time_seconds %v then %v: a scrape collected", t1, t2)
	}
}

// A mount whose statfs hangs (an NFS server gone) costs a collection at
// most the timeout, is reported, and is skipped while the call hangs; the
// other file systems are still collected.
func TestHungMountDoesNotHangCollections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewCollector(DefaultFilters())
		release := make(chan struct{})
		var mu sync.Mutex
		calls := map[string]int{}
		real := c.statfs
		c.statfs = func(ctx context.Context, path string) (*disk.UsageStat, error) {
			mu.Lock()
			calls[path]++
			mu.Unlock()
			if path == "/" {
				<-release // hangs until released
			}
			return real(ctx, path)
		}
		c.mountTimeout = 5 * time.Second
		start := time.Now()
		fs, err := c.filesystems(context.Background())
		if took := time.Since(start); took != 5*time.Second {
			t.Errorf("a collection with a hung mount took %v, want the timeout", took)
		}
		for _, f := range fs {
			if f.Mount == "/" {
				t.Errorf("the hung mount was reported: %+v", f)
			}
		}
		if err == nil || !strings.Contains(err.Error(), "/: statfs took more than 5s") {
			t.Errorf("the hung mount is not reported: %v", err)
		}
		// The next collection skips it at once.
		start = time.Now()
		c.filesystems(context.Background())
		mu.Lock()
		n := calls["/"]
		mu.Unlock()
		if took := time.Since(start); took != 0 || n != 1 {
			t.Errorf("second collection took %v and called statfs on / %d times, want at once and once", took, n)
		}
		close(release)
		synctest.Wait()
		fs, _ = c.filesystems(context.Background())
		found := false
		for _, f := range fs {
			found = found || f.Mount == "/"
		}
		if !found {
			t.Error("/ is not collected once its statfs returned")
		}
	})
}
