package deploy

// The deployment files are checked with the tools that consume them where
// they are installed (systemd-analyze, systemd-sysusers, docker-compose,
// promtool, shellcheck, curl; scripts/deps.sh installs them) and with
// structural checks that need nothing. A missing tool skips only its part.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/realstack"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// repoRoot is the repository root (the test runs in deploy/).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tool returns the path of an installed command, or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (scripts/deps.sh installs it)", name)
	}
	return p
}

// run runs a command and returns its combined output and error.
func run(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ---------------------------------------------------------------- Grafana

type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID      string         `json:"refId"`
		Expr       string         `json:"expr"`
		Query      string         `json:"query"` // InfluxQL
		Datasource *datasourceRef `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // collapsed rows
}

func loadDashboard(t *testing.T) dashboard {
	return loadDashboardFile(t, "grafana/logpipe-dashboard.json")
}

func loadDashboardFile(t *testing.T, name string) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, name)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// allPanels flattens rows (collapsed rows carry their panels inside).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

var (
	// PromQL pieces that are not metric names.
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchers  = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords  = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true}
	metricNameRe  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	histogramPart = regexp.MustCompile(`_(bucket|sum|count)$`)
)

// metricNames returns the metric names an expression selects: identifiers
// that are not functions, keywords, label names or numbers.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // the exponent or suffix of a number, e.g. 1e3
		}
		if promKeywords[strings.ToLower(name)] {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		names = append(names, name)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (instance) (rate(a_total{instance=~"$instance"}[$__rate_interval]))`:                   {"a_total"},
		`histogram_quantile(0.99, sum by (le) (rate(h_seconds_bucket{x="y{"}[5m])))`:                   {"h_seconds_bucket"},
		`max by (topic, partition) (lag{instance=~"$instance"}) / on(topic) group_left(x) other * 1e3`: {"lag", "other"},
		`up == bool 1 or absent(z)`: {"up", "z"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// readMetricsList reads grafana/metrics.txt: one metric name per line.
func readMetricsList(t *testing.T) map[string]bool {
	t.Helper()
	list := map[string]bool{}
	for i, line := range strings.Split(string(readFile(t, "grafana/metrics.txt")), "\n") {
		if line == "" {
			continue
		}
		if !metricNameRe.MatchString(line) || !(strings.HasPrefix(line, "logagent_") || strings.HasPrefix(line, "logtransfer_")) {
			t.Errorf("grafana/metrics.txt:%d: %q is not a logagent_/logtransfer_ metric name", i+1, line)
		}
		if histogramPart.MatchString(line) && !strings.HasSuffix(line, "_count") {
			t.Errorf("grafana/metrics.txt:%d: list histograms by their family name, not %q", i+1, line)
		}
		if list[line] {
			t.Errorf("grafana/metrics.txt:%d: %q listed twice", i+1, line)
		}
		list[line] = true
	}
	if len(list) == 0 {
		t.Fatal("grafana/metrics.txt lists no metric")
	}
	return list
}

// The metrics the dashboard must show (the daemons' /metrics).
var requiredMetrics = []string{
	"logagent_lines_read_total", "logagent_bytes_read_total",
	"logagent_events_sent_total", "logagent_events_acked_total", "logagent_events_failed_total", "logagent_events_retried_total",
	"logagent_queue_length", "logagent_events_inflight", "logagent_buffer_bytes",
	"logagent_ack_latency_seconds", "logagent_tasks", "logagent_files_open", "logagent_file_bytes_behind",
	"logagent_config_reloads_total", "logagent_config_last_reload_successful",
	"logagent_etcd_up", "logagent_kafka_up",
	"logagent_registry_saves_total", "logagent_registry_save_errors_total",
	"logagent_rotations_total", "logagent_truncations_total", "logagent_file_errors_total",
	"logtransfer_messages_consumed_total", "logtransfer_docs_indexed_total", "logtransfer_docs_retried_total",
	"logtransfer_docs_dead_lettered_total", "logtransfer_bulk_requests_total", "logtransfer_bulk_duration_seconds",
	"logtransfer_consumer_lag", "logtransfer_index_delay_seconds", "logtransfer_es_up", "logtransfer_etcd_up",
	"logtransfer_discovery_invalid_configs_total",
}

func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.SchemaVersion < 36 || d.SchemaVersion > 41 {
		t.Errorf("schemaVersion %d, want about 39", d.SchemaVersion)
	}
	if d.UID == "" || d.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Name == "datasource" && v.Query != "prometheus" {
			t.Errorf("variable datasource: query %v, want prometheus", v.Query)
		}
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" {
		t.Errorf("variables %v: want datasource (type datasource) and instance (type query)", vars)
	}

	list := readMetricsList(t)
	used := map[string]bool{}
	ids := map[int]bool{}
	var nPanels int
	for _, p := range allPanels(d.Panels) {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: bad gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		nPanels++
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want uid ${datasource}", p.Title, p.Datasource)
		}
		withExpr := 0
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s: no expr", p.Title, tg.RefID)
				continue
			}
			withExpr++
			if tg.Datasource != nil && tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
			if !strings.Contains(tg.Expr, `instance=~"$instance"`) {
				t.Errorf("panel %q target %s: expr does not filter on $instance: %s", p.Title, tg.RefID, tg.Expr)
			}
			names := metricNames(tg.Expr)
			if len(names) == 0 {
				t.Errorf("panel %q target %s: no metric in %q", p.Title, tg.RefID, tg.Expr)
			}
			for _, n := range names {
				base := histogramPart.ReplaceAllString(n, "")
				if list[n] {
					base = n // e.g. a counter that ends in _count
				}
				used[base] = true
				if !list[base] {
					t.Errorf("panel %q: metric %s (from %s) is not in grafana/metrics.txt", p.Title, base, n)
				}
			}
		}
		if withExpr == 0 {
			t.Errorf("panel %q (%s) has no target with an expr", p.Title, p.Type)
		}
	}
	for _, m := range requiredMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
	t.Logf("%d panels, %d metrics (all in grafana/metrics.txt)", nPanels, len(used))
}

