// Package agent assembles logagent: registry, Kafka producer, tail
// collector, etcd config watcher and HTTP endpoints, started in dependency
// order and stopped in reverse, so that at exit reading stops first, the
// producer then flushes what is in flight, and the registry is saved last.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/agent/collector"
	"github.com/logpipe/logpipe/internal/agent/producer"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/agent/tailer"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/buildinfo"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/etcdclient"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
	"github.com/logpipe/logpipe/internal/platform/httpserver"
	"github.com/logpipe/logpipe/internal/platform/inventory"
	"github.com/logpipe/logpipe/internal/platform/keyring"
	"github.com/logpipe/logpipe/internal/platform/lifecycle"
	"github.com/logpipe/logpipe/internal/platform/memtune"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// Options are settings that come from flags rather than the ini file.
type Options struct {
	// Version is reported in logs and the inventory.
	Version string
	// IdleGCPercent is the GC percentage once nothing has been sent for a
	// while (memtune); 0 leaves the GC setting alone (the operator set
	// GOGC). Idle memory is returned to the OS either way.
	IdleGCPercent int
}

// Agent is a configured logagent.
type Agent struct {
	cfg  *config.AgentConfig
	opts Options
	mem  *memtune.Governor
	log  *logrus.Entry
	prom *prometheus.Registry

	host, ip string
	id       string // agent.id (loadAgentID)
	started  time.Time
	guard    *pathguard.Guard
	inv      *inventory.Publisher
	key      string

	reg   *registry.Registry
	prod  *producer.Producer
	coll  *collector.Collector
	cli   *clientv3.Client
	watch *confwatch.Watcher
	keys  *keyring.Holder // nil: records are not signed
	http  *httpserver.Server
	// metrics runs host metrics as /logagent/<ip>/metrics_config says.
	metrics *hostMetrics

	reloads    *prometheus.CounterVec
	lastOK     prometheus.Gauge
	lastOKTime prometheus.Gauge
	revision   prometheus.Gauge
	mu         sync.Mutex
	seenRev    int64 // mod revision of the last config handled (-1: none, 0: absent)
	appliedRev int64 // mod revision of the config in force
	lastErr    string
}

