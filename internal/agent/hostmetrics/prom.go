package hostmetrics

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Prom exposes the last snapshot in node_exporter's names and labels, so
// dashboards built for node_exporter work on the agent's /metrics. A
// scrape never triggers a collection: it shows the last one (nothing
// before the first).
type Prom struct {
	mu   sync.Mutex
	last *Snapshot
	// descs are the series' descriptions by name and label names, made
	// once: a description costs more to build than its series.
	descs map[string]*prometheus.Desc
}

// Set makes s the snapshot scrapes show.
func (p *Prom) Set(s *Snapshot) {
	p.mu.Lock()
	p.last = s
	p.mu.Unlock()
}

// Describe sends nothing: the series depend on the host (an unchecked
// collector).
func (p *Prom) Describe(chan<- *prometheus.Desc) {}

// Collect sends the last snapshot's series.
func (p *Prom) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	s := p.last
	p.mu.Unlock()
	if s == nil {
		return
	}
	var names, values []string
	var key strings.Builder
	renderProm(s, func(name, help string, kind prometheus.ValueType, v float64, labels ...string) {
		names, values = names[:0], values[:0]
		key.Reset()
		key.WriteString(name)
		for i := 0; i+1 < len(labels); i += 2 {
			names = append(names, labels[i])
			values = append(values, labels[i+1])
			key.WriteByte(0)
			key.WriteString(labels[i])
		}
		m, err := prometheus.NewConstMetric(p.desc(key.String(), name, help, names), kind, v, values...)
		if err == nil {
			ch <- m
		}
	})
}

// desc returns the description of name with the label names, keyed by
// key.
func (p *Prom) desc(key, name, help string, names []string) *prometheus.Desc {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.descs[key]
	if d == nil {
		if p.descs == nil {
			p.descs = map[string]*prometheus.Desc{}
		}
		d = prometheus.NewDesc(name, help, append([]string(nil), names...), nil)
		p.descs[key] = d
	}
	return d
}

