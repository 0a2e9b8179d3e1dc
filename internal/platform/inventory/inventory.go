// Package inventory publishes what an agent is doing to etcd, under a
// lease, so operators (logctl agents, logctl status) see every live agent
// and a dead agent's entry disappears by itself when its lease expires.
// Reports are written when they change (and at least every RefreshEvery),
// never per line; the lease is kept alive in between.
package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// Report is one agent's entry, stored as JSON at /logagent/agents/<ip>.
type Report struct {
	Host    string `json:"host"`
	IP      string `json:"ip"`
	AgentID string `json:"agent_id,omitempty"`
	// AllowedPaths is the agent's [agent] allowed_paths: logctl checks a
	// collect config against it before writing one.
	AllowedPaths []string `json:"allowed_paths,omitempty"`
	// HTTPAddr is where the agent's /metrics and /status listen, as
	// another host reaches them (logctl top): an unspecified listen
	// address is given the agent's IP.
	HTTPAddr       string    `json:"http_addr,omitempty"`
	Version        string    `json:"version"`
	Started        time.Time `json:"started"`
	ConfigRevision int64     `json:"config_revision"`
	ConfigError    string    `json:"config_error,omitempty"`
	Tasks          []Task    `json:"tasks"`
	// Metrics is the host metrics' state (nil: none configured).
	Metrics *Metrics `json:"metrics,omitempty"`
	// Updated is when the report last changed.
	Updated time.Time `json:"updated"`
}

// Metrics is what an agent's host metrics are doing: the config in force
// (its etcd revision, interval and active outputs), the last config
// rejected, and the last collection and its problems.
type Metrics struct {
	Revision       int64     `json:"config_revision"`
	ConfigError    string    `json:"config_error,omitempty"`
	Interval       string    `json:"interval"`
	Outputs        []string  `json:"outputs"`
	LastCollection time.Time `json:"last_collection,omitzero"`
	CollectError   string    `json:"collect_error,omitempty"`
	InfluxError    string    `json:"influx_error,omitempty"`
	KafkaError     string    `json:"kafka_error,omitempty"`
}

// Task is one tailed file.
type Task struct {
	Path   string `json:"path"`
	Topic  string `json:"topic"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// AckedOffset is the offset up to which Kafka acknowledged every line.
	AckedOffset int64 `json:"acked_offset"`
	// BytesBehind is the file size minus AckedOffset.
	BytesBehind int64 `json:"bytes_behind"`
}

// Options configure a Publisher.
type Options struct {
	Key          string        // e.g. /logagent/agents/10.0.0.12
	TTL          time.Duration // lease TTL (default 10s)
	Interval     time.Duration // how often the report is rebuilt (default 3s)
	RefreshEvery time.Duration // rewrite even if unchanged (default 1m)
	// Progress, if set, fills the numbers that move with every line
	// (AckedOffset, BytesBehind) into a report about to be written. It is
	// not called on the other rounds: an agent's entry is rewritten when
	// its files, states or errors change, and its progress is at most
	// RefreshEvery old, so a busy fleet does not rewrite etcd every round
	// (nor stat every file every Interval).
	Progress func(*Report)
}

// Publisher keeps an agent's report in etcd.
type Publisher struct {
	cli    *clientv3.Client
	opt    Options
	report func() Report
	log    *logrus.Entry
	thr    *logging.Throttle
}

// New returns a publisher; report is called every Interval.
func New(cli *clientv3.Client, opt Options, report func() Report, log *logrus.Entry) *Publisher {
	if opt.TTL == 0 {
		opt.TTL = 10 * time.Second
	}
	if opt.Interval == 0 {
		opt.Interval = 3 * time.Second
	}
	if opt.RefreshEvery == 0 {
		opt.RefreshEvery = time.Minute
	}
	return &Publisher{cli: cli, opt: opt, report: report, log: log.WithFields(logrus.Fields{"component": "inventory", "key": opt.Key}), thr: logging.NewThrottle(30 * time.Second)}
}

// Run publishes until ctx ends, then revokes the lease so the entry goes
// away at once. While etcd is unreachable it retries with backoff.
func (p *Publisher) Run(ctx context.Context) error {
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		err := p.session(ctx)
		if ctx.Err() != nil {
			break
		}
		p.thr.Log("session", p.log.WithError(err), logrus.WarnLevel, "inventory lease lost; re-registering")
		backoff.Sleep(ctx, bo.Next())
	}
	return nil
}

// session holds one lease until it is lost or ctx ends.
func (p *Publisher) session(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	lease, err := p.cli.Grant(gctx, int64(p.opt.TTL/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("granting lease: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = p.cli.Revoke(rctx, lease.ID) // the entry goes with it
	}()
	kctx, stopKA := context.WithCancel(ctx)
	defer stopKA()
	ka, err := p.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("keeping lease alive: %w", err)
	}
	var (
		last    Report // as last written, without progress
		wrote   bool
		updated time.Time
		written time.Time
	)
	tick := time.NewTicker(p.opt.Interval)
	defer tick.Stop()
	for {
		r := p.report()
		changed := !wrote || !sameShape(r, last)
		if changed {
			updated = time.Now().UTC()
		}
		if changed || time.Since(written) >= p.opt.RefreshEvery {
			shape := r
			shape.Tasks = slices.Clone(r.Tasks) // Progress fills r's in place
			r.Updated = updated
			if p.opt.Progress != nil {
				p.opt.Progress(&r)
			}
			body, _ := json.Marshal(r) // plain types always marshal
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := p.cli.Put(pctx, p.opt.Key, string(body), clientv3.WithLease(lease.ID))
			cancel()
			if err != nil {
				return fmt.Errorf("writing inventory: %w", err)
			}
			last, wrote, written = shape, true, time.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-ka:
			if !ok {
				return fmt.Errorf("lease %x expired or was revoked", lease.ID)
			}
			// Drain the keepalive responses; wait for the next tick.
			continue
		case <-tick.C:
		}
	}
}

// sameShape reports whether a report (without progress, when a Progress
// function adds it) equals the last one written. It compares fields, not
// encodings: an idle agent with a thousand files would otherwise encode
// its whole report every Interval to find it unchanged.
func sameShape(r, last Report) bool {
	return r.Host == last.Host && r.IP == last.IP && r.Version == last.Version && r.Started.Equal(last.Started) &&
		r.ConfigRevision == last.ConfigRevision && r.ConfigError == last.ConfigError && slices.Equal(r.Tasks, last.Tasks) &&
		sameMetrics(r.Metrics, last.Metrics)
}

// sameMetrics compares host metrics states but for the last collection's
// time, which moves every interval (it goes out with the refreshes).
func sameMetrics(a, b *Metrics) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Revision == b.Revision && a.ConfigError == b.ConfigError && a.Interval == b.Interval && slices.Equal(a.Outputs, b.Outputs) &&
		a.CollectError == b.CollectError && a.InfluxError == b.InfluxError && a.KafkaError == b.KafkaError
}

// List reads every agent's report under prefix (e.g. /logagent/agents/).
func List(ctx context.Context, cli *clientv3.Client, prefix string) ([]Report, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", prefix, err)
	}
	out := make([]Report, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var r Report
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", kv.Key, err)
		}
		out = append(out, r)
	}
	return out, nil
}