// New validates the environment (data dir lock, HTTP port) and builds the
// components without starting them.
func New(cfg *config.AgentConfig, opts Options, log *logrus.Entry) (*Agent, error) {
	a := &Agent{cfg: cfg, opts: opts, log: log, prom: prometheus.NewRegistry(), seenRev: -1, started: time.Now().UTC()}
	guard, err := pathguard.New(cfg.Agent.AllowedPaths)
	if err != nil {
		return nil, fmt.Errorf("[agent] allowed_paths: %w", err)
	}
	guard.HardLinks = cfg.Agent.AllowHardLinks
	a.guard = guard
	a.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Gauge("logagent", opts.Version))

	a.host = cfg.Agent.Hostname
	if a.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("getting hostname: %w", err)
		}
		a.host = h
	}
	a.ip = cfg.Agent.IP
	if a.ip == "" {
		ip, err := DetectIP(cfg.Etcd.Endpoints)
		if err != nil {
			return nil, err
		}
		a.ip = ip
	}
	a.key = cfg.Etcd.CollectKeyFor(a.ip)

	reg, err := registry.Open(cfg.Agent.DataDir, log, a.prom)
	if err != nil {
		return nil, err
	}
	a.reg = reg
	// After the registry: it holds the data directory's lock.
	if a.id, err = loadAgentID(cfg.Agent.DataDir); err != nil {
		reg.Close()
		return nil, err
	}
	cli, err := etcdclient.New(cfg.Etcd.Endpoints, cfg.Etcd.Timeout, cfg.Etcd.Security)
	if err != nil {
		reg.Close()
		return nil, fmt.Errorf("creating etcd client: %w", err)
	}
	a.cli = cli
	var signer func() *record.SigningKey
	if cfg.Agent.Sign {
		a.keys = keyring.NewHolder(cli, keyring.HolderOptions{
			Key: cfg.Etcd.KeysKeyFor(a.ip), IP: a.ip, Host: a.host,
			CachePath: filepath.Join(cfg.Agent.DataDir, "signing_key.json"), Timeout: cfg.Etcd.Timeout,
		}, log, a.prom)
		signer = a.keys.Key
	}
	a.prod = producer.New(producer.Config{
		Kafka:           cfg.Kafka,
		MaxRecordBytes:  cfg.Agent.MaxRecordBytes(),
		ShutdownTimeout: cfg.Agent.ShutdownTimeout,
		Signer:          signer,
	}, log, a.prom)
	a.coll = collector.New(collector.Config{
		Host: a.host, IP: a.ip, AgentID: a.id, AgentVersion: opts.Version,
		MaxLineBytes: cfg.Agent.MaxLineBytes,
		PollInterval: cfg.Agent.PollInterval,
		ScanInterval: cfg.Agent.ScanInterval,
		RotateWait:   cfg.Agent.RotateWait,
		MaxFiles:     cfg.Agent.MaxFiles,
		Guard:        guard,
	}, reg, a.prod, log, a.prom)

	a.watch = confwatch.New(cli, a.key, false, cfg.Etcd.Timeout, log, a.prom, "logagent")
	a.metrics = newHostMetrics(a, cfg.Etcd.MetricsKeyFor(a.ip))
	a.mem = &memtune.Governor{Activity: a.prod.Sent, IdleGCPercent: opts.IdleGCPercent, IdleAfter: 10 * time.Second, Check: 2 * time.Second,
		Scheduled: a.metrics.running, ScheduledGCPercent: 50, // see scripts/bench/RESULTS.md, Host metrics
		Log: log.WithField("component", "memtune")}
	a.inv = inventory.New(cli, inventory.Options{Key: fmt.Sprintf(cfg.Etcd.InventoryKey, a.ip), TTL: cfg.Etcd.InventoryTTL,
		RefreshEvery: cfg.Etcd.InventoryRefresh, Progress: a.reportProgress}, a.report, log)
	a.prom.MustRegister(newFileCollector(a))

	a.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logagent_config_reloads_total", Help: "Collect configs received from etcd, by result."}, []string{"result"})
	a.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_config_last_reload_successful", Help: "1 if the last collect config received was valid and applied."})
	a.lastOKTime = prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_config_last_reload_success_timestamp_seconds", Help: "When a collect config was last applied."})
	a.revision = prometheus.NewGauge(prometheus.GaugeOpts{Name: "logagent_config_revision", Help: "etcd mod revision of the applied collect config (0: deleted or none)."})
	a.prom.MustRegister(a.reloads, a.lastOK, a.lastOKTime, a.revision)
	a.reloads.WithLabelValues("success")
	a.reloads.WithLabelValues("failure")

	if cfg.HTTP.Addr != "" {
		a.http = httpserver.New(cfg.HTTP.Addr, cfg.HTTP.Pprof, a.prom, []httpserver.Check{
			{Name: "etcd", Fn: func() error { return boolErr(a.watch.Up(), "etcd watch not established") }},
			{Name: "kafka", Fn: func() error { return boolErr(a.prod.Ready(), "no recent successful Kafka send") }},
			{Name: "signing key", Fn: a.keyErr},
		}, log)
		a.http.Handle("/status", http.HandlerFunc(a.serveStatus))
		if err := a.http.Listen(); err != nil {
			cli.Close()
			reg.Close()
			return nil, err
		}
	}
	log.WithFields(logrus.Fields{"host": a.host, "ip": a.ip, "agent_id": a.id, "key": a.key, "data_dir": cfg.Agent.DataDir, "version": opts.Version}).Info("logagent configured")
	return a, nil
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

// IP is the address this agent's config key is named after.
func (a *Agent) IP() string { return a.ip }

// Key is the etcd key of this agent's collect config.
func (a *Agent) Key() string { return a.key }

// Registry exposes the offset registry (for status and tests).
func (a *Agent) Registry() *registry.Registry { return a.reg }

// Prometheus is the agent's metrics registry.
func (a *Agent) Prometheus() *prometheus.Registry { return a.prom }

// HTTPAddr is where the HTTP endpoints listen ("" if disabled).
func (a *Agent) HTTPAddr() string {
	if a.http == nil {
		return ""
	}
	return a.http.Addr()
}

