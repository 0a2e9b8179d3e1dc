package keyring

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// HolderOptions configure an agent's Holder.
type HolderOptions struct {
	// Key is the agent's key document in etcd (/logagent/keys/<ip>).
	Key string
	// IP and Host are what the agent's records carry as host.ip and
	// host.name; the document must say the same.
	IP, Host string
	// CachePath keeps the document, so that an agent restarted while
	// etcd is unreachable signs at once (0600).
	CachePath string
	Timeout   time.Duration
}

// Holder keeps an agent's signing key: from its cache, then from etcd,
// creating the key document when there is none, and following rotations.
type Holder struct {
	cli   *clientv3.Client
	opt   HolderOptions
	log   *logrus.Entry
	thr   *logging.Throttle
	watch *confwatch.Watcher

	cur   atomic.Pointer[record.SigningKey]
	ready chan struct{}
	once  sync.Once

	mu      sync.Mutex
	lastErr string
	saved   []byte

	errs prometheus.Counter
}

// NewHolder returns a holder; call Run.
func NewHolder(cli *clientv3.Client, opt HolderOptions, log *logrus.Entry, reg prometheus.Registerer) *Holder {
	h := &Holder{
		cli: cli, opt: opt, log: log.WithFields(logrus.Fields{"component": "signing key", "key": opt.Key}),
		thr:   logging.NewThrottle(30 * time.Second),
		ready: make(chan struct{}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_signing_key_errors_total",
			Help: "Failures to create, repair or read the agent's key document in etcd (invalid documents included); the key in force stays."}),
	}
	h.watch = confwatch.New(cli, opt.Key, false, opt.Timeout, log, nil, "logagent_keys")
	if reg != nil {
		reg.MustRegister(h.errs, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_signing_key_known",
			Help: "1 once the agent has a signing key (nothing is sent before)."}, func() float64 {
			if h.Key() != nil {
				return 1
			}
			return 0
		}))
	}
	return h
}

// Key is the key that signs now (nil before one is known).
func (h *Holder) Key() *record.SigningKey { return h.cur.Load() }

// Ready is closed once a key is known.
func (h *Holder) Ready() <-chan struct{} { return h.ready }

// Err says why there is no key yet, or what is wrong with the document in
// etcd (nil: a key is known and the document is sound).
func (h *Holder) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastErr != "" {
		return errors.New(h.lastErr)
	}
	if h.Key() == nil {
		return errors.New("no signing key yet (etcd not answered, no cached key)")
	}
	return nil
}

func (h *Holder) setErr(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.lastErr = ""
		return
	}
	h.lastErr = err.Error()
}

// use puts the signing key of doc in force.
func (h *Holder) use(p *Parsed, raw []byte, source string) {
	// The document is cached before its key signs anything, so that a
	// restart finds the key every signed record names.
	h.save(raw)
	k := p.Signing()
	if old := h.cur.Swap(k); old == nil || old.ID != k.ID {
		h.log.WithFields(logrus.Fields{"key_id": k.ID.String(), "from": source}).Info("signing records with this key")
	}
	h.once.Do(func() { close(h.ready) })
}

// Run loads the cache, then follows the document in etcd until ctx ends.
func (h *Holder) Run(ctx context.Context) error {
	h.loadCache()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = h.watch.Run(ctx)
	}()
	defer wg.Wait()
	bo := backoff.Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-h.watch.Changed():
		case <-retry:
		}
		retry = nil
		s := h.watch.Latest()
		if s == nil {
			continue
		}
		if err := h.handle(ctx, s); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			h.errs.Inc()
			h.setErr(err)
			h.thr.Log("handle", h.log.WithError(err), logrus.ErrorLevel, "signing key document: the key in force stays")
			retry = time.After(bo.Next())
			continue
		}
		bo.Reset()
	}
}

// handle acts on the document as etcd has it: creates it when absent (from
// the cached key if any), repairs the host and IP it names, or takes its
// key.
func (h *Holder) handle(ctx context.Context, s *confwatch.Snapshot) error {
	kv, ok := s.KVs[h.opt.Key]
	if !ok {
		return h.create(ctx)
	}
	p, err := Parse(kv.Value)
	if err != nil {
		return fmt.Errorf("%s: %w", h.opt.Key, err)
	}
	if p.IP != h.opt.IP || p.Host != h.opt.Host || !p.SignsFor(h.opt.Host, h.opt.IP) {
		return h.repair(ctx, kv)
	}
	h.use(p, kv.Value, "etcd")
	h.setErr(nil)
	return nil
}

