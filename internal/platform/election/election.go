// Package election elects one leader among several instances of a daemon
// for the jobs only one may run (the transfer's retention and template
// installation), with etcd's concurrency election on a lease.
//
// The leader runs its jobs with a context that ends when its session (its
// lease) is lost; another instance takes over once the lease has expired,
// within its TTL. A leader cut off from etcd cannot tell whether a new one
// was elected meanwhile, so before each act that must not happen twice at
// once it calls Confirm: a linearizable read that its lease is alive, with
// at least half its TTL left. A partitioned leader cannot confirm, so it
// stops acting before its lease can expire and a successor can start.
package election

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// ErrNotLeader is Confirm's answer when this instance does not lead.
var ErrNotLeader = errors.New("not the leader")

// Options name the election and this candidate.
type Options struct {
	// Key is the election's prefix in etcd (one key per candidate under it).
	Key string
	// ID names this instance to the others (its host and port).
	ID string
	// TTL is the lease's: how long a dead leader keeps the lead (default
	// 10 s, at least 2 s).
	TTL time.Duration
	// Timeout bounds each etcd request (default 5 s).
	Timeout time.Duration
	// Metric is the prefix of the metrics ("logtransfer": logtransfer_leader).
	Metric string
}

// Status is what /status shows of the election.
type Status struct {
	ID      string    `json:"id"`
	Leading bool      `json:"leading"`
	Leader  string    `json:"leader,omitempty"` // as observed in this session ("" unknown: no session, or none elected)
	Since   time.Time `json:"since,omitzero"`   // when this instance took the lead
	Error   string    `json:"error,omitempty"`  // the last failure to campaign
}

// Elector campaigns for the lead and runs the leader's jobs while it has
// it.
type Elector struct {
	cli *clientv3.Client
	opt Options
	log *logrus.Entry
	thr *logging.Throttle

	leading prometheus.Gauge
	won     prometheus.Counter

	mu       sync.Mutex
	session  *concurrency.Session // while leading
	election *concurrency.Election
	status   Status
	// known closes once a leader is known (this instance or another).
	known     chan struct{}
	knownOnce sync.Once
}

// New returns an Elector; reg may be nil.
func New(cli *clientv3.Client, opt Options, log *logrus.Entry, reg prometheus.Registerer) *Elector {
	if opt.TTL <= 0 {
		opt.TTL = 10 * time.Second
	}
	opt.TTL = max(opt.TTL, 2*time.Second)
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	e := &Elector{cli: cli, opt: opt, log: log.WithFields(logrus.Fields{"component": "election", "id": opt.ID}), thr: logging.NewThrottle(time.Minute),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{Name: opt.Metric + "_leader", Help: "1 while this instance leads (runs retention and installs index templates)."}),
		won:     prometheus.NewCounter(prometheus.CounterOpts{Name: opt.Metric + "_leader_elections_won_total", Help: "Times this instance took the lead."}),
		status:  Status{ID: opt.ID},
		known:   make(chan struct{}),
	}
	if reg != nil {
		reg.MustRegister(e.leading, e.won)
	}
	return e
}

// Status returns the election as this instance sees it.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Run campaigns until ctx ends; each time it wins it runs lead with a
// context that ends when the lead is lost (or ctx ends), then campaigns
// again. etcd unreachable is retried with backoff.
func (e *Elector) Run(ctx context.Context, lead func(context.Context) error) error {
	bo := backoff.Backoff{Min: time.Second, Max: e.opt.TTL}
	for ctx.Err() == nil {
		won, err := e.term(ctx, lead)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			e.mu.Lock()
			e.status.Error = err.Error()
			e.mu.Unlock()
			e.thr.Log("campaign", e.log.WithError(err), logrus.WarnLevel, "election: retrying")
		}
		if won {
			bo.Reset()
		}
		backoff.Sleep(ctx, bo.Next())
	}
	return nil
}

