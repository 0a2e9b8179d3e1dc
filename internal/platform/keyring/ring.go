package keyring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// RingOptions configure the transfer's Ring.
type RingOptions struct {
	// Prefix holds every agent's key document (/logagent/keys/).
	Prefix string
	// CachePath keeps the documents, so a transfer started while etcd is
	// unreachable checks records at once (0600).
	CachePath string
	Timeout   time.Duration
	// AcceptUnsigned lets unsigned records through, unless they claim a
	// host.ip whose agent has a key (an agent that signs never sends an
	// unsigned record).
	AcceptUnsigned bool
}

// Ring is every agent's keys, as the transfer checks records with them.
type Ring struct {
	cli   *clientv3.Client
	opt   RingOptions
	log   *logrus.Entry
	thr   *logging.Throttle
	watch *confwatch.Watcher

	state atomic.Pointer[ringState]

	mu       sync.Mutex
	snap     *confwatch.Snapshot // last from the watch
	fetched  map[string]confwatch.KV
	flight   chan struct{} // closed when the sync in flight ends
	syncedAt time.Time     // when the last successful sync started
	saved    []byte

	quarantined *prometheus.CounterVec
	badDocs     prometheus.Gauge
	waiting     prometheus.Gauge
	syncs       prometheus.Counter
}

type ringState struct {
	byID  map[record.KeyID]*ringKey
	hosts map[string]bool // IPs that have a key
	bad   int
}

type ringKey struct {
	key      *record.SigningKey
	ip, host string
	// ipB and hostB are the same, handed to the records it verifies
	// (never written).
	ipB, hostB []byte
}

// Quarantine reasons (the label values of
// logtransfer_records_quarantined_total).
const (
	ReasonUnsigned     = "unsigned"
	ReasonMalformed    = "malformed_signature"
	ReasonUnknownKey   = "unknown_key"
	ReasonBadSignature = "bad_signature"
	ReasonWrongHost    = "wrong_host"
)

// NewRing returns a ring; call Run.
func NewRing(cli *clientv3.Client, opt RingOptions, log *logrus.Entry, reg prometheus.Registerer) *Ring {
	r := &Ring{
		cli: cli, opt: opt, log: log.WithFields(logrus.Fields{"component": "keyring", "prefix": opt.Prefix}),
		thr: logging.NewThrottle(10 * time.Second),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logtransfer_records_quarantined_total",
			Help: "Records sent to the quarantine topic instead of the index, by reason (unsigned, malformed_signature, unknown_key, bad_signature, wrong_host)."}, []string{"reason"}),
		badDocs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logtransfer_key_documents_invalid",
			Help: "Agent key documents in etcd that do not parse (their keys verify nothing)."}),
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "logtransfer_claims_waiting_for_keys",
			Help: "Partitions held because their next record cannot be checked yet (keys not loaded, or etcd unreachable while a record names a key not seen yet)."}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_key_syncs_total",
			Help: "Reads of the key documents from etcd for a record naming a key the watch had not brought yet."}),
	}
	for _, reason := range []string{ReasonUnsigned, ReasonMalformed, ReasonUnknownKey, ReasonBadSignature, ReasonWrongHost} {
		r.quarantined.WithLabelValues(reason)
	}
	if cli != nil {
		r.watch = confwatch.New(cli, opt.Prefix, true, opt.Timeout, log, nil, "logtransfer_keys")
	}
	if reg != nil {
		reg.MustRegister(r.quarantined, r.badDocs, r.waiting, r.syncs)
	}
	return r
}

// Ready is nil once the keys are known (from etcd or the cache).
func (r *Ring) Ready() error {
	if r.state.Load() == nil {
		return errors.New("agent keys not loaded yet (etcd not answered, no cached copy): records wait")
	}
	return nil
}

// Run loads the cache, then follows the documents until ctx ends.
func (r *Ring) Run(ctx context.Context) error {
	r.loadCache()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = r.watch.Run(ctx)
	}()
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.watch.Changed():
			r.mu.Lock()
			r.snap = r.watch.Latest()
			r.rebuild()
			r.mu.Unlock()
		}
	}
}