// TestDashboardPromQL has promtool parse every panel expression (as
// recording rules, with Grafana's variables substituted).
func TestDashboardPromQL(t *testing.T) {
	promtool := tool(t, "promtool")
	for _, name := range []string{"grafana/logpipe-dashboard.json", "grafana/host-node-exporter.json"} {
		t.Run(filepath.Base(name), func(t *testing.T) { checkPromQL(t, promtool, loadDashboardFile(t, name)) })
	}
}

func checkPromQL(t *testing.T, promtool string, d dashboard) {
	repl := strings.NewReplacer("$__rate_interval", "1m", "${instance}", ".*", "$instance", ".*")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			if tg.Expr != "" {
				rules = append(rules, rule{Record: fmt.Sprintf("logpipe:panel%d:%s", p.ID, tg.RefID), Expr: repl.Replace(tg.Expr)})
			}
		}
	}
	// JSON is YAML: promtool reads it as a rule file.
	b, err := json.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run("", nil, promtool, "check", "rules", path)
	if err != nil {
		t.Fatalf("promtool check rules (the dashboard's %d expressions): %v\n%s", len(rules), err, out)
	}
	t.Logf("promtool parsed %d dashboard expressions", len(rules))
}

func TestPrometheusConfig(t *testing.T) {
	text := string(readFile(t, "prometheus.yml"))
	for _, job := range []string{"logagent", "logtransfer"} {
		if !regexp.MustCompile(`(?m)^\s*- job_name: ` + job + `\s*$`).MatchString(text) {
			t.Errorf("prometheus.yml has no job %s (the dashboard's instance variable lists jobs logagent and logtransfer)", job)
		}
	}
	for _, port := range []string{":9731", ":9732"} {
		if !strings.Contains(text, port) {
			t.Errorf("prometheus.yml scrapes no target on %s", port)
		}
	}
	promtool := tool(t, "promtool")
	if out, err := run("", nil, promtool, "check", "config", "prometheus.yml"); err != nil {
		t.Fatalf("promtool check config prometheus.yml: %v\n%s", err, out)
	}
}

// ---------------------------------------------------------------- systemd

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	u := unitFile{}
	section := ""
	for i, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			t.Fatalf("%s:%d: continuation lines are not expected", path, i+1)
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not Key=Value in a section: %q", path, i+1, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		u[section][k] = append(u[section][k], v)
	}
	return u
}