// Run runs the agent until ctx ends, then shuts down in order.
func (a *Agent) Run(ctx context.Context) error {
	defer a.reg.Close()
	defer a.cli.Close()

	// Stopped in reverse: reading stops first, then the producer flushes
	// what is in flight, then the registry is saved.
	r := lifecycle.New()
	store := r.Stage("store")
	store.Go("registry", func(c context.Context) error { return a.reg.Run(c, time.Second) })
	if a.http != nil {
		store.Go("http", a.http.Run)
	}
	r.Stage("send").Go("producer", a.prod.Run)
	if cached, ok := a.loadCache(); ok {
		a.log.WithField("entries", len(cached)).Info("collecting with the cached collect config until etcd answers")
		a.coll.Apply(cached)
	}
	read := r.Stage("read")
	if a.keys != nil {
		read.Go("signing key", a.keys.Run)
	}
	read.Go("collector", a.collect)
	read.Go("host metrics", func(ctx context.Context) error { return a.signed(ctx, "sending host metrics", a.metrics.Run) })
	read.Go("etcd watch", a.watch.Run)
	read.Go("config", a.configLoop)
	read.Go("inventory", a.inv.Run)
	read.Go("memtune", a.mem.Run)

	err := r.Wait(ctx, func(s *lifecycle.Stage) {
		switch s.Name {
		case "read":
			a.log.Info("shutting down: stopping readers")
		case "send":
			a.log.Info("flushing events in flight")
		}
	})
	if err != nil {
		a.log.WithError(err).Error("component failed; shut down")
	}
	if serr := a.reg.Save(); serr != nil && err == nil {
		err = fmt.Errorf("saving registry: %w", serr)
	}
	a.log.Info("stopped")
	return err
}

// collect runs the collector once records can be signed: nothing is read
// before (the files keep the lines).
func (a *Agent) collect(ctx context.Context) error {
	return a.signed(ctx, "reading files", a.coll.Run)
}

// signed runs run once records can be signed (at once if they are not).
func (a *Agent) signed(ctx context.Context, what string, run func(context.Context) error) error {
	if a.keys != nil && a.keys.Key() == nil {
		a.log.Info("waiting for this agent's signing key before " + what)
		select {
		case <-a.keys.Ready():
		case <-ctx.Done():
			return nil
		}
	}
	return run(ctx)
}

// keyErr is the signing key's readiness (nil when records are not signed).
func (a *Agent) keyErr() error {
	if a.keys == nil {
		return nil
	}
	return a.keys.Err()
}

// configLoop validates every new collect config and applies the good ones.
func (a *Agent) configLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-a.watch.Changed():
			a.handleSnapshot(a.watch.Latest())
		}
	}
}

func (a *Agent) handleSnapshot(s *confwatch.Snapshot) {
	if s == nil {
		return
	}
	kv, exists := s.KVs[a.key]
	a.mu.Lock()
	dup := a.seenRev == kv.ModRevision // 0 when absent
	a.seenRev = kv.ModRevision
	a.mu.Unlock()
	if dup {
		return
	}
	log := a.log.WithField("key", a.key)
	if !exists {
		log.Info("collect config key is absent: no files are collected")
		a.coll.Apply(nil)
		a.removeCache()
		a.applied(0)
		return
	}
	entries, err := a.parse(kv.Value)
	if err != nil {
		a.reloads.WithLabelValues("failure").Inc()
		a.lastOK.Set(0)
		a.mu.Lock()
		a.lastErr = err.Error()
		a.mu.Unlock()
		log.WithField("revision", kv.ModRevision).WithError(err).Error("invalid collect config rejected; the running config stays in force")
		return
	}
	a.coll.Apply(entries)
	a.saveCache(kv.Value, kv.ModRevision)
	a.applied(kv.ModRevision)
	log.WithFields(logrus.Fields{"revision": kv.ModRevision, "entries": len(entries)}).Info("collect config accepted")
}

func (a *Agent) applied(rev int64) {
	a.reloads.WithLabelValues("success").Inc()
	a.lastOK.Set(1)
	a.lastOKTime.SetToCurrentTime()
	a.revision.Set(float64(rev))
	a.mu.Lock()
	a.appliedRev, a.lastErr = rev, ""
	a.mu.Unlock()
}