// term is one session: campaign, lead while the session lives, resign.
func (e *Elector) term(ctx context.Context, lead func(context.Context) error) (bool, error) {
	// The lease is granted under ctx (an unreachable etcd must not hold
	// up a stop); the session keeps it alive past ctx, so that a stopping
	// leader can still resign and revoke it, and a successor need not wait
	// for it to expire.
	gctx, gcancel := context.WithTimeout(ctx, e.opt.Timeout)
	grant, err := e.cli.Grant(gctx, int64((e.opt.TTL+time.Second-1)/time.Second))
	gcancel()
	if err != nil {
		return false, fmt.Errorf("granting a lease: %w", err)
	}
	s, err := concurrency.NewSession(e.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return false, fmt.Errorf("opening an etcd session: %w", err)
	}
	defer s.Close() // revokes the lease (bounded by the TTL)
	el := concurrency.NewElection(s, e.opt.Key)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.Done():
			cancel()
		case <-tctx.Done():
		}
	}()
	go e.observe(tctx, el)
	if err := el.Campaign(tctx, e.opt.ID); err != nil {
		e.mu.Lock()
		e.status.Leader = ""
		e.mu.Unlock()
		if ctx.Err() != nil {
			return false, nil
		}
		return false, fmt.Errorf("campaigning: %w", err)
	}
	e.mu.Lock()
	e.session, e.election = s, el
	e.status.Leading, e.status.Leader, e.status.Since, e.status.Error = true, e.opt.ID, time.Now(), ""
	e.mu.Unlock()
	e.knownOnce.Do(func() { close(e.known) })
	e.leading.Set(1)
	e.won.Inc()
	e.log.Info("took the lead")

	err = lead(tctx)

	e.mu.Lock()
	e.session, e.election = nil, nil
	e.status.Leading, e.status.Leader = false, ""
	e.mu.Unlock()
	e.leading.Set(0)
	select {
	case <-s.Done():
		e.log.Warn("lost the lead: the session's lease expired (etcd unreachable?)")
		return true, errors.New("the lead was lost: its lease expired")
	default:
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), e.opt.Timeout)
	defer rcancel()
	if rerr := el.Resign(rctx); rerr != nil {
		e.log.WithError(rerr).Debug("resigning (the lease is revoked anyway)")
	}
	e.log.Info("gave up the lead")
	if err != nil && ctx.Err() == nil {
		return true, fmt.Errorf("the leader's jobs stopped: %w", err)
	}
	return true, nil
}

// observe keeps the leader's name for Status.
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) == 0 {
			continue
		}
		e.mu.Lock()
		e.status.Leader = string(resp.Kvs[0].Value)
		e.mu.Unlock()
		e.knownOnce.Do(func() { close(e.known) })
	}
}

// Known waits until a leader is known (this instance or another), for at
// most d, so that a daemon just started does not take itself for a
// follower while the first election runs.
func (e *Elector) Known(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.known:
	case <-ctx.Done():
	case <-t.C:
	}
}

// Confirm reports (nil) that this instance leads now and will for at
// least half the lease's TTL: etcd, read linearizably, holds its
// candidate key on its lease, and the lease has that long left. Anything
// else (etcd unreachable included) is an error: the caller must not act.
func (e *Elector) Confirm(ctx context.Context) error {
	e.mu.Lock()
	s, el := e.session, e.election
	e.mu.Unlock()
	if s == nil {
		return ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(ctx, min(e.opt.Timeout, e.opt.TTL/2))
	defer cancel()
	resp, err := e.cli.Get(ctx, el.Key())
	if err != nil {
		return fmt.Errorf("confirming the lead with etcd: %w", err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease != int64(s.Lease()) || resp.Kvs[0].CreateRevision != el.Rev() {
		return ErrNotLeader
	}
	ttl, err := e.cli.TimeToLive(ctx, s.Lease())
	if err != nil {
		return fmt.Errorf("confirming the lead's lease with etcd: %w", err)
	}
	if left := time.Duration(ttl.TTL) * time.Second; left < e.opt.TTL/2 {
		return fmt.Errorf("the lead's lease has %s left of %s (its keep-alives are failing): %w", left, e.opt.TTL, ErrNotLeader)
	}
	return nil
}

// Candidate is one live instance in an election: its key holds its ID
// under its lease. Candidates are kept in campaign order, the first one
// leads (etcd's election is the oldest key under the prefix).
type Candidate struct {
	ID      string `json:"id"`
	Leading bool   `json:"leading"`
	// LeaseTTL is what is left of the candidate's lease (-1: unknown).
	LeaseTTL time.Duration `json:"lease_ttl"`
	// Revision is when it began to campaign (its key's create revision).
	Revision int64 `json:"revision"`
}

// Candidates lists the live candidates of the election at key, the leader
// first: what an operator reads to see who leads (logctl transfers). A
// candidate's lease is looked up for its TTL; one gone meanwhile is left
// out.
func Candidates(ctx context.Context, cli *clientv3.Client, key string) ([]Candidate, error) {
	prefix := key
	if prefix == "" || prefix[len(prefix)-1] != '/' {
		prefix += "/"
	}
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("reading the election at %s: %w", key, err)
	}
	var out []Candidate
	for _, kv := range resp.Kvs {
		c := Candidate{ID: string(kv.Value), Revision: kv.CreateRevision, LeaseTTL: -1}
		if kv.Lease != 0 {
			if ttl, err := cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease)); err == nil {
				if ttl.TTL < 0 {
					continue // expired since the Get
				}
				c.LeaseTTL = time.Duration(ttl.TTL) * time.Second
			}
		}
		out = append(out, c)
	}
	if len(out) > 0 {
		out[0].Leading = true
	}
	return out, nil
}