// get is the last value of a key ("" and false if absent).
func (u unitFile) get(section, key string) (string, bool) {
	vs := u[section][key]
	if len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

// systemdSeconds parses a systemd time span such as 30s, 5min, 1min 30s or 300.
func systemdSeconds(v string) (float64, error) {
	units := map[string]float64{"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "ms": 0.001, "msec": 0.001,
		"m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600}
	re := regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)`)
	total, rest := 0.0, v
	for strings.TrimSpace(rest) != "" {
		m := re.FindStringSubmatch(rest)
		if m == nil {
			return 0, fmt.Errorf("bad time span %q", v)
		}
		f, _ := strconv.ParseFloat(m[1], 64)
		mult, ok := units[m[2]]
		if !ok {
			return 0, fmt.Errorf("bad time unit in %q", v)
		}
		total += f * mult
		rest = rest[len(m[0]):]
	}
	return total, nil
}

// systemdBytes parses a size such as 256M (base 1024, as systemd does).
func systemdBytes(v string) (int64, error) {
	mult := map[byte]int64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	if n := len(v); n > 0 && mult[v[n-1]] != 0 {
		f, err := strconv.ParseInt(v[:n-1], 10, 64)
		return f * mult[v[n-1]], err
	}
	return strconv.ParseInt(v, 10, 64)
}

func TestSystemdUnits(t *testing.T) {
	root := repoRoot(t)
	agentCfg, err := config.LoadAgent(filepath.Join(root, "conf", "logagent.ini"))
	if err != nil {
		t.Fatal(err)
	}
	transferCfg, err := config.LoadTransfer(filepath.Join(root, "conf", "logtransfer.ini"))
	if err != nil {
		t.Fatal(err)
	}
	shutdown := map[string]time.Duration{
		"logagent":    agentCfg.Agent.ShutdownTimeout,
		"logtransfer": transferCfg.ES.ShutdownTimeout,
	}

	common := map[string]string{
		"Type": "simple", "Restart": "on-failure", "KillSignal": "SIGTERM",
		"User": "logpipe", "Group": "logpipe",
		"NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true", "PrivateTmp": "true",
		"ProtectKernelTunables": "true", "ProtectKernelModules": "true", "ProtectKernelLogs": "true",
		"ProtectControlGroups": "true", "RestrictNamespaces": "true", "LockPersonality": "true",
		"MemoryDenyWriteExecute": "true",
	}
	for _, name := range []string{"logagent", "logtransfer"} {
		t.Run(name, func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", name+".service"))
			want := fmt.Sprintf("/usr/local/bin/%s -config /etc/logpipe/%s.ini", name, name)
			if v, _ := u.get("Service", "ExecStart"); v != want {
				t.Errorf("ExecStart=%s, want %s", v, want)
			}
			for k, want := range common {
				if v, _ := u.get("Service", k); v != want {
					t.Errorf("%s=%s, want %s", k, v, want)
				}
			}
			for _, k := range []string{"StartLimitIntervalSec", "StartLimitBurst"} {
				v, _ := u.get("Unit", k)
				if n, err := systemdSeconds(v); err != nil || n <= 0 {
					t.Errorf("[Unit] %s=%q: want a positive value (start-rate limit)", k, v)
				}
			}
			if v, _ := u.get("Service", "RestartSec"); v == "" {
				t.Error("RestartSec is not set")
			} else if s, err := systemdSeconds(v); err != nil || s < 1 {
				t.Errorf("RestartSec=%s: want at least 1s (%v)", v, err)
			}
			v, _ := u.get("Service", "TimeoutStopSec")
			stop, err := systemdSeconds(v)
			if err != nil || time.Duration(stop*float64(time.Second)) < shutdown[name]+5*time.Second {
				t.Errorf("TimeoutStopSec=%q: want at least shutdown_timeout (%s) + 5s (%v)", v, shutdown[name], err)
			}
			fams, _ := u.get("Service", "RestrictAddressFamilies")
			if got := strings.Fields(fams); !sameSet(got, []string{"AF_INET", "AF_INET6", "AF_UNIX"}) {
				t.Errorf("RestrictAddressFamilies=%s, want AF_INET AF_INET6 AF_UNIX", fams)
			}
			if f := u["Service"]["SystemCallFilter"]; len(f) == 0 || f[0] != "@system-service" {
				t.Errorf("SystemCallFilter=%q, want @system-service first", f)
			}
			if v, ok := u.get("Service", "ProcSubset"); ok && v == "pid" {
				t.Error("ProcSubset=pid hides /proc/stat from the process collector: /metrics would fail")
			}
			if v, _ := u.get("Install", "WantedBy"); v != "multi-user.target" {
				t.Errorf("WantedBy=%s, want multi-user.target", v)
			}
			bound, okB := u.get("Service", "CapabilityBoundingSet")
			ambient, okA := u.get("Service", "AmbientCapabilities")
			state, _ := u.get("Service", "StateDirectory")
			rw := u["Service"]["ReadWritePaths"]
			switch name {
			case "logagent":
				if bound != "CAP_DAC_READ_SEARCH" || ambient != "CAP_DAC_READ_SEARCH" {
					t.Errorf("capabilities bound=%q ambient=%q, want CAP_DAC_READ_SEARCH only", bound, ambient)
				}
				if state != "logagent" {
					t.Errorf("StateDirectory=%q, want logagent (/var/lib/logagent)", state)
				}
				for _, p := range rw {
					if p != "/var/lib/logagent" {
						t.Errorf("ReadWritePaths=%s: only the agent's state may be writable", p)
					}
				}
				mem, _ := u.get("Service", "MemoryMax")
				n, err := systemdBytes(mem)
				if err != nil || n < 2*int64(agentCfg.Agent.MemoryLimit) {
					t.Errorf("MemoryMax=%q: want a hard limit of at least twice memory_limit (%d bytes)", mem, agentCfg.Agent.MemoryLimit)
				}
			case "logtransfer":
				if !okB || bound != "" || !okA || ambient != "" {
					t.Errorf("capabilities bound=%q ambient=%q: want both set and empty", bound, ambient)
				}
				if state != "logtransfer" {
					t.Errorf("StateDirectory=%q, want logtransfer (/var/lib/logtransfer, the pipeline cache)", state)
				}
				for _, p := range rw {
					if p != "/var/lib/logtransfer" {
						t.Errorf("ReadWritePaths=%s: only the transfer's state may be writable", p)
					}
				}
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// daemonBinary returns a built binary of cmd/<name>: bin/<name> from
// `make build` if present, else one built into dir.
func daemonBinary(t *testing.T, root, dir, name string) string {
	t.Helper()
	if p := filepath.Join(root, "bin", name); isExecutable(p) {
		return p
	}
	out := filepath.Join(dir, name)
	if o, err := run(root, nil, goTool(), "build", "-o", out, "./cmd/"+name); err != nil {
		t.Fatalf("go build ./cmd/%s: %v\n%s", name, err, o)
	}
	return out
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// TestSystemdAnalyze runs systemd-analyze verify and security on copies of
// the units whose ExecStart points at real built binaries (verify requires
// the binary to exist). No message is filtered out: verify must print nothing.
func TestSystemdAnalyze(t *testing.T) {
	analyze := tool(t, "systemd-analyze")
	root := repoRoot(t)
	dir := t.TempDir()
	var units []string
	for _, name := range []string{"logagent", "logtransfer"} {
		bin := daemonBinary(t, root, dir, name)
		text := string(readFile(t, filepath.Join("systemd", name+".service")))
		orig := "ExecStart=/usr/local/bin/" + name + " "
		if !strings.Contains(text, orig) {
			t.Fatalf("%s.service: no %q to point at the built binary", name, orig)
		}
		text = strings.Replace(text, orig, "ExecStart="+bin+" ", 1)
		p := filepath.Join(dir, name+".service")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	out, err := run(dir, nil, analyze, append([]string{"verify", "--man=no"}, units...)...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure is 0.0 (locked down) to 10.0; threshold 25 means 2.5.
	out, err = run(dir, nil, analyze, append([]string{"security", "--offline=true", "--threshold=25", "--no-pager"}, units...)...)
	if err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.5 or error: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "Overall exposure level") {
			t.Log(strings.TrimSpace(line))
		}
	}
	// Binaries that do not exist must be reported: the check is real.
	bad := filepath.Join(dir, "bad.service")
	if err := os.WriteFile(bad, []byte("[Service]\nExecStart=/nonexistent/logagent\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(dir, nil, analyze, "verify", "--man=no", bad); err == nil {
		t.Errorf("systemd-analyze verify accepted a missing binary:\n%s", out)
	}
}

func TestSysusers(t *testing.T) {
	sysusers := tool(t, "systemd-sysusers")
	conf, err := filepath.Abs(filepath.Join("systemd", "logpipe.sysusers.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := run("", nil, sysusers, "--dry-run", "--root="+t.TempDir(), conf)
	if err != nil || !strings.Contains(out, "user 'logpipe'") {
		t.Fatalf("systemd-sysusers --dry-run %s: %v\n%s", conf, err, out)
	}
}

// ---------------------------------------------------------------- compose

// A small YAML reader for the subset deploy/docker-compose.yml is written
// in: block mappings and sequences, plain and quoted scalars, JSON-style
// flow sequences ([...]); flow mappings ({...}) stay strings. It refuses
// anything else (anchors, block scalars, tabs) instead of guessing.

type yamlLine struct {
	n, indent int
	text      string
}

type yamlParser struct{ lines []yamlLine }

func parseYAML(data []byte) (any, error) {
	var p yamlParser
	for i, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimRight(raw, " \r")
		body := strings.TrimLeft(raw, " ")
		if body == "" || body[0] == '#' || body == "---" {
			continue
		}
		if strings.HasPrefix(body, "\t") {
			return nil, fmt.Errorf("line %d: tab in indentation", i+1)
		}
		text := strings.TrimRight(stripYAMLComment(body), " ")
		p.lines = append(p.lines, yamlLine{n: i + 1, indent: len(raw) - len(body), text: text})
	}
	if len(p.lines) == 0 {
		return nil, fmt.Errorf("empty document")
	}
	v, next, err := p.block(0, p.lines[0].indent)
	if err != nil {
		return nil, err
	}
	if next != len(p.lines) {
		return nil, fmt.Errorf("line %d: unexpected indentation", p.lines[next].n)
	}
	return v, nil
}

// stripYAMLComment removes a " #" comment outside quotes.
func stripYAMLComment(s string) string {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && (i == 0 || strings.ContainsRune(" [{,:", rune(s[i-1]))):
			quote = c
		case c == '#' && i > 0 && s[i-1] == ' ':
			return s[:i]
		}
	}
	return s
}

func isSeqItem(text string) bool { return text == "-" || strings.HasPrefix(text, "- ") }

func (p *yamlParser) block(i, indent int) (any, int, error) {
	if isSeqItem(p.lines[i].text) {
		return p.seq(i, indent)
	}
	return p.mapping(i, indent)
}

func (p *yamlParser) seq(i, indent int) (any, int, error) {
	var out []any
	for i < len(p.lines) && p.lines[i].indent == indent && isSeqItem(p.lines[i].text) {
		l := p.lines[i]
		rest := strings.TrimLeft(strings.TrimPrefix(l.text, "-"), " ")
		var v any
		var err error
		switch {
		case rest == "":
			if i+1 < len(p.lines) && p.lines[i+1].indent > indent {
				v, i, err = p.block(i+1, p.lines[i+1].indent)
			} else {
				i++
			}
		case yamlKey(rest):
			// "- key: value" starts a mapping indented past the dash.
			p.lines[i] = yamlLine{n: l.n, indent: indent + len(l.text) - len(rest), text: rest}
			v, i, err = p.mapping(i, p.lines[i].indent)
		default:
			v, err = yamlScalar(rest, l.n)
			i++
		}
		if err != nil {
			return nil, i, err
		}
		out = append(out, v)
	}
	if i < len(p.lines) && p.lines[i].indent > indent {
		return nil, i, fmt.Errorf("line %d: unexpected indentation", p.lines[i].n)
	}
	return out, i, nil
}

func yamlKey(text string) bool {
	_, _, ok := splitYAMLKey(text)
	return ok
}

// splitYAMLKey splits "key: value" or "key:" (the key may be quoted).
func splitYAMLKey(text string) (key, val string, ok bool) {
	if text[0] == '"' || text[0] == '\'' {
		end := strings.IndexByte(text[1:], text[0])
		if end < 0 {
			return "", "", false
		}
		key, rest := text[1:end+1], text[end+2:]
		if rest == ":" || strings.HasPrefix(rest, ": ") {
			return key, strings.TrimSpace(strings.TrimPrefix(rest, ":")), true
		}
		return "", "", false
	}
	if strings.HasSuffix(text, ":") && !strings.Contains(text, ": ") {
		return text[:len(text)-1], "", true
	}
	k, v, found := strings.Cut(text, ": ")
	if !found || strings.ContainsAny(k, "[]{},") {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}

func (p *yamlParser) mapping(i, indent int) (any, int, error) {
	out := map[string]any{}
	for i < len(p.lines) && p.lines[i].indent == indent {
		l := p.lines[i]
		if isSeqItem(l.text) {
			return nil, i, fmt.Errorf("line %d: sequence item inside a mapping", l.n)
		}
		k, val, ok := splitYAMLKey(l.text)
		if !ok {
			return nil, i, fmt.Errorf("line %d: not key: value: %q", l.n, l.text)
		}
		if _, dup := out[k]; dup {
			return nil, i, fmt.Errorf("line %d: duplicate key %q", l.n, k)
		}
		var v any
		var err error
		switch {
		case val != "":
			v, err = yamlScalar(val, l.n)
			i++
		case i+1 < len(p.lines) && p.lines[i+1].indent > indent:
			v, i, err = p.block(i+1, p.lines[i+1].indent)
		case i+1 < len(p.lines) && p.lines[i+1].indent == indent && isSeqItem(p.lines[i+1].text):
			v, i, err = p.seq(i+1, indent)
		default:
			i++ // null
		}
		if err != nil {
			return nil, i, err
		}
		out[k] = v
	}
	if i < len(p.lines) && p.lines[i].indent > indent {
		return nil, i, fmt.Errorf("line %d: unexpected indentation", p.lines[i].n)
	}
	return out, i, nil
}

func yamlScalar(s string, line int) (any, error) {
	switch s[0] {
	case '&', '*', '|', '>', '!':
		return nil, fmt.Errorf("line %d: %q: anchors, aliases, tags and block scalars are not supported here", line, s)
	case '"':
		var v string
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("line %d: %q: %v", line, s, err)
		}
		return v, nil
	case '\'':
		if len(s) < 2 || s[len(s)-1] != '\'' {
			return nil, fmt.Errorf("line %d: unterminated quote: %q", line, s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case '[':
		var v []any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("line %d: flow sequence %q must be JSON here: %v", line, s, err)
		}
		return v, nil
	}
	return s, nil
}

func TestParseYAML(t *testing.T) {
	v, err := parseYAML([]byte("a:\n  b: 'x''y' # c\n  c:\n  - 1\n  - k: v\n    l: w\n  d: [\"p\", \"q\"]\ne: \"s # t\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": map[string]any{"b": "x'y", "c": []any{"1", map[string]any{"k": "v", "l": "w"}}, "d": []any{"p", "q"}}, "e": "s # t"}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("got %v\nwant %v", v, want)
	}
	for _, bad := range []string{"a: 1\n  b: 2\n", "a: |\n  x\n", "a: 1\na: 2\n", "a:\n  - 1\n  b: 2\n"} {
		if _, err := parseYAML([]byte(bad)); err == nil {
			t.Errorf("parseYAML(%q) accepted", bad)
		}
	}
}

func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }
func asString(v any) string      { s, _ := v.(string); return s }

// envMap reads a service's environment (mapping or KEY=VALUE list).
func envMap(v any) map[string]string {
	out := map[string]string{}
	for k, val := range asMap(v) {
		out[k] = asString(val)
	}
	for _, item := range asList(v) {
		k, val, _ := strings.Cut(asString(item), "=")
		out[k] = val
	}
	return out
}

var portRe = regexp.MustCompile(`^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d+(?:-\d+)?):)?(\d+(?:-\d+)?)(?:/(tcp|udp))?$`)

// containerPorts checks a service's ports and returns the container ports.
func containerPorts(t *testing.T, svc string, ports []any) []int {
	var out []int
	for _, p := range ports {
		s := asString(p)
		m := portRe.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("service %s: port %q is not [ip:][host:]container[/proto]", svc, p)
			continue
		}
		if m[1] != "" && net.ParseIP(m[1]) == nil {
			t.Errorf("service %s: port %q: bad IP", svc, s)
		}
		for _, part := range []string{m[2], m[3]} {
			for _, n := range strings.Split(part, "-") {
				if n == "" {
					continue
				}
				if v, err := strconv.Atoi(n); err != nil || v < 1 || v > 65535 {
					t.Errorf("service %s: port %q out of range", svc, s)
				}
			}
		}
		if v, err := strconv.Atoi(m[3]); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// TestComposeStructure checks docker-compose.yml without Docker: the
// compose rules (image or build, depends_on targets and conditions, ports,
// volumes, healthchecks) and what this stack needs (KRaft Kafka with auto
// topic creation, single-node ES with a heap limit, etcd flags, the
// logtransfer build and its config).
func TestComposeStructure(t *testing.T) {
	doc, err := parseYAML(readFile(t, "docker-compose.yml"))
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	top := asMap(doc)
	for k := range top {
		if !slices.Contains([]string{"version", "services", "volumes", "networks", "configs", "secrets"}, k) && !strings.HasPrefix(k, "x-") {
			t.Errorf("unknown top-level key %q", k)
		}
	}
	services := asMap(top["services"])
	declaredVolumes := asMap(top["volumes"])
	for _, want := range []string{"kafka", "elasticsearch", "kibana", "etcd", "logtransfer"} {
		if services[want] == nil {
			t.Errorf("no service %s", want)
		}
	}
	healthy := map[string]bool{}
	for name, v := range services {
		svc := asMap(v)
		if svc == nil {
			t.Errorf("service %s is not a mapping", name)
			continue
		}
		if svc["image"] == nil && svc["build"] == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if hc := asMap(svc["healthcheck"]); hc != nil {
			test := asList(hc["test"])
			if len(test) < 2 || (test[0] != "CMD" && test[0] != "CMD-SHELL") {
				t.Errorf("service %s: healthcheck test %v: want [\"CMD\", ...] or [\"CMD-SHELL\", \"...\"]", name, hc["test"])
			} else {
				healthy[name] = true
			}
			for _, k := range []string{"interval", "timeout", "start_period"} {
				if s := asString(hc[k]); s != "" {
					if _, err := time.ParseDuration(s); err != nil {
						t.Errorf("service %s: healthcheck %s %q: %v", name, k, s, err)
					}
				}
			}
		}
		containerPorts(t, name, asList(svc["ports"]))
		for _, vol := range asList(svc["volumes"]) {
			parts := strings.Split(asString(vol), ":")
			if len(parts) < 2 || len(parts) > 3 || (len(parts) == 3 && parts[2] != "ro" && parts[2] != "rw") {
				t.Errorf("service %s: volume %q is not source:target[:ro|rw]", name, vol)
				continue
			}
			src := parts[0]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("service %s: bind mount source %s: %v", name, src, err)
				}
			} else if _, ok := declaredVolumes[src]; !ok {
				t.Errorf("service %s: named volume %s is not declared under volumes:", name, src)
			}
		}
		if b := asMap(svc["build"]); b != nil {
			ctx := filepath.Clean(asString(b["context"]))
			df := asString(b["dockerfile"])
			if df == "" {
				df = "Dockerfile"
			}
			if _, err := os.Stat(filepath.Join(ctx, df)); err != nil {
				t.Errorf("service %s: build context %s, dockerfile %s: %v", name, ctx, df, err)
			}
		}
	}
	for name, v := range services {
		deps := asMap(asMap(v)["depends_on"])
		for _, dep := range asList(asMap(v)["depends_on"]) {
			deps[asString(dep)] = nil
		}
		for dep, cond := range deps {
			if services[dep] == nil || dep == name {
				t.Errorf("service %s depends on %q: no such service", name, dep)
			}
			c := asString(asMap(cond)["condition"])
			switch c {
			case "", "service_started", "service_completed_successfully":
			case "service_healthy":
				if !healthy[dep] {
					t.Errorf("service %s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
				}
			default:
				t.Errorf("service %s: depends_on %s: unknown condition %q", name, dep, c)
			}
		}
	}

	// Kafka: apache/kafka in KRaft mode, reachable as kafka:9092 in the
	// compose network and from the host, topics created on first use.
	kafka := asMap(services["kafka"])
	if img := asString(kafka["image"]); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", img)
	}
	kenv := envMap(kafka["environment"])
	if !strings.Contains(kenv["KAFKA_PROCESS_ROLES"], "controller") || !strings.Contains(kenv["KAFKA_PROCESS_ROLES"], "broker") ||
		kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"] == "" || kenv["KAFKA_CONTROLLER_LISTENER_NAMES"] == "" {
		t.Errorf("kafka is not a single KRaft broker+controller: %v", kenv)
	}
	if kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] != "true" {
		t.Error("kafka: KAFKA_AUTO_CREATE_TOPICS_ENABLE must be true")
	}
	adv := strings.Split(kenv["KAFKA_ADVERTISED_LISTENERS"], ",")
	if !slices.Contains(adv, "PLAINTEXT://kafka:9092") || len(adv) < 2 {
		t.Errorf("kafka advertised listeners %q: want PLAINTEXT://kafka:9092 plus one for the host", adv)
	}
	listeners := kenv["KAFKA_LISTENERS"]
	for _, l := range append(adv, strings.Split(listeners, ",")...) {
		name, _, _ := strings.Cut(l, "://")
		if !strings.Contains(kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"], name+":") {
			t.Errorf("kafka listener %s has no security protocol mapping", name)
		}
	}
	// The host listener's container port must be the published one.
	for _, p := range containerPorts(t, "kafka", asList(kafka["ports"])) {
		if !strings.Contains(listeners, fmt.Sprintf(":%d", p)) {
			t.Errorf("kafka publishes container port %d, which no listener binds (%s)", p, listeners)
		}
	}

	// The servers are the versions the tests run against (realstack).
	if img := asString(kafka["image"]); imageTag(img) != realstack.KafkaVersion {
		t.Errorf("kafka image %q, want apache/kafka:%s (the version the tests run)", img, realstack.KafkaVersion)
	}
	es := asMap(services["elasticsearch"])
	if img := asString(es["image"]); !strings.Contains(img, "elasticsearch:") || imageTag(img) != realstack.ESVersion {
		t.Errorf("elasticsearch image %q, want Elasticsearch %s (the version the tests run)", img, realstack.ESVersion)
	}
	osearch := asMap(services["opensearch"])
	if img := asString(osearch["image"]); !strings.Contains(img, "opensearchproject/opensearch:") || imageTag(img) != realstack.OpenSearchVersion {
		t.Errorf("opensearch image %q, want OpenSearch %s (the version the tests run)", img, realstack.OpenSearchVersion)
	}
	if img := asString(asMap(services["opensearch-dashboards"])["image"]); imageTag(img) != realstack.OpenSearchVersion {
		t.Errorf("opensearch-dashboards image %q: want the same version as OpenSearch", img)
	}
	for _, name := range []string{"opensearch", "opensearch-dashboards"} {
		if p := asList(asMap(services[name])["profiles"]); len(p) != 1 || asString(p[0]) != "opensearch" {
			t.Errorf("%s: want profile opensearch (Elasticsearch is the default engine), got %v", name, p)
		}
	}
	eenv := envMap(es["environment"])
	if eenv["discovery.type"] != "single-node" || !strings.Contains(eenv["ES_JAVA_OPTS"], "-Xmx") {
		t.Errorf("elasticsearch: want discovery.type=single-node and a heap limit (-Xmx), got %v", eenv)
	}
	if img := asString(asMap(services["kibana"])["image"]); !strings.Contains(img, "kibana:") || imageTag(img) != imageTag(asString(es["image"])) {
		t.Errorf("kibana image %q: want Kibana of the same version as Elasticsearch", img)
	}

	etcd := asMap(services["etcd"])
	if img := asString(etcd["image"]); !regexp.MustCompile(`^quay\.io/coreos/etcd:v3\.[56]\.`).MatchString(img) {
		t.Errorf("etcd image %q, want quay.io/coreos/etcd v3.5 or v3.6", img)
	}
	flags := map[string]string{}
	for _, a := range asList(etcd["command"]) {
		k, v, _ := strings.Cut(asString(a), "=")
		flags[k] = v
	}
	for k, want := range map[string]string{
		"--listen-client-urls": "http://0.0.0.0:2379", "--advertise-client-urls": "http://etcd:2379",
		"--listen-peer-urls": "http://0.0.0.0:2380", "--initial-advertise-peer-urls": "http://etcd:2380",
		"--initial-cluster-state": "new",
	} {
		if flags[k] != want {
			t.Errorf("etcd %s=%q, want %q", k, flags[k], want)
		}
	}
	if name := flags["--name"]; flags["--initial-cluster"] != name+"=http://etcd:2380" {
		t.Errorf("etcd --initial-cluster=%q does not name --name=%s", flags["--initial-cluster"], name)
	}

	// logtransfer: built from this repository, configured by the mounted
	// logtransfer.compose.ini, which must be a valid config that names
	// the compose services.
	lt := asMap(services["logtransfer"])
	b := asMap(lt["build"])
	if filepath.Clean(asString(b["context"])) != ".." || asString(b["dockerfile"]) != "deploy/Dockerfile" {
		t.Errorf("logtransfer build %v: want context .. and dockerfile deploy/Dockerfile", b)
	}
	mounted := false
	for _, v := range asList(lt["volumes"]) {
		if strings.HasPrefix(asString(v), "./logtransfer.compose.ini:/etc/logpipe/logtransfer.ini") {
			mounted = true
		}
	}
	cmdArgs := asList(lt["command"])
	if !mounted || len(cmdArgs) != 2 || cmdArgs[0] != "-config" || cmdArgs[1] != "/etc/logpipe/logtransfer.ini" {
		t.Errorf("logtransfer must mount ./logtransfer.compose.ini at /etc/logpipe/logtransfer.ini and run -config with it (volumes %v, command %v)", lt["volumes"], cmdArgs)
	}
	cfg, err := config.LoadTransfer("logtransfer.compose.ini")
	if err != nil {
		t.Fatalf("logtransfer.compose.ini: %v", err)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"kafka:9092"}) || !slices.Equal(cfg.Discovery.Endpoints, []string{"etcd:2379"}) ||
		!slices.Equal(cfg.ES.URLs, []string{"http://elasticsearch:9200"}) || !cfg.Discovery.Enabled || !cfg.ES.ManageTemplates {
		t.Errorf("logtransfer.compose.ini: brokers %v, etcd %v, es %v, discover_topics %v, manage_templates %v; want kafka:9092, etcd:2379, http://elasticsearch:9200, true, true",
			cfg.Kafka.Brokers, cfg.Discovery.Endpoints, cfg.ES.URLs, cfg.Discovery.Enabled, cfg.ES.ManageTemplates)
	}
	_, httpPort, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		t.Fatalf("logtransfer.compose.ini [http] addr %q: %v", cfg.HTTP.Addr, err)
	}
	if host, _, _ := net.SplitHostPort(cfg.HTTP.Addr); host != "0.0.0.0" && host != "" {
		t.Errorf("logtransfer.compose.ini [http] addr %q: must listen on all interfaces to be published", cfg.HTTP.Addr)
	}
	port, _ := strconv.Atoi(httpPort)
	if !slices.Contains(containerPorts(t, "logtransfer", asList(lt["ports"])), port) {
		t.Errorf("logtransfer: [http] port %d is not published", port)
	}
	if hc := fmt.Sprint(asMap(lt["healthcheck"])["test"]); !strings.Contains(hc, fmt.Sprintf(":%d/", port)) {
		t.Errorf("logtransfer healthcheck %s does not query port %d", hc, port)
	}
}

func imageTag(image string) string { return image[strings.LastIndex(image, ":")+1:] }

// TestComposeConfig validates the file with docker-compose itself (schema,
// interpolation, depends_on), which needs no Docker engine for `config`.
func TestComposeConfig(t *testing.T) {
	dc := tool(t, "docker-compose")
	out, err := run("", []string{"COMPOSE_PROJECT_NAME=logpipe"}, dc, "-f", "docker-compose.yml", "config", "-q")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("docker-compose config -q: %v\n%s", err, out)
	}
}

// TestDockerfile checks deploy/Dockerfile against the repository: the Go
// version matches go.mod, every COPY source exists and is not excluded by
// Dockerfile.dockerignore, and ./cmd/logtransfer needs nothing outside
// the copied directories.
func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	df := string(readFile(t, "Dockerfile"))
	gomod := string(readFile(t, filepath.Join(root, "go.mod")))
	goVer := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	argVer := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(df)
	if goVer == nil || argVer == nil || !strings.HasPrefix(argVer[1], goVer[1]) {
		t.Errorf("Dockerfile GO_VERSION %v does not match go.mod's go %v", argVer, goVer)
	}
	if !strings.Contains(df, "FROM golang:${GO_VERSION}") || !strings.Contains(df, " AS build") {
		t.Error("Dockerfile: want a golang:${GO_VERSION} build stage")
	}
	for _, cmd := range []string{"logtransfer", "logagent"} {
		if !regexp.MustCompile(`go build [^\n]*\./cmd/` + cmd).MatchString(strings.ReplaceAll(df, "\\\n", " ")) {
			t.Errorf("Dockerfile does not build ./cmd/%s", cmd)
		}
		if !regexp.MustCompile(`(?m)^FROM \S+ AS `+cmd+`$`).MatchString(df) || !strings.Contains(df, "COPY --from=build /out/"+cmd+" /usr/local/bin/"+cmd) {
			t.Errorf("Dockerfile has no %s stage with its binary", cmd)
		}
	}
	if last := regexp.MustCompile(`(?m)^FROM \S+ AS (\S+)$`).FindAllStringSubmatch(df, -1); len(last) == 0 || last[len(last)-1][1] != "logtransfer" {
		t.Error("Dockerfile: the last stage (what compose builds) must be logtransfer")
	}
	ignore := strings.Fields(string(readFile(t, "Dockerfile.dockerignore")))
	var copied []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "COPY" || strings.HasPrefix(f[1], "--from") {
			continue
		}
		for _, src := range f[1 : len(f)-1] {
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("Dockerfile COPY %s: %v", src, err)
			}
			if !slices.Contains(ignore, "!"+src) {
				t.Errorf("Dockerfile COPY %s: not re-included by Dockerfile.dockerignore", src)
			}
			copied = append(copied, src)
		}
	}
	out, err := run(root, nil, goTool(), "list", "-deps", "-f", "{{if .Module}}{{if eq .Module.Path \"github.com/logpipe/logpipe\"}}{{.Dir}}{{end}}{{end}}", "./cmd/logtransfer", "./cmd/logagent")
	if err != nil {
		t.Fatalf("go list -deps ./cmd/logtransfer ./cmd/logagent: %v\n%s", err, out)
	}
	for _, dir := range strings.Fields(out) {
		rel, err := filepath.Rel(root, dir)
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if err != nil || !slices.Contains(copied, top) {
			t.Errorf("./cmd/logtransfer needs %s, which the Dockerfile does not copy (%v)", rel, copied)
		}
	}
}

// ---------------------------------------------------------------- Kibana

const kibanaScript = "../scripts/kibana-dataview.sh"

func TestKibanaScriptSyntax(t *testing.T) {
	if out, err := run("", nil, "bash", "-n", kibanaScript); err != nil {
		t.Fatalf("bash -n %s: %v\n%s", kibanaScript, err, out)
	}
	head := string(readFile(t, kibanaScript))
	if !strings.HasPrefix(head, "#!/usr/bin/env bash\n") || !strings.Contains(head, "\nset -euo pipefail\n") {
		t.Error("kibana-dataview.sh: want #!/usr/bin/env bash and set -euo pipefail")
	}
	if fi, err := os.Stat(kibanaScript); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("%s is not executable", kibanaScript)
	}
	sc := tool(t, "shellcheck")
	if out, err := run("", nil, sc, kibanaScript); err != nil {
		t.Fatalf("shellcheck %s: %v\n%s", kibanaScript, err, out)
	}
}

// fakeKibana speaks the two data view calls the script makes.
type fakeKibana struct {
	t        *testing.T
	mu       sync.Mutex
	views    map[string]string // id -> title
	posts    []map[string]any
	wantAuth string
	prefix   string // e.g. /s/team
}

// posted returns the request bodies POSTed so far.
func (k *fakeKibana) posted() []map[string]any {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.posts)
}

// lastPost is the last POSTed body's data_view and override.
func (k *fakeKibana) lastPost() (dataView map[string]any, override any) {
	p := k.posted()
	if len(p) == 0 {
		return nil, nil
	}
	return asMap(p[len(p)-1]["data_view"]), p[len(p)-1]["override"]
}

func (k *fakeKibana) view(id string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.views[id]
}

func (k *fakeKibana) set(f func()) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f()
}

func (k *fakeKibana) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if r.Header.Get("kbn-xsrf") == "" {
		http.Error(w, `{"message":"Request must contain a kbn-xsrf header."}`, http.StatusBadRequest)
		return
	}
	if r.Header.Get("Authorization") != k.wantAuth {
		http.Error(w, `{"statusCode":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, k.prefix+"/api/data_views/data_view")
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/"):
		id := strings.TrimPrefix(path, "/")
		title, ok := k.views[id]
		if !ok {
			http.Error(w, `{"statusCode":404,"error":"Not Found"}`, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"data_view":{"id":%q,"title":%q}}`, id, title)
	case r.Method == http.MethodPost && path == "":
		body, _ := io.ReadAll(r.Body)
		var req map[string]any
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, `{"message":"bad json"}`, http.StatusBadRequest)
			k.t.Errorf("script sent invalid JSON: %v: %s", err, body)
			return
		}
		k.posts = append(k.posts, req)
		dv := asMap(req["data_view"])
		id, title := asString(dv["id"]), asString(dv["title"])
		override, _ := req["override"].(bool)
		for oid, otitle := range k.views {
			if otitle == title {
				if !override {
					http.Error(w, `{"statusCode":400,"error":"Bad Request","message":"Duplicate data view: `+title+`"}`, http.StatusBadRequest)
					return
				}
				delete(k.views, oid)
			}
		}
		k.views[id] = title
		fmt.Fprintf(w, `{"data_view":{"id":%q,"title":%q}}`, id, title)
	default:
		http.Error(w, "unexpected", http.StatusMethodNotAllowed)
	}
}

func TestKibanaScript(t *testing.T) {
	tool(t, "curl")
	k := &fakeKibana{t: t, views: map[string]string{}, prefix: "/s/team",
		wantAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte(`ops:pa"ss\word`))}
	srv := httptest.NewServer(k)
	defer srv.Close()
	env := []string{"KIBANA_URL=" + srv.URL + "/", "KIBANA_SPACE=team", "KIBANA_USERNAME=ops", `KIBANA_PASSWORD=pa"ss\word`, "KIBANA_API_KEY="}
	script := func(env []string, args ...string) (string, error) {
		// The fake Kibana is local: keep any proxy settings out of the way.
		env = append([]string{"no_proxy=*", "NO_PROXY=*"}, env...)
		return run("", env, "bash", append([]string{kibanaScript}, args...)...)
	}

	out, err := script(env)
	if err != nil || !strings.Contains(out, "created") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	posts := k.posted()
	if len(posts) != 1 {
		t.Fatalf("%d POSTs, want 1", len(posts))
	}
	dv := asMap(posts[0]["data_view"])
	if dv["title"] != "*_log-*" || dv["timeFieldName"] != "@timestamp" || posts[0]["override"] != false || asString(dv["id"]) == "" {
		t.Errorf("POST body %v: want title *_log-*, timeFieldName @timestamp, override false, an id", posts[0])
	}
	if out, err := script(env); err != nil || !strings.Contains(out, "already exists") || len(k.posted()) != 1 {
		t.Errorf("second run is not idempotent (%d POSTs): %v\n%s", len(k.posted()), err, out)
	}
	out, err = script(env, "web_log")
	if dv, _ := k.lastPost(); err != nil || dv["title"] != "web_log-*" {
		t.Errorf("topic run: %v\n%s", err, out)
	}
	out, err = script(env, "-f", "web_log")
	if _, override := k.lastPost(); err != nil || !strings.Contains(out, "replaced") || override != true {
		t.Errorf("-f run: %v\n%s", err, out)
	}
	// A data view made by hand for the same pattern (another id) is kept.
	k.set(func() { k.views["by-hand"] = "app_log-*" })
	if out, err := script(env, "-p", "app_log-*"); err != nil || !strings.Contains(out, "already exists") || k.view("by-hand") != "app_log-*" {
		t.Errorf("pattern made by hand: %v\n%s", err, out)
	}
	// API key instead of a password; failures exit non-zero.
	k.set(func() { k.wantAuth = "ApiKey abc==" })
	apiEnv := []string{"KIBANA_URL=" + srv.URL, "KIBANA_SPACE=team", "KIBANA_API_KEY=abc==", "KIBANA_USERNAME="}
	if out, err := script(apiEnv, "api_log"); err != nil || !strings.Contains(out, "created") {
		t.Errorf("API key run: %v\n%s", err, out)
	}
	for name, c := range map[string]struct {
		env  []string
		args []string
	}{
		"wrong credentials": {env, []string{"x_log"}},
		"bad topic":         {apiEnv, []string{"bad topic"}},
		"topic and -p":      {apiEnv, []string{"-p", "a-*", "b"}},
		"unreachable":       {[]string{"KIBANA_URL=http://127.0.0.1:1"}, nil},
	} {
		if out, err := script(c.env, c.args...); err == nil {
			t.Errorf("%s: exit 0\n%s", name, out)
		}
	}
}
