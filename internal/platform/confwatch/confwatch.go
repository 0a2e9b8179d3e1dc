// Package confwatch follows a key (or a prefix) in etcd and publishes the
// latest whole state. It gets the key, then watches from the revision after
// the get so that no change in between is missed; when the watch ends or
// reports a compaction it gets again. While etcd is unreachable it retries
// with backoff and the last published state stays in force. It does not
// know what the values mean.
package confwatch

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// KV is one key's value and the revision that last modified it.
type KV struct {
	Value       []byte
	ModRevision int64
}

// Snapshot is the state of the watched key or prefix at Revision.
type Snapshot struct {
	Revision int64
	KVs      map[string]KV
}

// Watcher publishes Snapshots of a key or prefix.
type Watcher struct {
	cli     *clientv3.Client
	key     string
	prefix  bool
	timeout time.Duration
	log     *logrus.Entry
	thr     *logging.Throttle

	mu     sync.Mutex
	latest *Snapshot
	notify chan struct{}
	up     atomic.Bool

	restarts prometheus.Counter
}

// New returns a watcher of key (of every key under it if prefix). name
// prefixes its metrics ("logagent", "logtransfer").
func New(cli *clientv3.Client, key string, prefix bool, timeout time.Duration, log *logrus.Entry, reg prometheus.Registerer, name string) *Watcher {
	w := &Watcher{
		cli: cli, key: key, prefix: prefix, timeout: timeout,
		log:    log.WithFields(logrus.Fields{"component": "confwatch", "key": key}),
		thr:    logging.NewThrottle(30 * time.Second),
		notify: make(chan struct{}, 1),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: name + "_etcd_watch_restarts_total", Help: "Times the etcd get+watch had to start over (etcd unreachable, watch dropped, compaction).",
		}),
	}
	if reg != nil {
		up := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name + "_etcd_up", Help: "1 while the etcd watch is established."},
			func() float64 {
				if w.up.Load() {
					return 1
				}
				return 0
			})
		reg.MustRegister(w.restarts, up)
	}
	return w
}

// Changed is signalled (coalesced) whenever a new snapshot is published.
func (w *Watcher) Changed() <-chan struct{} { return w.notify }

// Latest returns the last published snapshot, or nil before the first get.
func (w *Watcher) Latest() *Snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.latest
}

// Up reports whether the watch is currently established.
func (w *Watcher) Up() bool { return w.up.Load() }

func (w *Watcher) publish(s *Snapshot) {
	w.mu.Lock()
	w.latest = s
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

func (w *Watcher) opts() []clientv3.OpOption {
	if w.prefix {
		return []clientv3.OpOption{clientv3.WithPrefix()}
	}
	return nil
}

// Run gets and watches until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	bo := backoff.Backoff{Min: 200 * time.Millisecond, Max: 10 * time.Second}
	for ctx.Err() == nil {
		snap, err := w.get(ctx)
		if err == nil {
			w.publish(snap)
			w.up.Store(true)
			bo.Reset()
			err = w.watch(ctx, snap)
		}
		w.up.Store(false)
		if ctx.Err() != nil {
			break
		}
		w.restarts.Inc()
		w.thr.Log("watch", w.log.WithError(err), logrus.WarnLevel, "etcd get/watch failed; retrying with the last known config in force")
		backoff.Sleep(ctx, bo.Next())
	}
	return nil
}

func (w *Watcher) get(ctx context.Context) (*Snapshot, error) {
	gctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	resp, err := w.cli.Get(gctx, w.key, w.opts()...)
	if err != nil {
		return nil, fmt.Errorf("getting %s: %w", w.key, err)
	}
	s := &Snapshot{Revision: resp.Header.Revision, KVs: make(map[string]KV, len(resp.Kvs))}
	for _, kv := range resp.Kvs {
		s.KVs[string(kv.Key)] = KV{Value: kv.Value, ModRevision: kv.ModRevision}
	}
	return s, nil
}

var errCompacted = errors.New("watch revision compacted")

// probeInterval is how often an established watch checks that etcd still
// answers. The client library silently reconnects a broken watch, which
// would leave "up" true and readiness green while etcd is gone; a failed
// probe instead ends the watch, and the get+watch cycle starts over.
const probeInterval = 3 * time.Second

// watch applies changes after snap until the watch ends.
func (w *Watcher) watch(ctx context.Context, snap *Snapshot) error {
	wctx, cancel := context.WithCancelCause(clientv3.WithRequireLeader(ctx))
	defer cancel(nil)
	go w.probe(wctx, cancel)
	opts := append(w.opts(), clientv3.WithRev(snap.Revision+1))
	for resp := range w.cli.Watch(wctx, w.key, opts...) {
		if resp.CompactRevision != 0 {
			return fmt.Errorf("%w at %d", errCompacted, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watching %s: %w", w.key, err)
		}
		if len(resp.Events) == 0 {
			continue
		}
		next := &Snapshot{Revision: resp.Header.Revision, KVs: maps.Clone(snap.KVs)}
		for _, ev := range resp.Events {
			k := string(ev.Kv.Key)
			if ev.Type == clientv3.EventTypeDelete {
				delete(next.KVs, k)
			} else {
				next.KVs[k] = KV{Value: ev.Kv.Value, ModRevision: ev.Kv.ModRevision}
			}
		}
		snap = next
		w.publish(snap)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := context.Cause(wctx); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

func (w *Watcher) probe(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, w.timeout)
		_, err := w.cli.Get(pctx, w.key, clientv3.WithCountOnly())
		cancel()
		if err != nil && ctx.Err() == nil {
			stop(fmt.Errorf("etcd stopped answering: %w", err))
			return
		}
	}
}