// rebuild makes the state from the last snapshot and what syncs fetched
// since (newer than the snapshot). Call with mu held.
func (r *Ring) rebuild() {
	kvs := map[string]confwatch.KV{}
	if r.snap != nil {
		for k, kv := range r.snap.KVs {
			kvs[k] = kv
		}
		for k, kv := range r.fetched {
			if kv.ModRevision <= r.snap.Revision {
				delete(r.fetched, k)
			}
		}
	}
	for k, kv := range r.fetched {
		if old, ok := kvs[k]; !ok || old.ModRevision < kv.ModRevision {
			kvs[k] = kv
		}
	}
	st := &ringState{byID: map[record.KeyID]*ringKey{}, hosts: map[string]bool{}}
	for k, kv := range kvs {
		p, err := Parse(kv.Value)
		if err != nil {
			st.bad++
			r.thr.Log("bad:"+k, r.log.WithError(err).WithField("key", k), logrus.ErrorLevel, "invalid agent key document: its records will be quarantined")
			continue
		}
		st.hosts[p.IP] = true
		for i, sk := range p.Keys {
			id := p.Idents[i]
			st.hosts[id.IP] = true
			if other, dup := st.byID[sk.ID]; dup && (other == nil || other.ip != id.IP || other.host != id.Host) {
				// Two hosts under one id: neither can be told apart.
				r.thr.Log("dup:"+sk.ID.String(), r.log.WithFields(logrus.Fields{"key_id": sk.ID.String(), "key": k}), logrus.ErrorLevel, "key id used by two hosts: neither verifies")
				st.byID[sk.ID] = nil
				continue
			}
			st.byID[sk.ID] = &ringKey{key: sk, ip: id.IP, host: id.Host, ipB: []byte(id.IP), hostB: []byte(id.Host)}
		}
	}
	r.badDocs.Set(float64(st.bad))
	r.state.Store(st)
	r.saveCache(kvs)
}

// Check judges msgs, consecutive records of one partition: a chunk whose
// signature is on the last record, or one record that no signature covers
// (transfer.Verifier). A chunk whose signature verifies with the key it
// names is the agent's: each record is indexed as its host's, unless it
// names another host than the key's. A chunk that fails has its signed
// record quarantined with the reason, and the others judged as the
// unsigned records they are. Check waits (this claim only) while the keys
// are not loaded, or while etcd cannot be asked about a key id the ring
// has not seen; false if ctx ended first. round is when the claim took the
// records in hand: a key id still unknown to a read of etcd started after
// it was never an agent's when the records were produced.
func (r *Ring) Check(ctx context.Context, msgs []*sarama.ConsumerMessage, views []record.View, round time.Time, ch *record.Chunk, out []record.Verdict) bool {
	if r.state.Load() == nil && r.waitLoaded(ctx) == nil {
		return false
	}
	last := len(msgs) - 1
	var k *ringKey
	if views[last].Sigs > 0 {
		reason, key, ok := r.verify(ctx, msgs, views, round, ch)
		if !ok {
			return false
		}
		if key == nil {
			out[last] = record.Verdict{Quarantine: reason}
			last-- // the others are as unsigned as they look
		}
		k = key
	}
	st := r.state.Load()
	for i := range msgs[:last+1] {
		v := &views[i]
		switch {
		case k == nil:
			out[i] = record.Verdict{Quarantine: r.unsigned(st, v)}
		case (len(v.HostIP) > 0 || len(v.HostName) > 0) && (string(v.HostIP) != k.ip || string(v.HostName) != k.host):
			// An agent's record names its host by its key; one that names
			// a host must name the key's.
			out[i] = record.Verdict{Quarantine: r.quarantine(ReasonWrongHost, fmt.Sprintf("key %s is %s/%s's; the record claims %q/%q", k.key.ID, k.host, k.ip, v.HostName, v.HostIP))}
		default:
			out[i] = record.Verdict{Signed: true, HostName: k.hostB, HostIP: k.ipB}
		}
	}
	return true
}

// unsigned says why a record no signature covers is quarantined ("": it is
// let through).
func (r *Ring) unsigned(st *ringState, v *record.View) string {
	switch {
	case !r.opt.AcceptUnsigned:
		return r.quarantine(ReasonUnsigned, "unsigned record (the transfer requires signatures; see accept_unsigned)")
	case st.hosts[string(v.HostIP)]:
		return r.quarantine(ReasonUnsigned, "unsigned record claims host.ip "+strconv.Quote(string(v.HostIP))+", whose agent signs its records")
	}
	return ""
}

// verify checks the signature on the last of msgs over all of them, and
// returns the key that made it, or why not.
func (r *Ring) verify(ctx context.Context, msgs []*sarama.ConsumerMessage, views []record.View, round time.Time, ch *record.Chunk) (string, *ringKey, bool) {
	sig := &views[len(views)-1]
	if sig.Sigs > 1 {
		return r.quarantine(ReasonMalformed, "more than one sig header"), nil, true
	}
	id, _, ctxHeaders, _, err := record.ParseSig(sig.Sig)
	if err != nil {
		return r.quarantine(ReasonMalformed, err.Error()), nil, true
	}
	k, known := r.state.Load().byID[id]
	if !known {
		if !r.sync(ctx, round) {
			return "", nil, false
		}
		k, known = r.state.Load().byID[id]
		if !known {
			return r.quarantine(ReasonUnknownKey, "signed with key "+id.String()+", which no agent has"), nil, true
		}
	}
	if k == nil {
		return r.quarantine(ReasonUnknownKey, "signed with key "+id.String()+", which two hosts claim"), nil, true
	}
	ch.Reset(k.key, msgs[0].Topic, ctxHeaders)
	for _, m := range msgs {
		ch.Add(m.Key, m.Value, kafka.Headers(m.Headers))
	}
	if err := ch.Verify(sig.Sig); err != nil {
		return r.quarantine(ReasonBadSignature, err.Error()), nil, true
	}
	return "", k, true
}

