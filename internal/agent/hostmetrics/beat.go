package hostmetrics

import (
	"encoding/json"
	"math"
	"strings"
	"time"
)

// Doc is one Metricbeat document: its metricset, the instance it is about
// within the host (a mount point, a device; "" for host-wide sets) and its
// JSON. The pair (metricset, instance) with the host and the collection
// time identifies it: the same collection delivered twice is one document.
type Doc struct {
	Metricset string
	Instance  string
	JSON      []byte
}

// BeatDocs renders s as Metricbeat's system module does (one document per
// metricset and interval, and per file system, disk and interface for
// those sets), with its field names and types: system.cpu.*,
// system.memory.*, system.load.*, system.filesystem.*, system.diskio.*,
// system.network.*, system.process.summary.*, system.uptime.*. r are the
// CPU shares since the previous collection (the cpu set is left out
// without them, as Metricbeat does); period is the collection interval.
// With host "" the documents name no host (the Kafka records do, in their
// headers, and the transfer adds it).
func BeatDocs(host string, s *Snapshot, r Rates, period time.Duration) []Doc {
	var out []Doc
	add := func(set, instance string, fields map[string]any) {
		doc := map[string]any{
			"@timestamp": s.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			"event":      map[string]any{"module": "system", "dataset": "system." + strings.ReplaceAll(set, "_", ".")},
			"metricset":  map[string]any{"name": set, "period": period.Milliseconds()},
			"service":    map[string]any{"type": "system"},
			"system":     map[string]any{set: fields},
		}
		if host != "" {
			doc["host"] = map[string]any{"name": host}
		}
		if set == "process_summary" {
			doc["system"] = map[string]any{"process": map[string]any{"summary": fields}}
		}
		b, err := json.Marshal(doc)
		if err == nil {
			out = append(out, Doc{Metricset: set, Instance: instance, JSON: b})
		}
	}
	if r.OK && s.NumCPU > 0 {
		cores := float64(s.NumCPU)
		t := r.Total
		pcts := func(seconds float64) map[string]any {
			v := t.Of(seconds)
			return map[string]any{"pct": round4(v * cores), "norm": map[string]any{"pct": round4(v)}}
		}
		add("cpu", "", map[string]any{
			"cores": s.NumCPU,
			"total": pcts(t.Total - t.Idle - t.Iowait), "user": pcts(t.User), "system": pcts(t.System), "idle": pcts(t.Idle),
			"nice": pcts(t.Nice), "iowait": pcts(t.Iowait), "irq": pcts(t.Irq), "softirq": pcts(t.Softirq),
			"steal": pcts(t.Steal),
		})
	}
	if m := s.Mem; m != nil {
		used := m.Total - min(m.Free, m.Total)
		actualUsed := m.Total - min(m.Available, m.Total)
		fields := map[string]any{
			"total":  m.Total,
			"free":   m.Free,
			"used":   map[string]any{"bytes": used, "pct": ratio(used, m.Total)},
			"actual": map[string]any{"free": m.Available, "used": map[string]any{"bytes": actualUsed, "pct": ratio(actualUsed, m.Total)}},
			"cached": m.Cached,
		}
		if sw := s.Swap; sw != nil {
			fields["swap"] = map[string]any{"total": sw.Total, "free": sw.Free, "used": map[string]any{"bytes": sw.Used, "pct": ratio(sw.Used, sw.Total)}}
		}
		add("memory", "", fields)
	}
	if l := s.Load; l != nil && s.NumCPU > 0 {
		c := float64(s.NumCPU)
		add("load", "", map[string]any{
			"1": round4(l.Load1), "5": round4(l.Load5), "15": round4(l.Load15), "cores": s.NumCPU,
			"norm": map[string]any{"1": round4(l.Load1 / c), "5": round4(l.Load5 / c), "15": round4(l.Load15 / c)},
		})
	}
	for _, f := range s.FS {
		add("filesystem", f.Mount, map[string]any{
			"device_name": f.Device, "mount_point": f.Mount, "type": f.Type,
			"total": f.Size, "free": f.Free, "available": f.Avail,
			"used":  map[string]any{"bytes": f.Used(), "pct": round4(f.UsedPct())},
			"files": f.Files, "free_files": f.FilesFree,
		})
	}
	for _, d := range s.Disks {
		add("diskio", d.Name, map[string]any{
			"name":  d.Name,
			"read":  map[string]any{"count": d.ReadCount, "bytes": d.ReadBytes, "time": d.ReadTime},
			"write": map[string]any{"count": d.WriteCount, "bytes": d.WriteBytes, "time": d.WriteTime},
			"io":    map[string]any{"time": d.IoTime, "ops": d.IopsInProgress},
		})
	}
	for _, n := range s.Nets {
		add("network", n.Name, map[string]any{
			"name": n.Name,
			"in":   map[string]any{"bytes": n.BytesRecv, "packets": n.PacketsRecv, "errors": n.Errin, "dropped": n.Dropin},
			"out":  map[string]any{"bytes": n.BytesSent, "packets": n.PacketsSent, "errors": n.Errout, "dropped": n.Dropout},
		})
	}
	if p := s.Procs; p != nil {
		add("process_summary", "", map[string]any{"total": p.ProcsTotal, "running": p.ProcsRunning, "blocked": p.ProcsBlocked})
	}
	if s.BootTime > 0 {
		up := s.Time.Sub(time.Unix(int64(s.BootTime), 0))
		add("uptime", "", map[string]any{"duration": map[string]any{"ms": max(up.Milliseconds(), 0)}})
	}
	return out
}

// DocID is the document's identity across re-deliveries: host, metricset,
// instance and collection time.
func DocID(host string, s *Snapshot, d Doc) string {
	var b strings.Builder
	b.WriteString(host)
	b.WriteByte('|')
	b.WriteString(d.Metricset)
	b.WriteByte('|')
	b.WriteString(d.Instance)
	b.WriteByte('|')
	b.WriteString(s.Time.UTC().Format(time.RFC3339Nano))
	return b.String()
}

func ratio(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return round4(float64(part) / float64(whole))
}

// round4 keeps four decimals, as Metricbeat's percentages have.
func round4(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return math.Round(v*1e4) / 1e4
}