// create writes a document for this agent if there still is none: with
// the cached key (records already signed with it stay verifiable) or a
// fresh one.
func (h *Holder) create(ctx context.Context) error {
	var doc KeyDoc
	if raw, err := os.ReadFile(h.opt.CachePath); err == nil && json.Unmarshal(raw, &doc) == nil && len(doc.Keys) > 0 {
		err := h.adopt(&doc)
		if err != nil {
			return err
		}
	} else {
		k, err := NewKey(time.Now())
		if err != nil {
			return err
		}
		k.Host, k.IP = h.opt.Host, h.opt.IP
		doc = KeyDoc{IP: h.opt.IP, Host: h.opt.Host, Keys: []Key{k}}
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding key document: %w", err)
	}
	p, err := Parse(raw)
	if err != nil {
		return fmt.Errorf("cached key document: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	resp, err := h.cli.Txn(tctx).If(clientv3.Compare(clientv3.CreateRevision(h.opt.Key), "=", 0)).
		Then(clientv3.OpPut(h.opt.Key, string(raw))).Commit()
	if err != nil {
		return fmt.Errorf("creating %s: %w", h.opt.Key, err)
	}
	if resp.Succeeded {
		h.log.WithField("key_id", p.Signing().ID.String()).Info("created this agent's key document")
		h.use(p, raw, "created")
		h.setErr(nil)
	}
	// Else someone wrote it meanwhile: the watch brings it.
	return nil
}

// adopt makes doc this agent's: its keys keep the host and IP they were
// made for, and unless the signing one is this agent's, a new key for it
// goes first.
func (h *Holder) adopt(doc *KeyDoc) error {
	for i := range doc.Keys {
		if doc.Keys[i].Host == "" {
			doc.Keys[i].Host = doc.Host
		}
		if doc.Keys[i].IP == "" {
			doc.Keys[i].IP = doc.IP
		}
	}
	doc.IP, doc.Host = h.opt.IP, h.opt.Host
	if len(doc.Keys) > 0 && doc.Keys[0].Host == h.opt.Host && doc.Keys[0].IP == h.opt.IP {
		return nil
	}
	k, err := NewKey(time.Now())
	if err != nil {
		return err
	}
	k.Host, k.IP = h.opt.Host, h.opt.IP
	doc.Keys = append([]Key{k}, doc.Keys...)
	if len(doc.Keys) > MaxKeys {
		doc.Keys = doc.Keys[:MaxKeys]
	}
	return nil
}

// repair makes the document this agent's (the host was renamed, or an
// operator copied another's): a new key for this host first, the others
// kept with the host they signed for (their records still name it),
// unless the document changed meanwhile.
func (h *Holder) repair(ctx context.Context, kv confwatch.KV) error {
	var doc KeyDoc
	if err := json.Unmarshal(kv.Value, &doc); err != nil {
		return fmt.Errorf("%s: %w", h.opt.Key, err)
	}
	h.log.WithFields(logrus.Fields{"was_host": doc.Host, "was_ip": doc.IP}).Warn("key document names another host or IP; adding a key for this one")
	if err := h.adopt(&doc); err != nil {
		return err
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding key document: %w", err)
	}
	tctx, cancel := context.WithTimeout(ctx, h.opt.Timeout)
	defer cancel()
	_, err = h.cli.Txn(tctx).If(clientv3.Compare(clientv3.ModRevision(h.opt.Key), "=", kv.ModRevision)).
		Then(clientv3.OpPut(h.opt.Key, string(raw))).Commit()
	if err != nil {
		return fmt.Errorf("rewriting %s: %w", h.opt.Key, err)
	}
	return nil // the watch brings the result
}

func (h *Holder) loadCache() {
	raw, err := os.ReadFile(h.opt.CachePath)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	var p *Parsed
	if err == nil {
		p, err = Parse(raw)
	}
	if err == nil && (p.IP != h.opt.IP || p.Host != h.opt.Host || !p.SignsFor(h.opt.Host, h.opt.IP)) {
		err = fmt.Errorf("cached key document is %s/%s's, not %s/%s", p.Host, p.IP, h.opt.Host, h.opt.IP)
	}
	if err != nil {
		h.log.WithError(err).Warn("ignoring the cached signing key; waiting for etcd")
		return
	}
	h.saved = raw
	h.use(p, raw, "cache")
}

func (h *Holder) save(raw []byte) {
	if bytes.Equal(raw, h.saved) || h.opt.CachePath == "" {
		return
	}
	if err := fsutil.WriteAtomic(h.opt.CachePath, raw, 0o600); err != nil {
		h.thr.Log("cache", h.log.WithError(err), logrus.WarnLevel, "saving the signing key cache")
		return
	}
	h.saved = raw
}