func (r *Ring) quarantine(reason, detail string) string {
	r.quarantined.WithLabelValues(reason).Inc()
	return "quarantined: " + detail
}

func (r *Ring) waitLoaded(ctx context.Context) *ringState {
	r.waiting.Inc()
	defer r.waiting.Dec()
	r.thr.Log("notloaded", r.log, logrus.WarnLevel, "agent keys not loaded yet: holding partitions until they are")
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if st := r.state.Load(); st != nil {
			return st
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// sync makes sure the ring holds every document etcd had when a read
// started at or after since: it joins a read in flight that started late
// enough, or makes one. While etcd does not answer it retries; false if
// ctx ended first.
func (r *Ring) sync(ctx context.Context, since time.Time) bool {
	bo := backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	waited := false
	for {
		r.mu.Lock()
		if !r.syncedAt.Before(since) {
			r.mu.Unlock()
			return true
		}
		if ch := r.flight; ch != nil {
			r.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false
			}
		}
		ch := make(chan struct{})
		start := time.Now()
		r.flight = ch
		r.mu.Unlock()

		err := r.fetch(ctx)
		r.mu.Lock()
		r.flight = nil
		if err == nil {
			r.syncedAt = start
		}
		r.mu.Unlock()
		close(ch)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !waited {
			waited = true
			r.waiting.Inc()
			defer r.waiting.Dec()
		}
		r.thr.Log("sync", r.log.WithError(err), logrus.WarnLevel, "a record names a key not seen yet and etcd does not answer: holding its partition")
		backoff.Sleep(ctx, bo.Next())
	}
}

// fetch reads the documents changed since the last snapshot.
func (r *Ring) fetch(ctx context.Context) error {
	r.syncs.Inc()
	r.mu.Lock()
	var after int64
	if r.snap != nil {
		after = r.snap.Revision
	}
	r.mu.Unlock()
	tctx, cancel := context.WithTimeout(ctx, r.opt.Timeout)
	defer cancel()
	resp, err := r.cli.Get(tctx, r.opt.Prefix, clientv3.WithPrefix(), clientv3.WithMinModRev(after+1))
	if err != nil {
		return fmt.Errorf("reading agent keys: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fetched == nil {
		r.fetched = map[string]confwatch.KV{}
	}
	for _, kv := range resp.Kvs {
		r.fetched[string(kv.Key)] = confwatch.KV{Value: kv.Value, ModRevision: kv.ModRevision}
	}
	r.rebuild()
	return nil
}

type ringCache struct {
	Prefix string                  `json:"prefix"`
	Docs   map[string]confwatch.KV `json:"docs"`
}

func (r *Ring) loadCache() {
	raw, err := os.ReadFile(r.opt.CachePath)
	if errors.Is(err, os.ErrNotExist) || r.opt.CachePath == "" {
		return
	}
	var c ringCache
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err == nil && c.Prefix != r.opt.Prefix {
		err = fmt.Errorf("cache is of %q", c.Prefix)
	}
	if err != nil {
		r.log.WithError(err).Warn("ignoring the agent key cache; waiting for etcd")
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state.Load() != nil {
		return
	}
	r.snap = &confwatch.Snapshot{KVs: c.Docs}
	r.saved = raw
	r.rebuild()
	r.log.WithField("documents", len(c.Docs)).Info("checking records with the cached agent keys until etcd answers")
}

// saveCache keeps kvs when they changed. Call with mu held.
func (r *Ring) saveCache(kvs map[string]confwatch.KV) {
	if r.opt.CachePath == "" {
		return
	}
	raw, err := json.Marshal(ringCache{Prefix: r.opt.Prefix, Docs: kvs})
	if err != nil || bytes.Equal(raw, r.saved) {
		return
	}
	if err := fsutil.WriteAtomic(r.opt.CachePath, raw, 0o600); err != nil {
		r.thr.Log("cache", r.log.WithError(err), logrus.WarnLevel, "saving the agent key cache")
		return
	}
	r.saved = raw
}
