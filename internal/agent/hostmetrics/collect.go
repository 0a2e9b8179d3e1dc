// Package hostmetrics collects a host's system figures with gopsutil and
// renders them in the names each ecosystem's dashboards already use:
// node_exporter's for Prometheus (prom.go), Telegraf's for InfluxDB line
// protocol (influx.go) and Metricbeat's system module for Elasticsearch
// (beat.go). A collection reads counters once; rates (CPU shares) come
// from two collections, never from a sleep inside one.
package hostmetrics

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"
	"github.com/shirou/gopsutil/v4/net"
)

// Snapshot is one collection: counters as the kernel had them at Time.
// A metricset that could not be read is missing (its error is in Errs);
// the others are still good.
type Snapshot struct {
	Time     time.Time
	CPUs     []cpu.TimesStat // per CPU, by number
	Total    cpu.TimesStat   // all CPUs
	NumCPU   int
	Mem      *mem.VirtualMemoryStat
	Swap     *mem.SwapMemoryStat
	Load     *load.AvgStat
	Procs    *load.MiscStat
	FS       []Filesystem
	Disks    []disk.IOCountersStat // by name
	Nets     []net.IOCountersStat  // by name
	BootTime uint64                // seconds since the epoch
	Errs     []error
}

// Filesystem is one mounted file system's space and inodes, in bytes and
// counts, with statfs(2)'s meanings: Free counts the blocks reserved for
// root, Avail does not.
type Filesystem struct {
	Device, Mount, Type string
	Size, Free, Avail   uint64
	Files, FilesFree    uint64
	ReadOnly            bool
}

// Used is what is in use (Size - Free).
func (f *Filesystem) Used() uint64 { return f.Size - f.Free }

// UsedPct is the share in use as df shows it: of what non-root users can
// have (used + avail), 0..1.
func (f *Filesystem) UsedPct() float64 {
	if d := f.Used() + f.Avail; d > 0 {
		return float64(f.Used()) / float64(d)
	}
	return 0
}

// Filters say which file systems, disks and interfaces are reported.
// The defaults are node_exporter's: pseudo and virtual file systems, and
// disk partitions and loop devices, are left out.
type Filters struct {
	FSTypes   *regexp.Regexp // file system types left out
	Mounts    *regexp.Regexp // mount points left out
	Disks     *regexp.Regexp // block devices left out
	Interface *regexp.Regexp // network interfaces left out (nil: none)
}

// DefaultFilters are node_exporter's defaults (collector/filesystem_linux.go
// and diskstats_linux.go), with tmpfs left out as well: it holds no data
// that outlives the host.
func DefaultFilters() Filters {
	return Filters{
		FSTypes: regexp.MustCompile(`^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|erofs|sysfs|tracefs|tmpfs|ramfs)$`),
		Mounts:  regexp.MustCompile(`^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`),
		Disks:   regexp.MustCompile(`^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`),
	}
}

// Collector reads snapshots.
type Collector struct {
	filters Filters
	now     func() time.Time
	// statfs reads a mount point's usage (disk.UsageWithContext; tests
	// replace it). A call that takes longer than mountTimeout (a hung NFS
	// server) is left running and its mount point skipped until it
	// returns, as node_exporter does with its stuck mounts: a collection
	// never hangs on one.
	statfs       func(ctx context.Context, path string) (*disk.UsageStat, error)
	mountTimeout time.Duration
	mu           sync.Mutex
	stuck        map[string]bool
}

// NewCollector returns a Collector with the given filters.
func NewCollector(f Filters) *Collector {
	return &Collector{filters: f, now: time.Now, statfs: disk.UsageWithContext, mountTimeout: 5 * time.Second, stuck: map[string]bool{}}
}

