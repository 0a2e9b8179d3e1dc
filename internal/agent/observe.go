package agent

import (
	"net"
	"os"
	"sort"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/platform/inventory"
)

// fileTasks describes every followed file: its state, the offset Kafka
// acknowledged and how far that is behind the file's size.
func (a *Agent) fileTasks() []inventory.Task {
	out := a.fileStates()
	a.progress(out)
	return out
}

// fileStates is every collected file with its state, without progress
// (no stat).
func (a *Agent) fileStates() []inventory.Task {
	var out []inventory.Task
	for _, ts := range a.tasks() {
		for _, f := range ts.Files {
			out = append(out, inventory.Task{Path: f.Path, Topic: ts.Entry.Topic, State: f.State, Reason: f.Reason})
		}
		if len(ts.Files) == 0 { // a glob that matches nothing yet
			out = append(out, inventory.Task{Path: ts.Entry.Path, Topic: ts.Entry.Topic, State: noFiles})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Topic < out[j].Topic
	})
	return out
}

// progress fills each file's acknowledged offset and bytes behind (one
// stat per file).
func (a *Agent) progress(tasks []inventory.Task) {
	streams := map[registry.Key]registry.Stream{}
	for _, s := range a.reg.Streams() {
		streams[s.Key] = s
	}
	for i := range tasks {
		t := &tasks[i]
		if t.State == noFiles {
			continue
		}
		if fi, err := os.Stat(t.Path); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				if s, known := streams[registry.Key{Dev: uint64(st.Dev), Ino: st.Ino, Topic: t.Topic}]; known {
					t.AckedOffset = s.Offset
				}
				t.BytesBehind = max(fi.Size()-t.AckedOffset, 0)
			}
		}
	}
}

const noFiles = "no matching files"

// report is the agent's inventory entry, without progress (see
// inventory.Options.Progress).
func (a *Agent) report() inventory.Report {
	st := a.Status()
	return inventory.Report{
		Host: a.host, IP: a.ip, AgentID: a.id, AllowedPaths: a.guard.Patterns(), HTTPAddr: a.reachableHTTP(), Version: a.opts.Version, Started: a.started,
		ConfigRevision: st.Revision, ConfigError: st.ConfigError, Tasks: a.fileStates(), Metrics: st.Metrics,
	}
}

func (a *Agent) reportProgress(r *inventory.Report) { a.progress(r.Tasks) }

// fileCollector exports per-file gauges at scrape time (one stat per file
// per scrape, nothing per line).
type fileCollector struct {
	a      *Agent
	behind *prometheus.Desc
	acked  *prometheus.Desc
}

func newFileCollector(a *Agent) *fileCollector {
	return &fileCollector{a: a,
		behind: prometheus.NewDesc("logagent_file_bytes_behind", "File size minus the offset Kafka acknowledged.", []string{"path", "topic"}, nil),
		acked:  prometheus.NewDesc("logagent_file_acked_offset", "Offset up to which Kafka acknowledged every line of the file.", []string{"path", "topic"}, nil),
	}
}

func (c *fileCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.behind
	ch <- c.acked
}

func (c *fileCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[2]string]bool{}
	for _, t := range c.a.fileTasks() {
		k := [2]string{t.Path, t.Topic}
		if seen[k] {
			continue
		}
		seen[k] = true
		ch <- prometheus.MustNewConstMetric(c.behind, prometheus.GaugeValue, float64(t.BytesBehind), t.Path, t.Topic)
		ch <- prometheus.MustNewConstMetric(c.acked, prometheus.GaugeValue, float64(t.AckedOffset), t.Path, t.Topic)
	}
}

// reachableHTTP is the HTTP address as another host reaches it: a
// wildcard listen address ([http] addr = :9731) becomes the agent's IP.
func (a *Agent) reachableHTTP() string {
	addr := a.HTTPAddr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return net.JoinHostPort(a.ip, port)
	}
	return addr
}