// emit is one series: name, help, type, value, then label name/value
// pairs.
type emit func(name, help string, kind prometheus.ValueType, v float64, labels ...string)

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// renderProm walks s in node_exporter's names (collector/cpu_linux.go,
// meminfo.go, loadavg.go, filesystem_common.go, diskstats_linux.go,
// netdev_common.go, stat_linux.go).
func renderProm(s *Snapshot, e emit) {
	for _, c := range s.CPUs {
		n := strings.TrimPrefix(c.CPU, "cpu")
		const h = "Seconds the CPUs spent in each mode."
		for _, m := range []struct {
			mode string
			v    float64
		}{{"user", c.User}, {"nice", c.Nice}, {"system", c.System}, {"idle", c.Idle}, {"iowait", c.Iowait},
			{"irq", c.Irq}, {"softirq", c.Softirq}, {"steal", c.Steal}} {
			e("node_cpu_seconds_total", h, counter, m.v, "cpu", n, "mode", m.mode)
		}
		const hg = "Seconds the CPUs spent in guests (VMs) for each mode."
		e("node_cpu_guest_seconds_total", hg, counter, c.Guest, "cpu", n, "mode", "user")
		e("node_cpu_guest_seconds_total", hg, counter, c.GuestNice, "cpu", n, "mode", "nice")
	}
	if m := s.Mem; m != nil {
		for _, f := range []struct {
			name string
			v    uint64
		}{{"MemTotal", m.Total}, {"MemFree", m.Free}, {"MemAvailable", m.Available}, {"Buffers", m.Buffers},
			{"Cached", m.Cached - min(m.Sreclaimable, m.Cached)}, // gopsutil adds SReclaimable {"Active", m.Active}, {"Inactive", m.Inactive}, {"Dirty", m.Dirty},
			{"Writeback", m.WriteBack}, {"Shmem", m.Shared}, {"Slab", m.Slab}, {"SReclaimable", m.Sreclaimable},
			{"SUnreclaim", m.Sunreclaim}, {"Mapped", m.Mapped}, {"PageTables", m.PageTables},
			{"SwapCached", m.SwapCached}, {"CommitLimit", m.CommitLimit}, {"Committed_AS", m.CommittedAS},
			{"SwapTotal", m.SwapTotal}, {"SwapFree", m.SwapFree}} {
			e("node_memory_"+f.name+"_bytes", "Memory information field "+f.name+"_bytes.", gauge, float64(f.v))
		}
	}
	if l := s.Load; l != nil {
		e("node_load1", "1m load average.", gauge, l.Load1)
		e("node_load5", "5m load average.", gauge, l.Load5)
		e("node_load15", "15m load average.", gauge, l.Load15)
	}
	if p := s.Procs; p != nil {
		e("node_procs_running", "Number of processes in runnable state.", gauge, float64(p.ProcsRunning))
		e("node_procs_blocked", "Number of processes blocked waiting for I/O to complete.", gauge, float64(p.ProcsBlocked))
		e("node_forks_total", "Total number of forks.", counter, float64(p.ProcsCreated))
		e("node_context_switches_total", "Total number of context switches.", counter, float64(p.Ctxt))
	}
	if s.BootTime > 0 {
		e("node_boot_time_seconds", "Node boot time, in unixtime.", gauge, float64(s.BootTime))
	}
	e("node_time_seconds", "System time in seconds since epoch (1970).", gauge, float64(s.Time.UnixNano())/1e9)
	for _, f := range s.FS {
		l := []string{"device", f.Device, "fstype", f.Type, "mountpoint", f.Mount}
		e("node_filesystem_size_bytes", "Filesystem size in bytes.", gauge, float64(f.Size), l...)
		e("node_filesystem_free_bytes", "Filesystem free space in bytes.", gauge, float64(f.Free), l...)
		e("node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes.", gauge, float64(f.Avail), l...)
		e("node_filesystem_files", "Filesystem total file nodes.", gauge, float64(f.Files), l...)
		e("node_filesystem_files_free", "Filesystem total free file nodes.", gauge, float64(f.FilesFree), l...)
		e("node_filesystem_readonly", "Filesystem read-only status.", gauge, boolFloat(f.ReadOnly), l...)
	}
	for _, d := range s.Disks {
		l := []string{"device", d.Name}
		e("node_disk_reads_completed_total", "The total number of reads completed successfully.", counter, float64(d.ReadCount), l...)
		e("node_disk_reads_merged_total", "The total number of reads merged.", counter, float64(d.MergedReadCount), l...)
		e("node_disk_read_bytes_total", "The total number of bytes read successfully.", counter, float64(d.ReadBytes), l...)
		e("node_disk_read_time_seconds_total", "The total number of seconds spent by all reads.", counter, float64(d.ReadTime)/1000, l...)
		e("node_disk_writes_completed_total", "The total number of writes completed successfully.", counter, float64(d.WriteCount), l...)
		e("node_disk_writes_merged_total", "The number of writes merged.", counter, float64(d.MergedWriteCount), l...)
		e("node_disk_written_bytes_total", "The total number of bytes written successfully.", counter, float64(d.WriteBytes), l...)
		e("node_disk_write_time_seconds_total", "This is the total number of seconds spent by all writes.", counter, float64(d.WriteTime)/1000, l...)
		e("node_disk_io_now", "The number of I/Os currently in progress.", gauge, float64(d.IopsInProgress), l...)
		e("node_disk_io_time_seconds_total", "Total seconds spent doing I/Os.", counter, float64(d.IoTime)/1000, l...)
		e("node_disk_io_time_weighted_seconds_total", "The weighted # of seconds spent doing I/Os.", counter, float64(d.WeightedIO)/1000, l...)
	}
	for _, n := range s.Nets {
		l := []string{"device", n.Name}
		e("node_network_receive_bytes_total", "Network device statistic receive_bytes.", counter, float64(n.BytesRecv), l...)
		e("node_network_receive_packets_total", "Network device statistic receive_packets.", counter, float64(n.PacketsRecv), l...)
		e("node_network_receive_errs_total", "Network device statistic receive_errs.", counter, float64(n.Errin), l...)
		e("node_network_receive_drop_total", "Network device statistic receive_drop.", counter, float64(n.Dropin), l...)
		e("node_network_receive_fifo_total", "Network device statistic receive_fifo.", counter, float64(n.Fifoin), l...)
		e("node_network_transmit_bytes_total", "Network device statistic transmit_bytes.", counter, float64(n.BytesSent), l...)
		e("node_network_transmit_packets_total", "Network device statistic transmit_packets.", counter, float64(n.PacketsSent), l...)
		e("node_network_transmit_errs_total", "Network device statistic transmit_errs.", counter, float64(n.Errout), l...)
		e("node_network_transmit_drop_total", "Network device statistic transmit_drop.", counter, float64(n.Dropout), l...)
		e("node_network_transmit_fifo_total", "Network device statistic transmit_fifo.", counter, float64(n.Fifoout), l...)
	}
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// cpuNumber orders CPU names ("cpu10" after "cpu9").
func cpuNumber(name string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(name, "cpu"))
	if err != nil {
		return -1
	}
	return n
}