// Collect reads every metricset once. It fails only if ctx ended; a
// metricset that cannot be read is reported in the snapshot's Errs.
func (c *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	s := &Snapshot{Time: c.now()}
	fail := func(set string, err error) { s.Errs = append(s.Errs, fmt.Errorf("reading %s: %w", set, err)) }
	if t, err := cpu.TimesWithContext(ctx, true); err == nil {
		slices.SortStableFunc(t, func(a, b cpu.TimesStat) int { return cpuNumber(a.CPU) - cpuNumber(b.CPU) })
		s.CPUs = t
		s.NumCPU = len(t)
		if tot, err := cpu.TimesWithContext(ctx, false); err == nil && len(tot) == 1 {
			s.Total = tot[0]
		} else {
			s.Total = sumTimes(t)
		}
	} else {
		fail("cpu", err)
	}
	if m, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		s.Mem = m
	} else {
		fail("memory", err)
	}
	if m, err := mem.SwapMemoryWithContext(ctx); err == nil {
		s.Swap = m
	} else {
		fail("swap", err)
	}
	if l, err := load.AvgWithContext(ctx); err == nil {
		s.Load = l
	} else {
		fail("load", err)
	}
	if p, err := load.MiscWithContext(ctx); err == nil {
		s.Procs = p
	} else {
		fail("processes", err)
	}
	fs, err := c.filesystems(ctx)
	s.FS = fs
	if err != nil {
		fail("filesystems", err)
	}
	if d, err := disk.IOCountersWithContext(ctx); err == nil {
		for name, st := range d {
			if c.filters.Disks != nil && c.filters.Disks.MatchString(name) {
				continue
			}
			st.Name = name
			s.Disks = append(s.Disks, st)
		}
		slices.SortFunc(s.Disks, func(a, b disk.IOCountersStat) int { return strings.Compare(a.Name, b.Name) })
	} else {
		fail("diskio", err)
	}
	if n, err := net.IOCountersWithContext(ctx, true); err == nil {
		for _, st := range n {
			if c.filters.Interface != nil && c.filters.Interface.MatchString(st.Name) {
				continue
			}
			s.Nets = append(s.Nets, st)
		}
		slices.SortFunc(s.Nets, func(a, b net.IOCountersStat) int { return strings.Compare(a.Name, b.Name) })
	} else {
		fail("network", err)
	}
	if b, err := host.BootTimeWithContext(ctx); err == nil {
		s.BootTime = b
	} else {
		fail("uptime", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// filesystems reads the mounts and each one's statfs(2), once per device
// and mount point: those that could be read, and why the others could not.
func (c *Collector) filesystems(ctx context.Context) ([]Filesystem, error) {
	parts, err := disk.PartitionsWithContext(ctx, true)
	if err != nil && len(parts) == 0 {
		return nil, err
	}
	var out []Filesystem
	seen := map[string]bool{}
	var errs []error
	for _, p := range parts {
		if c.filters.FSTypes != nil && c.filters.FSTypes.MatchString(p.Fstype) ||
			c.filters.Mounts != nil && c.filters.Mounts.MatchString(p.Mountpoint) || seen[p.Mountpoint] {
			continue
		}
		seen[p.Mountpoint] = true
		u, err := c.usage(ctx, p.Mountpoint)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Mountpoint, err))
			continue
		}
		out = append(out, Filesystem{
			Device: p.Device, Mount: p.Mountpoint, Type: p.Fstype,
			// gopsutil's Used is (blocks - bfree) and its Free is bavail.
			Size: u.Total, Free: u.Total - u.Used, Avail: u.Free,
			Files: u.InodesTotal, FilesFree: u.InodesFree,
			ReadOnly: slices.Contains(p.Opts, "ro"),
		})
	}
	slices.SortFunc(out, func(a, b Filesystem) int { return strings.Compare(a.Mount, b.Mount) })
	return out, errors.Join(errs...)
}

