package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/inventory"
)

// agents prints the live agents from their inventory leases.
func (c *cmd) agents(args []string) error {
	if len(args) != 0 {
		return usageError("agents")
	}
	reports, err := c.reports()
	if err != nil {
		return err
	}
	if c.json {
		return c.printJSON(reports)
	}
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "IP\tHOST\tVERSION\tUP\tCONFIG REV\tFILES\tNOT RUNNING\tBEHIND\tUPDATED")
	for _, r := range reports {
		bad, behind := 0, int64(0)
		for _, t := range r.Tasks {
			if t.State != "running" {
				bad++
			}
			behind += t.BytesBehind
		}
		rev := fmt.Sprint(r.ConfigRevision)
		if r.ConfigError != "" {
			rev += " (last put rejected)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s ago\n", r.IP, r.Host, r.Version, since(r.Started), rev, len(r.Tasks), bad, fmtBytes(behind), since(r.Updated))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(reports) == 0 {
		fmt.Fprintln(c.stdout, "(no live agents)")
	}
	return nil
}

// status prints one agent's files.
func (c *cmd) status(args []string) error {
	if len(args) != 1 {
		return usageError("status <ip>")
	}
	reports, err := c.reports()
	if err != nil {
		return err
	}
	for _, r := range reports {
		if r.IP != args[0] {
			continue
		}
		if c.json {
			return c.printJSON(r)
		}
		fmt.Fprintf(c.stdout, "agent %s (%s), version %s, up %s, config revision %d\n", r.IP, r.Host, r.Version, since(r.Started), r.ConfigRevision)
		if r.ConfigError != "" {
			fmt.Fprintf(c.stdout, "last collect config put was rejected: %s\n", r.ConfigError)
		}
		if m := r.Metrics; m != nil {
			outputs := strings.Join(m.Outputs, ", ")
			if outputs == "" {
				outputs = "no output"
			}
			fmt.Fprintf(c.stdout, "host metrics: every %s to %s (config revision %d), last collection %s ago\n", m.Interval, outputs, m.Revision, since(m.LastCollection))
			for _, e := range []struct{ what, err string }{{"last host metrics config put was rejected", m.ConfigError},
				{"last collection missed", m.CollectError}, {"InfluxDB", m.InfluxError}, {"Kafka", m.KafkaError}} {
				if e.err != "" {
					fmt.Fprintf(c.stdout, "%s: %s\n", e.what, e.err)
				}
			}
		}
		w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "PATH\tTOPIC\tSTATE\tACKED OFFSET\tBEHIND\tREASON")
		for _, t := range r.Tasks {
			fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", t.Path, t.Topic, t.State, t.AckedOffset, fmtBytes(t.BytesBehind), t.Reason)
		}
		return w.Flush()
	}
	return fmt.Errorf("no live agent %s (agents keep %s<ip> alive while they run)", args[0], c.agentsPrefix)
}

func (c *cmd) reports() ([]inventory.Report, error) {
	var rs []inventory.Report
	err := c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		rs, err = inventory.List(ctx, cli, c.agentsPrefix)
		return err
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].IP < rs[j].IP })
	return rs, nil
}

func (c *cmd) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String()
}

func fmtBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