// parse validates a collect config whole: the schema, then the allowlist
// (an entry that could name a file outside [agent] allowed_paths rejects
// the config, like any other error).
func (a *Agent) parse(data []byte) ([]collectconf.Entry, error) {
	entries, err := collectconf.Parse(data)
	if err != nil {
		return nil, err
	}
	var errs []error
	plain := 0
	for i, e := range entries {
		if err := a.guard.CheckEntry(e.Path); err != nil {
			errs = append(errs, fmt.Errorf("entry %d (path %q, topic %q): %w", i, e.Path, e.Topic, err))
		}
		if !e.IsGlob() {
			plain++
		}
	}
	if plain > a.cfg.Agent.MaxFiles {
		errs = append(errs, fmt.Errorf("%d file entries, more than [agent] max_files (%d)", plain, a.cfg.Agent.MaxFiles))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// The cache keeps the last good config in data_dir so an agent restarted
// while etcd is down collects at once.
type cacheFile struct {
	Key      string          `json:"key"`
	Revision int64           `json:"revision"`
	Value    json.RawMessage `json:"value"`
}

func (a *Agent) cachePath() string { return filepath.Join(a.cfg.Agent.DataDir, "collect_config.json") }

func (a *Agent) loadCache() ([]collectconf.Entry, bool) {
	data, err := os.ReadFile(a.cachePath())
	if err != nil {
		return nil, false
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil || c.Key != a.key {
		a.log.WithError(err).Warn("ignoring unreadable or foreign collect config cache")
		return nil, false
	}
	entries, err := a.parse(c.Value)
	if err != nil {
		a.log.WithError(err).Warn("ignoring invalid collect config cache")
		return nil, false
	}
	return entries, true
}

func (a *Agent) saveCache(value []byte, rev int64) {
	data, err := json.Marshal(cacheFile{Key: a.key, Revision: rev, Value: json.RawMessage(value)})
	if err == nil {
		err = fsutil.WriteAtomic(a.cachePath(), data, 0o600)
	}
	if err != nil {
		a.log.WithError(err).Warn("saving collect config cache")
	}
}

func (a *Agent) removeCache() {
	if err := os.Remove(a.cachePath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.WithError(err).Warn("removing collect config cache")
	}
}

// Status is the agent's self-description, served at /status.
type Status struct {
	Host        string                 `json:"host"`
	IP          string                 `json:"ip"`
	AgentID     string                 `json:"agent_id"`
	Key         string                 `json:"key"`
	Revision    int64                  `json:"config_revision"`
	ConfigError string                 `json:"config_error,omitempty"`
	Tasks       []collector.TaskStatus `json:"tasks"`
	// Topics are the topics sent to, with the ones Kafka refuses.
	Topics []producer.TopicStatus `json:"topics"`
	// Metrics is the host metrics' state (nil: none configured).
	Metrics *inventory.Metrics `json:"metrics,omitempty"`
}

// Status reports what the agent is doing.
func (a *Agent) Status() Status {
	a.mu.Lock()
	rev, lastErr := a.appliedRev, a.lastErr
	a.mu.Unlock()
	return Status{Host: a.host, IP: a.ip, AgentID: a.id, Key: a.key, Revision: rev, ConfigError: lastErr, Tasks: a.tasks(), Topics: a.prod.Topics(),
		Metrics: a.metrics.status()}
}

// StatePaused is a file's state while Kafka refuses its topic.
const StatePaused = "paused"

// tasks is the collector's view with the files of refused topics shown as
// paused, and why.
func (a *Agent) tasks() []collector.TaskStatus {
	blocked := map[string]string{}
	for _, t := range a.prod.Topics() {
		if t.State == producer.TopicBlocked {
			blocked[t.Topic] = "topic " + t.Topic + " refused by Kafka: " + t.Reason
		}
	}
	ts := a.coll.Status()
	for i := range ts {
		reason, ok := blocked[ts[i].Entry.Topic]
		if !ok {
			continue
		}
		for j := range ts[i].Files {
			if f := &ts[i].Files[j]; f.State == tailer.StateRunning {
				f.State, f.Reason = StatePaused, reason
			}
		}
	}
	return ts
}

func (a *Agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(a.Status())
}

// DetectIP finds the address this host is known by without sending
// anything: the local address of the route to the first etcd endpoint
// (a UDP "connect" only consults the routing table), else the first
// non-loopback interface address.
func DetectIP(endpoints []string) (string, error) {
	if len(endpoints) > 0 {
		ep := endpoints[0]
		if i := strings.Index(ep, "://"); i >= 0 {
			ep = ep[i+3:]
		}
		if c, err := net.Dial("udp", ep); err == nil {
			ip := c.LocalAddr().(*net.UDPAddr).IP
			c.Close()
			if !ip.IsUnspecified() {
				return ip.String(), nil
			}
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("listing interface addresses: %w", err)
	}
	var v6 string
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.To4() != nil {
			return n.IP.String(), nil
		}
		if v6 == "" {
			v6 = n.IP.String()
		}
	}
	if v6 != "" {
		return v6, nil
	}
	return "", errors.New("cannot determine this host's IP; set [agent] ip or -ip")
}
