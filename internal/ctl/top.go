package ctl

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/logpipe/logpipe/internal/platform/inventory"
)

// topOpts are logctl top's own flags.
type topOpts struct {
	interval time.Duration
	once     bool
}

// fileKey names one followed file.
type fileKey struct{ ip, path, topic string }

// fileSample is one scrape of a file's figures.
type fileSample struct{ acked, behind float64 }

// top shows, every interval, each live agent's files with the rate Kafka
// acknowledges their bytes and how far behind they are, from two scrapes
// of the agents' /metrics (their addresses from the inventory); per
// agent, the totals. --once prints one table and exits; Ctrl-C stops.
func (c *cmd) top(o *topOpts, args []string) error {
	if len(args) != 0 {
		return usageError("top [--interval 5s] [--once]")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prev, at, err := c.topSample(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.interval):
		}
		cur, now, err := c.topSample(ctx)
		if err != nil {
			return err
		}
		c.printTop(prev, cur, now.Sub(at), now)
		if o.once {
			return nil
		}
		prev, at = cur, now
	}
}

type topSample struct {
	reports []inventory.Report
	files   map[fileKey]fileSample
	errs    map[string]string // by agent IP: why its metrics could not be read
}

func (c *cmd) topSample(ctx context.Context) (topSample, time.Time, error) {
	rs, err := c.reports()
	if err != nil {
		return topSample{}, time.Time{}, err
	}
	s := topSample{reports: rs, files: map[fileKey]fileSample{}, errs: map[string]string{}}
	hc := http.Client{Timeout: c.timeout}
	for _, r := range rs {
		if r.HTTPAddr == "" {
			s.errs[r.IP] = "publishes no HTTP address ([http] addr empty, or an older agent)"
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.HTTPAddr+"/metrics", nil)
		resp, err := hc.Do(req)
		if err != nil {
			s.errs[r.IP] = "metrics unreachable at " + r.HTTPAddr + ": " + err.Error()
			continue
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			s.errs[r.IP] = "reading metrics: " + err.Error()
			continue
		}
		for name, fam := range fams {
			if name != "logagent_file_acked_offset" && name != "logagent_file_bytes_behind" {
				continue
			}
			for _, m := range fam.GetMetric() {
				k := fileKey{ip: r.IP}
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case "path":
						k.path = l.GetValue()
					case "topic":
						k.topic = l.GetValue()
					}
				}
				fs := s.files[k]
				if name == "logagent_file_acked_offset" {
					fs.acked = m.GetGauge().GetValue()
				} else {
					fs.behind = m.GetGauge().GetValue()
				}
				s.files[k] = fs
			}
		}
	}
	return s, time.Now(), nil
}

func (c *cmd) printTop(prev, cur topSample, dt time.Duration, now time.Time) {
	w := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "%s, over %s\n", now.Format("15:04:05"), dt.Round(100*time.Millisecond))
	fmt.Fprintln(w, "AGENT\tFILE\tTOPIC\tACKED/S\tBEHIND\tACKED OFFSET")
	keys := make([]fileKey, 0, len(cur.files))
	for k := range cur.files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].ip != keys[j].ip {
			return keys[i].ip < keys[j].ip
		}
		return keys[i].path+keys[i].topic < keys[j].path+keys[j].topic
	})
	type total struct{ rate, behind float64 }
	totals := map[string]*total{}
	for _, k := range keys {
		f := cur.files[k]
		rate := "new"
		if p, ok := prev.files[k]; ok {
			switch d := f.acked - p.acked; {
			case d < 0:
				rate = "rotated"
			default:
				r := d / dt.Seconds()
				rate = fmtBytes(int64(r)) + "/s"
				if totals[k.ip] == nil {
					totals[k.ip] = &total{}
				}
				totals[k.ip].rate += r
			}
		}
		if totals[k.ip] == nil {
			totals[k.ip] = &total{}
		}
		totals[k.ip].behind += f.behind
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", k.ip, k.path, k.topic, rate, fmtBytes(int64(f.behind)), int64(f.acked))
	}
	for _, r := range cur.reports {
		if e, ok := cur.errs[r.IP]; ok {
			fmt.Fprintf(w, "%s\t(%s)\t\t\t\t\n", r.IP, e)
			continue
		}
		if t := totals[r.IP]; t != nil {
			fmt.Fprintf(w, "%s\tall files\t\t%s/s\t%s\t\n", r.IP, fmtBytes(int64(t.rate)), fmtBytes(int64(t.behind)))
		}
	}
	_ = w.Flush()
	if len(cur.reports) == 0 {
		fmt.Fprintln(c.stdout, "(no live agents)")
	}
}
