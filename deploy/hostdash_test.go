package deploy

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/logpipe/logpipe/internal/agent/hostmetrics"
)

// produced is what the agent's host metrics give on this host: the metric
// families of /metrics (node_exporter's names) and the fields of each
// InfluxDB measurement (Telegraf's), from two real collections.
func produced(t *testing.T) (prom map[string]bool, influx map[string]map[string]bool) {
	t.Helper()
	c := hostmetrics.NewCollector(hostmetrics.DefaultFilters())
	first, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// CPU counters move in ticks: make sure the second collection has
	// more time than the first, as it has in a real interval.
	second.Total.Idle += 1
	for i := range second.CPUs {
		second.CPUs[i].Idle += 1
	}
	reg := prometheus.NewRegistry()
	p := &hostmetrics.Prom{}
	reg.MustRegister(p)
	p.Set(second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	prom = map[string]bool{}
	for _, mf := range mfs {
		prom[mf.GetName()] = true
	}
	influx = map[string]map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(hostmetrics.AppendInflux(nil, "h", second, hostmetrics.RatesBetween(first, second)))), "\n") {
		head, rest, _ := strings.Cut(line, " ")
		m, _, _ := strings.Cut(head, ",")
		fields, _, _ := strings.Cut(rest, " ")
		if influx[m] == nil {
			influx[m] = map[string]bool{}
		}
		for _, f := range strings.Split(fields, ",") {
			k, _, _ := strings.Cut(f, "=")
			influx[m][k] = true
		}
	}
	return prom, influx
}

// The host dashboards: every query's metric (node_exporter names) or
// measurement and field (Telegraf names) is one the agent produces, every
// panel uses the dashboard's data source variable and filters on its host
// variable.
func TestHostDashboards(t *testing.T) {
	prom, influx := produced(t)

	node := loadDashboardFile(t, "grafana/host-node-exporter.json")
	checkHostDashboard(t, node, "prometheus", "instance")
	for _, p := range allPanels(node.Panels) {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("node panel %q: %s does not filter on $instance", p.Title, tg.Expr)
			}
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("node panel %q: no metric in %s", p.Title, tg.Expr)
			}
			for _, n := range names {
				if !prom[n] {
					t.Errorf("node panel %q: the agent produces no %s", p.Title, n)
				}
			}
		}
	}

	tel := loadDashboardFile(t, "grafana/host-telegraf.json")
	checkHostDashboard(t, tel, "influxdb", "host")
	from := regexp.MustCompile(`FROM "([^"]+)"`)
	field := regexp.MustCompile(`\w+\("([^"]+)"\)`)
	for _, p := range allPanels(tel.Panels) {
		for _, tg := range p.Targets {
			q := tg.Query
			if !strings.Contains(q, `"host" =~ /^$host$/`) || !strings.Contains(q, "$timeFilter") {
				t.Errorf("telegraf panel %q: %s does not filter on $host and $timeFilter", p.Title, q)
			}
			m := from.FindStringSubmatch(q)
			fs := field.FindAllStringSubmatch(q, -1)
			if m == nil || len(fs) == 0 {
				t.Errorf("telegraf panel %q: no measurement or field in %s", p.Title, q)
				continue
			}
			for _, f := range fs {
				if !influx[m[1]][f[1]] {
					t.Errorf("telegraf panel %q: the agent writes no field %s to %s", p.Title, f[1], m[1])
				}
			}
		}
	}
}

func checkHostDashboard(t *testing.T, d dashboard, ds, hostVar string) {
	t.Helper()
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("%s: uid %q, title %q, schemaVersion %d", d.Title, d.UID, d.Title, d.SchemaVersion)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && v.Query != ds {
			t.Errorf("%s: datasource variable query %v, want %s", d.Title, v.Query, ds)
		}
	}
	if vars["datasource"] != "datasource" || vars[hostVar] != "query" {
		t.Errorf("%s: variables %v, want datasource and %s", d.Title, vars, hostVar)
	}
	ids := map[int]bool{}
	n := 0
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("%s: panel id %d twice", d.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("%s: panel %q gridPos %+v", d.Title, p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		n++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != ds || len(p.Targets) == 0 {
			t.Errorf("%s: panel %q datasource %+v, %d targets", d.Title, p.Title, p.Datasource, len(p.Targets))
		}
	}
	if n < 6 {
		t.Errorf("%s: %d panels", d.Title, n)
	}
}
