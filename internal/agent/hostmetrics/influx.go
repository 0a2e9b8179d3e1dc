package hostmetrics

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// AppendInflux appends s in InfluxDB line protocol, in Telegraf's
// measurement, tag and field names (plugins/inputs/cpu, mem, swap, system,
// disk, diskio, net, processes, kernel), so dashboards built on Telegraf
// work unchanged. host is the host tag; r are the CPU shares since the
// previous collection (cpu points are written only when r.OK, as Telegraf
// does). Points carry s.Time in nanoseconds.
func AppendInflux(b []byte, host string, s *Snapshot, r Rates) []byte {
	w := lineWriter{b: b, ts: s.Time, host: host}
	if r.OK {
		w.cpu("cpu-total", r.Total)
		for _, c := range s.CPUs {
			if sh, ok := r.CPU[c.CPU]; ok {
				w.cpu(c.CPU, sh)
			}
		}
	}
	if m := s.Mem; m != nil {
		w.start("mem")
		w.u("active", m.Active)
		w.u("available", m.Available)
		w.f("available_percent", pct(m.Available, m.Total))
		w.u("buffered", m.Buffers)
		w.u("cached", m.Cached)
		w.u("dirty", m.Dirty)
		w.u("free", m.Free)
		w.u("inactive", m.Inactive)
		w.u("shared", m.Shared)
		w.u("slab", m.Slab)
		w.u("swap_cached", m.SwapCached)
		w.u("swap_free", m.SwapFree)
		w.u("swap_total", m.SwapTotal)
		w.u("total", m.Total)
		w.u("used", m.Used)
		w.f("used_percent", pct(m.Used, m.Total))
		w.end()
	}
	if sw := s.Swap; sw != nil {
		w.start("swap")
		w.u("free", sw.Free)
		w.u("total", sw.Total)
		w.u("used", sw.Used)
		w.f("used_percent", pct(sw.Used, sw.Total))
		w.end()
		w.start("swap")
		w.u("in", sw.Sin)
		w.u("out", sw.Sout)
		w.end()
	}
	if l := s.Load; l != nil {
		w.start("system")
		w.f("load1", l.Load1)
		w.f("load15", l.Load15)
		w.f("load5", l.Load5)
		w.i("n_cpus", int64(s.NumCPU))
		w.end()
	}
	if s.BootTime > 0 {
		w.start("system")
		w.u("uptime", uint64(max(s.Time.Unix()-int64(s.BootTime), 0)))
		w.end()
	}
	for _, f := range s.FS {
		mode := "rw"
		if f.ReadOnly {
			mode = "ro"
		}
		w.start("disk", "device", strings.TrimPrefix(f.Device, "/dev/"), "fstype", f.Type, "mode", mode, "path", f.Mount)
		w.u("free", f.Avail) // Telegraf's free is what non-root users can have
		w.u("inodes_free", f.FilesFree)
		w.u("inodes_total", f.Files)
		w.u("inodes_used", f.Files-min(f.FilesFree, f.Files))
		w.u("total", f.Size)
		w.u("used", f.Used())
		w.f("used_percent", 100*f.UsedPct())
		w.end()
	}
	for _, d := range s.Disks {
		w.start("diskio", "name", d.Name)
		w.u("io_time", d.IoTime)
		w.u("iops_in_progress", d.IopsInProgress)
		w.u("merged_reads", d.MergedReadCount)
		w.u("merged_writes", d.MergedWriteCount)
		w.u("read_bytes", d.ReadBytes)
		w.u("read_time", d.ReadTime)
		w.u("reads", d.ReadCount)
		w.u("weighted_io_time", d.WeightedIO)
		w.u("write_bytes", d.WriteBytes)
		w.u("write_time", d.WriteTime)
		w.u("writes", d.WriteCount)
		w.end()
	}
	for _, n := range s.Nets {
		w.start("net", "interface", n.Name)
		w.u("bytes_recv", n.BytesRecv)
		w.u("bytes_sent", n.BytesSent)
		w.u("drop_in", n.Dropin)
		w.u("drop_out", n.Dropout)
		w.u("err_in", n.Errin)
		w.u("err_out", n.Errout)
		w.u("packets_recv", n.PacketsRecv)
		w.u("packets_sent", n.PacketsSent)
		w.end()
	}
	if p := s.Procs; p != nil {
		w.start("processes")
		w.i("blocked", int64(p.ProcsBlocked))
		w.i("running", int64(p.ProcsRunning))
		w.i("total", int64(p.ProcsTotal))
		w.end()
		w.start("kernel")
		if s.BootTime > 0 {
			w.i("boot_time", int64(s.BootTime))
		}
		w.i("context_switches", int64(p.Ctxt))
		w.i("processes_forked", int64(p.ProcsCreated))
		w.end()
	}
	return w.b
}

