// Package indexlife looks after the indices the transfer creates: it
// deletes a topic's indices once they are older than the topic's
// retention. Only indices the transfer owns are candidates: named by its
// own pattern for a topic it serves (index.Name.Time reads the name back)
// and carrying the marker its template puts in every index's mapping
// (_meta.managed_by and _meta.topic, see eswriter.TemplateBody).
// Anything else (.kibana, another tool's index, an index created before
// the marker, an alias) is listed as kept, with the reason, and never
// touched. Before each delete the caller's Confirm says the transfer may
// still act (the leader's lease is alive, see internal/platform/election).
package indexlife

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

// Config is what retention needs.
type Config struct {
	Client *elastic.Client
	Index  *index.Name
	// Topics are the topics the transfer serves now.
	Topics func() []string
	// Settings gives a topic's retention (RetentionDays; 0 keeps all).
	Settings func(topic string) config.IndexSettings
	// Every is the time between sweeps (default 1h); the first is at
	// start.
	Every time.Duration
	// Confirm, if set, is asked before each delete; an error stops the
	// sweep (another transfer may be acting now).
	Confirm func(ctx context.Context) error
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Index is one index the transfer found for a topic, and what retention
// makes of it.
type Index struct {
	Name   string    `json:"index"`
	Topic  string    `json:"topic"`
	Health string    `json:"health,omitempty"`
	Status string    `json:"status,omitempty"` // open or close
	Docs   int64     `json:"docs"`
	Bytes  int64     `json:"bytes"`
	From   time.Time `json:"from,omitzero"` // the first instant it holds, read from its name
	// Expires is when every instant it holds is older than the topic's
	// retention (zero: kept for ever, or not the transfer's).
	Expires time.Time `json:"expires,omitzero"`
	Expired bool      `json:"expired"`
	// Kept says why an index is never deleted ("" for the transfer's own
	// indices under a retention).
	Kept string `json:"kept,omitempty"`
}

// Status is the last sweep, for /status.
type Status struct {
	LastSweep time.Time `json:"last_sweep,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Deleted are the most recent deletions, newest last (at most 20).
	Deleted []Deleted `json:"deleted,omitempty"`
	Total   int       `json:"deleted_total"`
}

// Deleted is one deletion.
type Deleted struct {
	Index string    `json:"index"`
	At    time.Time `json:"at"`
}

// Retention deletes expired indices (Run), and lists what exists (List).
type Retention struct {
	cfg Config
	log *logrus.Entry
	thr *logging.Throttle

	deleted, failed prometheus.Counter
	lastSweep       prometheus.Gauge

	mu     sync.Mutex
	status Status
}

// New returns a Retention; reg may be nil.
func New(cfg Config, log *logrus.Entry, reg prometheus.Registerer) *Retention {
	if cfg.Every <= 0 {
		cfg.Every = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Retention{cfg: cfg, log: log.WithField("component", "retention"), thr: logging.NewThrottle(10 * time.Minute),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_indices_deleted_total",
			Help: "Indices deleted by retention (older than their topic's retention_days)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_retention_errors_total",
			Help: "Retention sweeps that failed (listing or deleting indices)."}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logtransfer_retention_last_sweep_timestamp_seconds",
			Help: "When retention last looked at every topic's indices without an error."}),
	}
	if reg != nil {
		reg.MustRegister(r.deleted, r.failed, r.lastSweep)
	}
	return r
}

// Status returns the last sweep's outcome.
func (r *Retention) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Deleted = slices.Clone(s.Deleted)
	return s
}

// Run sweeps at start and then every cfg.Every until ctx ends. A failed
// sweep is logged (throttled), counted and shown; the next one retries.
func (r *Retention) Run(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.thr.Log("sweep", r.log.WithError(err), logrus.WarnLevel, "retention sweep failed; retrying at the next")
		}
		t.Reset(r.cfg.Every)
	}
}

// Sweep deletes every expired index of every topic served, and returns
// their names. It stops at the first error (a failed Confirm included).
func (r *Retention) Sweep(ctx context.Context) ([]string, error) {
	var gone []string
	err := r.sweep(ctx, &gone)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed.Inc()
		r.status.LastError = err.Error()
		return gone, err
	}
	now := r.cfg.Now()
	r.status.LastSweep, r.status.LastError = now, ""
	r.lastSweep.Set(float64(now.Unix()))
	return gone, nil
}

func (r *Retention) sweep(ctx context.Context, gone *[]string) error {
	for _, topic := range r.cfg.Topics() {
		if r.cfg.Settings(topic).RetentionDays == 0 {
			continue
		}
		list, err := r.list(ctx, topic)
		if err != nil {
			return err
		}
		for _, ix := range list {
			if !ix.Expired {
				continue
			}
			if r.cfg.Confirm != nil {
				if err := r.cfg.Confirm(ctx); err != nil {
					return fmt.Errorf("confirming the lead before deleting %s: %w", ix.Name, err)
				}
			}
			if err := r.delete(ctx, ix.Name); err != nil {
				return err
			}
			*gone = append(*gone, ix.Name)
			r.deleted.Inc()
			r.log.WithFields(logrus.Fields{"index": ix.Name, "topic": topic, "from": ix.From.Format(time.RFC3339),
				"retention_days": r.cfg.Settings(topic).RetentionDays, "docs": ix.Docs}).Info("expired index deleted")
			r.mu.Lock()
			r.status.Total++
			r.status.Deleted = append(r.status.Deleted, Deleted{Index: ix.Name, At: r.cfg.Now()})
			if n := len(r.status.Deleted); n > 20 {
				r.status.Deleted = slices.Delete(r.status.Deleted, 0, n-20)
			}
			r.mu.Unlock()
		}
	}
	return nil
}

// List returns the indices of every topic served (those its pattern
// matches), each with what retention makes of it, by topic and name.
func (r *Retention) List(ctx context.Context) ([]Index, error) {
	var out []Index
	for _, topic := range r.cfg.Topics() {
		l, err := r.list(ctx, topic)
		if err != nil {
			return nil, err
		}
		out = append(out, l...)
	}
	return out, nil
}

// catIndex is a row of _cat/indices.
type catIndex struct {
	Index  string `json:"index"`
	Health string `json:"health"`
	Status string `json:"status"`
	Docs   string `json:"docs.count"`
	Bytes  string `json:"store.size"`
}

// list reads the indices topic's pattern matches and judges each.
func (r *Retention) list(ctx context.Context, topic string) ([]Index, error) {
	pattern := r.cfg.Index.Pattern(topic)
	var rows []catIndex
	if err := r.get(ctx, "/_cat/indices/"+url.PathEscape(pattern), url.Values{"format": {"json"}, "bytes": {"b"},
		"h": {"index,health,status,docs.count,store.size"}, "expand_wildcards": {"open,closed"}}, &rows); err != nil {
		return nil, fmt.Errorf("listing the indices of topic %s (%s): %w", topic, pattern, err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	// The markers: each index's mapping _meta, nothing else of it.
	var metas map[string]struct {
		Mappings struct {
			Meta struct {
				ManagedBy string `json:"managed_by"`
				Topic     string `json:"topic"`
			} `json:"_meta"`
		} `json:"mappings"`
	}
	if err := r.get(ctx, "/"+url.PathEscape(pattern)+"/_mapping", url.Values{"filter_path": {"*.mappings._meta"},
		"expand_wildcards": {"open,closed"}}, &metas); err != nil {
		return nil, fmt.Errorf("reading the mappings of topic %s's indices (%s): %w", topic, pattern, err)
	}
	set := r.cfg.Settings(topic)
	now := r.cfg.Now()
	out := make([]Index, 0, len(rows))
	for _, row := range rows {
		meta := metas[row.Index].Mappings.Meta
		ix := judge(r.cfg.Index, topic, row.Index, meta.ManagedBy, meta.Topic, set.RetentionDays, now)
		ix.Health, ix.Status = row.Health, row.Status
		ix.Docs, _ = strconv.ParseInt(row.Docs, 10, 64)
		ix.Bytes, _ = strconv.ParseInt(row.Bytes, 10, 64)
		out = append(out, ix)
	}
	slices.SortFunc(out, func(a, b Index) int {
		if c := a.From.Compare(b.From); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// judge is what retention makes of the index name of topic, whose mapping
// carries the marker managedBy and markTopic, under a retention of days
// (0: none) at now.
func judge(n *index.Name, topic, name, managedBy, markTopic string, days int, now time.Time) Index {
	ix := Index{Name: name, Topic: topic}
	from, ok := n.Time(topic, name)
	switch {
	case !ok:
		ix.Kept = "not named by the index pattern for this topic"
	case managedBy != eswriter.ManagedBy:
		ix.Kept = "no _meta.managed_by: " + eswriter.ManagedBy + " in its mapping (not created by logtransfer's template)"
	case markTopic != topic:
		ix.Kept = fmt.Sprintf("its mapping's _meta.topic is %q, not %q", markTopic, topic)
	case days == 0:
		ix.Kept = "retention_days is 0 for this topic"
	}
	if ok {
		ix.From = from
	}
	if ix.Kept == "" {
		ix.Expires = periodEnd(n, topic, name, from).AddDate(0, 0, days)
		ix.Expired = !now.Before(ix.Expires)
	}
	return ix
}

// periodEnd is the first instant after from that the pattern names other
// than name: where the index's period ends (a day for a daily pattern, a
// month for a monthly one). Periods are contiguous, so a binary search
// over seconds finds it; a period longer than 400 days ends at the bound.
func periodEnd(n *index.Name, topic, name string, from time.Time) time.Time {
	lo, hi := int64(0), int64(400*24*3600)
	if n.Name(topic, from.Add(time.Duration(hi)*time.Second)) == name {
		return from.Add(time.Duration(hi) * time.Second)
	}
	for hi-lo > 1 { // Name(from+lo) == name, Name(from+hi) != name
		mid := (lo + hi) / 2
		if n.Name(topic, from.Add(time.Duration(mid)*time.Second)) == name {
			lo = mid
		} else {
			hi = mid
		}
	}
	return from.Add(time.Duration(hi) * time.Second)
}

// delete deletes one index by its exact name.
func (r *Retention) delete(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := r.cfg.Client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodDelete, Path: "/" + url.PathEscape(name)})
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Status == http.StatusNotFound {
		return nil // gone already (another hand, or a sweep cut short)
	}
	if err != nil {
		return fmt.Errorf("deleting index %s: %w", name, err)
	}
	return nil
}

// get performs a GET and decodes its JSON answer into v.
func (r *Retention) get(ctx context.Context, path string, params url.Values, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, err := r.cfg.Client.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: path, Params: params})
	var ee *elastic.Error
	if errors.As(err, &ee) && ee.Status == http.StatusNotFound {
		return nil // nothing matches
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(res.Body, v); err != nil {
		return fmt.Errorf("decoding %s: %w", path, err)
	}
	return nil
}