// usage is statfs of mount, given at most mountTimeout; a mount whose
// last call has not returned yet is skipped.
func (c *Collector) usage(ctx context.Context, mount string) (*disk.UsageStat, error) {
	c.mu.Lock()
	if c.stuck[mount] {
		c.mu.Unlock()
		return nil, errors.New("statfs did not return yet (a hung file system?): skipped until it does")
	}
	c.stuck[mount] = true
	c.mu.Unlock()
	type answer struct {
		u   *disk.UsageStat
		err error
	}
	done := make(chan answer, 1)
	go func() {
		u, err := c.statfs(context.WithoutCancel(ctx), mount)
		c.mu.Lock()
		delete(c.stuck, mount)
		c.mu.Unlock()
		done <- answer{u, err}
	}()
	t := time.NewTimer(c.mountTimeout)
	defer t.Stop()
	select {
	case a := <-done:
		return a.u, a.err
	case <-t.C:
		return nil, fmt.Errorf("statfs took more than %s (a hung file system?): skipped until it returns", c.mountTimeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func sumTimes(ts []cpu.TimesStat) cpu.TimesStat {
	t := cpu.TimesStat{CPU: "cpu-total"}
	for _, c := range ts {
		t.User += c.User
		t.System += c.System
		t.Idle += c.Idle
		t.Nice += c.Nice
		t.Iowait += c.Iowait
		t.Irq += c.Irq
		t.Softirq += c.Softirq
		t.Steal += c.Steal
		t.Guest += c.Guest
		t.GuestNice += c.GuestNice
	}
	return t
}

// Shares are the CPU seconds each mode took between two collections, and
// their Total (guest time is inside user and nice, as the kernel counts
// it, and is shown on its own too). Of gives a mode's share, 0..1.
type Shares struct {
	User, System, Idle, Nice, Iowait, Irq, Softirq, Steal, Guest, GuestNice float64
	Total                                                                   float64
}

// Of is v's share of the time that passed.
func (s Shares) Of(v float64) float64 { return v / s.Total }

// Busy is the share not idle nor waiting for I/O.
func (s Shares) Busy() float64 { return s.Of(s.Total - s.Idle - s.Iowait) }

// shares computes the CPU seconds of cur since prev (false if no time
// passed or the counters went back: a CPU went offline, a counter
// wrapped).
func shares(prev, cur cpu.TimesStat) (Shares, bool) {
	total := func(t cpu.TimesStat) float64 {
		return t.User + t.System + t.Idle + t.Nice + t.Iowait + t.Irq + t.Softirq + t.Steal
	}
	d := total(cur) - total(prev)
	if d <= 0 {
		return Shares{}, false
	}
	f := func(a, b float64) float64 { return max(b-a, 0) }
	return Shares{
		User: f(prev.User, cur.User), System: f(prev.System, cur.System), Idle: f(prev.Idle, cur.Idle),
		Nice: f(prev.Nice, cur.Nice), Iowait: f(prev.Iowait, cur.Iowait), Irq: f(prev.Irq, cur.Irq),
		Softirq: f(prev.Softirq, cur.Softirq), Steal: f(prev.Steal, cur.Steal),
		Guest: f(prev.Guest, cur.Guest), GuestNice: f(prev.GuestNice, cur.GuestNice), Total: d,
	}, true
}

// Rates are what two snapshots tell: the CPU shares, in total and per CPU
// (by the CPU's name, "cpu0"…).
type Rates struct {
	Total Shares
	CPU   map[string]Shares
	OK    bool // false: no previous collection (or nothing to compare)
}

// RatesBetween compares two snapshots (prev may be nil).
func RatesBetween(prev, cur *Snapshot) Rates {
	if prev == nil || cur == nil || len(prev.CPUs) == 0 || len(cur.CPUs) == 0 {
		return Rates{}
	}
	tot, ok := shares(prev.Total, cur.Total)
	if !ok {
		return Rates{}
	}
	r := Rates{Total: tot, CPU: make(map[string]Shares, len(cur.CPUs)), OK: true}
	before := make(map[string]cpu.TimesStat, len(prev.CPUs))
	for _, c := range prev.CPUs {
		before[c.CPU] = c
	}
	for _, c := range cur.CPUs {
		if p, ok := before[c.CPU]; ok {
			if s, ok := shares(p, c); ok {
				r.CPU[c.CPU] = s
			}
		}
	}
	return r
}