func (w *lineWriter) cpu(name string, sh Shares) {
	w.start("cpu", "cpu", name)
	p := func(v float64) float64 { return 100 * v / sh.Total }
	// Telegraf takes guest time out of user and nice.
	w.f("usage_guest", p(sh.Guest))
	w.f("usage_guest_nice", p(sh.GuestNice))
	w.f("usage_idle", p(sh.Idle))
	w.f("usage_iowait", p(sh.Iowait))
	w.f("usage_irq", p(sh.Irq))
	w.f("usage_nice", p(max(sh.Nice-sh.GuestNice, 0)))
	w.f("usage_softirq", p(sh.Softirq))
	w.f("usage_steal", p(sh.Steal))
	w.f("usage_system", p(sh.System))
	w.f("usage_user", p(max(sh.User-sh.Guest, 0)))
	w.end()
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// lineWriter writes points: start (measurement and tags, in key order),
// fields, end.
type lineWriter struct {
	b      []byte
	ts     time.Time
	host   string
	fields int
}

func (w *lineWriter) start(measurement string, tags ...string) {
	w.b = appendEscaped(w.b, measurement, ", ")
	// host sorts among the others by key.
	done := false
	for i := 0; i+1 < len(tags); i += 2 {
		if !done && tags[i] > "host" {
			w.tag("host", w.host)
			done = true
		}
		w.tag(tags[i], tags[i+1])
	}
	if !done {
		w.tag("host", w.host)
	}
	w.fields = 0
}

func (w *lineWriter) tag(k, v string) {
	if v == "" {
		return // an empty tag value is invalid line protocol
	}
	w.b = append(w.b, ',')
	w.b = appendEscaped(w.b, k, ",= ")
	w.b = append(w.b, '=')
	w.b = appendEscaped(w.b, v, ",= ")
}

func (w *lineWriter) field(k string) {
	if w.fields == 0 {
		w.b = append(w.b, ' ')
	} else {
		w.b = append(w.b, ',')
	}
	w.fields++
	w.b = appendEscaped(w.b, k, ",= ")
	w.b = append(w.b, '=')
}

func (w *lineWriter) f(k string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return // line protocol has no NaN
	}
	w.field(k)
	w.b = strconv.AppendFloat(w.b, v, 'f', -1, 64)
}

func (w *lineWriter) i(k string, v int64) {
	w.field(k)
	w.b = strconv.AppendInt(w.b, v, 10)
	w.b = append(w.b, 'i')
}

// u writes an unsigned counter as an integer field (Telegraf's type for
// them), clamped to int64.
func (w *lineWriter) u(k string, v uint64) { w.i(k, int64(min(v, math.MaxInt64))) }

func (w *lineWriter) end() {
	if w.fields == 0 {
		// No field: not a point. Take back what start wrote.
		if i := lastLineStart(w.b); i >= 0 {
			w.b = w.b[:i]
		}
		return
	}
	w.b = append(w.b, ' ')
	w.b = strconv.AppendInt(w.b, w.ts.UnixNano(), 10)
	w.b = append(w.b, '\n')
}

// lastLineStart is where the line being written starts.
func lastLineStart(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	return 0
}

// appendEscaped escapes the characters special in this position, and
// backslashes; control characters become spaces (line protocol has no
// escape for a newline).
func appendEscaped(b []byte, s, special string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 0x20 || c == 0x7f:
			if strings.IndexByte(special, ' ') >= 0 {
				b = append(b, '\\')
			}
			b = append(b, ' ')
		case c == '\\' || strings.IndexByte(special, c) >= 0:
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return b
}
