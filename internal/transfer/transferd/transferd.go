// Package transferd assembles logtransfer: Elasticsearch client and bulk
// writer, dead-letter producer, topic discovery from etcd, the consumer
// group and the HTTP endpoints. At shutdown fetching stops first, claims
// wait for their documents to be acknowledged and commit, then the writer
// stops.
package transferd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/buildinfo"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/election"
	"github.com/logpipe/logpipe/internal/platform/etcdclient"
	"github.com/logpipe/logpipe/internal/platform/fsutil"
	"github.com/logpipe/logpipe/internal/platform/httpserver"
	"github.com/logpipe/logpipe/internal/platform/keyring"
	"github.com/logpipe/logpipe/internal/platform/lifecycle"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/platform/memtune"
	"github.com/logpipe/logpipe/internal/transfer"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
	"github.com/logpipe/logpipe/internal/transfer/indexlife"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// Options come from flags.
type Options struct {
	Version string
	// MemoryLimit is the runtime's soft memory limit, kept by a
	// memtune.Floor (0: left alone).
	MemoryLimit int64
}

// Daemon is a configured logtransfer.
type Daemon struct {
	cfg  *config.TransferConfig
	log  *logrus.Entry
	prom *prometheus.Registry

	writer    *eswriter.Writer
	dlq       *transfer.DeadLetter
	topics    *transfer.Topics
	consumer  *transfer.Consumer
	cli       *clientv3.Client
	watch     *confwatch.Watcher
	pipeWatch *confwatch.Watcher
	// retWatch watches the retention document ([etcd] retention_key),
	// retOver holds the one in force (nil: the ini's retention only).
	retWatch  *confwatch.Watcher
	retOver   *indexlife.Overrides
	pipes     *pipeline.Set
	ring      *keyring.Ring // nil: signatures not checked
	http      *httpserver.Server
	mem       *memtune.Floor       // nil: the memory limit is left alone
	retention *indexlife.Retention // nil: the index pattern names no topic
	// elector elects the transfer that runs retention and installs index
	// templates; nil: this one acts alone (no etcd, or no election_key).
	elector *election.Elector
	thr     *logging.Throttle
	install func(ctx context.Context, topic string) error
	// savedPipes is the pipeline cache last written.
	savedPipes []byte
}

// New builds the daemon without starting it.
func New(cfg *config.TransferConfig, opts Options, log *logrus.Entry) (*Daemon, error) {
	d := &Daemon{cfg: cfg, log: log, prom: prometheus.NewRegistry(), thr: logging.NewThrottle(time.Minute)}
	if opts.MemoryLimit > 0 {
		d.mem = &memtune.Floor{Limit: opts.MemoryLimit, Ratio: 2, Check: 500 * time.Millisecond, Log: log.WithField("component", "memtune")}
	}
	d.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Gauge("logtransfer", opts.Version))

	idx, err := index.Parse(cfg.ES.Index)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Where("es", "index"), err)
	}
	es, err := newESClient(cfg.ES)
	if err != nil {
		return nil, err
	}
	d.dlq = transfer.NewDeadLetter(cfg.Kafka)
	d.writer = eswriter.New(eswriter.Config{
		Workers:         cfg.ES.Workers,
		BulkActions:     cfg.ES.BulkActions,
		BulkBytes:       cfg.ES.BulkBytes,
		FlushInterval:   cfg.ES.FlushInterval,
		RetryBackoffMax: cfg.ES.RetryBackoffMax,
		ShutdownTimeout: cfg.ES.ShutdownTimeout,
		Pipeline:        cfg.ES.Pipeline,
		// Stores that take only the bulk API run without templates.
		Identify: cfg.ES.ManageTemplates,
	}, es, d.dlq, log, d.prom)
	d.pipes = pipeline.NewSet(cfg.Discovery.PipelinesKey, log, d.prom)
	d.topics = transfer.NewTopics(cfg.Kafka.Topics, cfg.Discovery.CollectKey, cfg.Discovery.MetricsKey, log, d.prom)
	d.topics.SetPattern(cfg.Discovery.Pattern)

	if cfg.Discovery.Enabled || cfg.Discovery.Pipelines || cfg.VerifySignatures {
		cli, err := etcdclient.New(cfg.Discovery.Endpoints, cfg.Discovery.Timeout, cfg.Discovery.Security)
		if err != nil {
			return nil, fmt.Errorf("creating etcd client: %w", err)
		}
		d.cli = cli
	}
	if cfg.VerifySignatures {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			d.close()
			return nil, fmt.Errorf("creating [transfer] data_dir: %w", err)
		}
		d.ring = keyring.NewRing(d.cli, keyring.RingOptions{
			Prefix:         strings.TrimSuffix(cfg.Discovery.KeysKey, "%s"),
			CachePath:      filepath.Join(cfg.DataDir, "agent_keys.json"),
			Timeout:        cfg.Discovery.Timeout,
			AcceptUnsigned: cfg.AcceptUnsigned,
		}, log, d.prom)
	}
	if d.cli != nil && cfg.Discovery.ElectionKey != "" {
		d.elector = election.New(d.cli, election.Options{Key: cfg.Discovery.ElectionKey, ID: instanceName(cfg), TTL: cfg.Discovery.ElectionTTL,
			Timeout: cfg.Discovery.Timeout, Metric: "logtransfer"}, log, d.prom)
	}
	d.install = func(ctx context.Context, topic string) error {
		return d.writer.TryTemplate(ctx, topic, idx.Pattern(topic), cfg.Indices.For(topic))
	}
	var prepare func(context.Context, string) error
	if cfg.ES.ManageTemplates {
		prepare = d.prepare
	}
	if idx.HasTopic() {
		settings := cfg.Indices.For
		if d.cli != nil && cfg.Discovery.RetentionKey != "" {
			d.retOver = indexlife.NewOverrides(log, d.prom)
			d.retWatch = confwatch.New(d.cli, cfg.Discovery.RetentionKey, false, cfg.Discovery.Timeout, log, d.prom, "logtransfer_retention")
			settings = func(topic string) config.IndexSettings {
				s := cfg.Indices.For(topic)
				s.RetentionDays = d.retOver.Days(topic, s.RetentionDays)
				return s
			}
		}
		rc := indexlife.Config{Client: es, Index: idx, Topics: d.topics.List, Settings: settings, Every: cfg.Indices.RetentionEvery}
		if d.elector != nil {
			rc.Confirm = d.elector.Confirm
		}
		d.retention = indexlife.New(rc, log, d.prom)
	} else if cfg.Indices.Default.RetentionDays > 0 || len(cfg.Indices.PerTopic) > 0 {
		log.WithField("index", cfg.ES.Index).Warn("the index pattern names no topic (%{topic}): retention and per-topic index settings cannot tell topics' indices apart, and are off")
	}
	d.consumer = transfer.NewConsumer(transfer.Options{
		Kafka:          cfg.Kafka,
		Sarama:         transfer.SaramaConfig(cfg.Kafka, "logtransfer"),
		Index:          idx,
		Topics:         d.topics,
		Out:            d.writer,
		Prepare:        prepare,
		DrainTimeout:   cfg.ES.ShutdownTimeout,
		MaxFuture:      cfg.ES.MaxFuture,
		MaxAge:         cfg.ES.MaxAge,
		Pipelines:      d.pipes,
		PipelinesReady: d.ready,
		Verify:         d.verifier(),
	}, log, d.prom)

	if cfg.Discovery.Enabled {
		d.watch = confwatch.New(d.cli, transfer.WatchPrefix(cfg.Discovery.CollectKey), true, cfg.Discovery.Timeout, log, d.prom, "logtransfer")
	}
	if cfg.Discovery.Pipelines {
		d.pipeWatch = confwatch.New(d.cli, cfg.Discovery.PipelinesKey, true, cfg.Discovery.Timeout, log, d.prom, "logtransfer_pipelines")
		d.loadPipelineCache()
	}

	if cfg.HTTP.Addr != "" {
		checks := []httpserver.Check{
			{Name: "kafka", Fn: func() error { return boolErr(d.consumer.Joined(), "not a member of the consumer group") }},
			{Name: "elasticsearch", Fn: d.writer.Ready},
			{Name: "pipelines", Fn: d.ready},
			{Name: "keys", Fn: d.keysReady},
		}
		d.http = httpserver.New(cfg.HTTP.Addr, cfg.HTTP.Pprof, d.prom, checks, log)
		d.http.Handle("/status", http.HandlerFunc(d.serveStatus))
		d.http.Handle("/indices", http.HandlerFunc(d.serveIndices))
		if err := d.http.Listen(); err != nil {
			d.close()
			return nil, err
		}
	}
	log.WithFields(logrus.Fields{"group": cfg.Kafka.GroupID, "topics": cfg.Kafka.Topics, "discover": cfg.Discovery.Enabled,
		"es": cfg.ES.URLs, "workers": cfg.ES.Workers, "index": cfg.ES.Index, "ingest_pipeline": cfg.ES.Pipeline, "version": opts.Version}).Info("logtransfer configured")
	return d, nil
}

func boolErr(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

// newESClient builds the olivere client: no sniffing and no health checks
// (ES-compatible stores and proxies do not answer them; failures are
// handled per request), credentials and extra headers on every request,
// and the [es] tls_* setup (custom CA, client certificate) for https URLs.
func newESClient(cfg config.ES) (*elastic.Client, error) {
	h := http.Header{}
	for k, v := range cfg.Headers {
		h.Set(k, v)
	}
	if !cfg.APIKey.IsZero() {
		h.Set("Authorization", "ApiKey "+cfg.APIKey.Reveal())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tc := cfg.TLS.Config(); tc != nil {
		tr.TLSClientConfig = tc
	}
	// A bulk answer is a few hundred bytes per document; anything far
	// beyond is a broken or hostile store.
	limit := max(int64(64<<20), int64(cfg.BulkActions)*2048)
	hc := &http.Client{Timeout: 2 * time.Minute, Transport: eswriter.LimitResponses(tr, limit)}
	opts := []elastic.ClientOptionFunc{
		elastic.SetURL(cfg.URLs...),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetHttpClient(hc),
		elastic.SetHeaders(h),
	}
	if cfg.Username != "" {
		opts = append(opts, elastic.SetBasicAuth(cfg.Username, cfg.Password.Reveal()))
	}
	c, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Elasticsearch client: %w", err)
	}
	return c, nil
}

// Prometheus is the metrics registry.
func (d *Daemon) Prometheus() *prometheus.Registry { return d.prom }

// Consumer exposes the consumer (status, tests).
func (d *Daemon) Consumer() *transfer.Consumer { return d.consumer }

// Topics exposes the topic set.
func (d *Daemon) Topics() *transfer.Topics { return d.topics }

// HTTPAddr is the bound HTTP address ("" if disabled).
func (d *Daemon) HTTPAddr() string {
	if d.http == nil {
		return ""
	}
	return d.http.Addr()
}

func (d *Daemon) close() {
	if d.cli != nil {
		d.cli.Close()
	}
	d.dlq.Close()
}

// Run runs until ctx ends, then shuts down in order.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.close()
	// Stopped in reverse: consumption stops first (claims wait for their
	// documents and commit), then the writer, then the HTTP endpoints.
	r := lifecycle.New()
	if d.http != nil {
		r.Stage("http").Go("http", d.http.Run)
	}
	write := r.Stage("write")
	write.Go("es writer", d.writer.Run)
	if d.mem != nil {
		write.Go("memory limit", d.mem.Run)
	}
	switch {
	case d.elector != nil:
		write.Go("election", func(ctx context.Context) error { return d.elector.Run(ctx, d.lead) })
	case d.retention != nil:
		write.Go("retention", d.retention.Run)
	}
	read := r.Stage("read")
	if d.watch != nil {
		read.Go("etcd watch", d.watch.Run)
		read.Go("discovery", d.discover)
	}
	if d.pipeWatch != nil {
		read.Go("pipelines watch", d.pipeWatch.Run)
		read.Go("pipelines", d.loadPipelines)
	}
	if d.ring != nil {
		read.Go("agent keys", d.ring.Run)
	}
	if d.retWatch != nil {
		read.Go("retention watch", d.retWatch.Run)
		read.Go("retention document", d.loadRetention)
	}
	read.Go("consumer", d.consumer.Run)

	err := r.Wait(ctx, func(s *lifecycle.Stage) {
		if s.Name == "read" {
			d.log.Info("shutting down: stopping consumption, waiting for in-flight documents")
		}
	})
	if err != nil {
		d.log.WithError(err).Error("component failed; shut down")
	}
	d.log.Info("stopped")
	return err
}

// instanceName names this transfer to the others: its Kafka instance_id,
// else its host and HTTP address.
func instanceName(cfg *config.TransferConfig) string {
	if cfg.Kafka.InstanceID != "" {
		return cfg.Kafka.InstanceID
	}
	host, _ := os.Hostname()
	if cfg.HTTP.Addr != "" {
		return host + " " + cfg.HTTP.Addr
	}
	return fmt.Sprintf("%s pid %d", host, os.Getpid())
}

// prepare readies a topic before its records are indexed: its index
// template installed by this transfer if it leads or acts alone; else by
// the leader, which this one waits for (the topic is held meanwhile).
// With no leader known (etcd unreachable, or an etcd role that does not
// let the transfers campaign) it installs the template itself rather than
// hold the topic: installing is idempotent, unlike retention, which only
// a leader runs.
func (d *Daemon) prepare(ctx context.Context, topic string) error {
	if d.elector == nil {
		return d.install(ctx, topic)
	}
	d.elector.Known(ctx, d.cfg.Discovery.Timeout)
	if d.elector.Confirm(ctx) == nil || d.elector.Status().Leader == "" {
		return d.install(ctx, topic)
	}
	return d.writer.HasTemplate(ctx, topic)
}

// lead runs the leader's jobs until ctx ends (the lead lost, or the
// daemon stopping): retention, and the index template of every topic
// served, installed once per term (the leader's [index] settings win).
func (d *Daemon) lead(ctx context.Context) error {
	var wg sync.WaitGroup
	if d.retention != nil {
		wg.Go(func() { _ = d.retention.Run(ctx) })
	}
	defer wg.Wait()
	if !d.cfg.ES.ManageTemplates {
		<-ctx.Done()
		return nil
	}
	installed := map[string]bool{}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		for _, topic := range d.topics.List() {
			if installed[topic] {
				continue
			}
			if err := d.elector.Confirm(ctx); err != nil {
				break
			}
			if err := d.install(ctx, topic); err != nil {
				d.thr.Log("template", d.log.WithError(err).WithField("topic", topic), logrus.WarnLevel, "leader: installing an index template failed; retrying")
				continue
			}
			installed[topic] = true
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (d *Daemon) discover(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.watch.Changed():
			d.topics.Update(d.watch.Latest())
		}
	}
}

// loadRetention applies the retention document from etcd as it changes.
func (d *Daemon) loadRetention(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.retWatch.Changed():
			snap := d.retWatch.Latest()
			kv, ok := snap.KVs[d.cfg.Discovery.RetentionKey]
			d.retOver.Update(kv.Value, kv.ModRevision, ok)
		}
	}
}

func (d *Daemon) loadPipelines(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.pipeWatch.Changed():
			snap := d.pipeWatch.Latest()
			defs := make(map[string]pipeline.Def, len(snap.KVs))
			for k, kv := range snap.KVs {
				defs[k] = pipeline.Def{Value: kv.Value, Revision: kv.ModRevision}
			}
			d.pipes.Update(snap.Revision, defs)
			d.savePipelineCache()
		}
	}
}

// ready is nil once the transfer knows the custom pipelines (from etcd or
// its cache), or at once when it does not watch them.
func (d *Daemon) ready() error {
	if d.pipeWatch == nil {
		return nil
	}
	return d.pipes.Ready()
}

// verifier is the ring as the consumer's Verifier (nil when off: a nil
// *Ring in the interface would not be nil).
func (d *Daemon) verifier() transfer.Verifier {
	if d.ring == nil {
		return nil
	}
	return d.ring
}

// keysReady is nil once the agents' keys are known, or at once when
// signatures are not checked.
func (d *Daemon) keysReady() error {
	if d.ring == nil {
		return nil
	}
	return d.ring.Ready()
}

func (d *Daemon) pipelineCachePath() string { return filepath.Join(d.cfg.DataDir, "pipelines.json") }

// loadPipelineCache loads the pipelines kept by the last run, so that a
// transfer started while etcd is unreachable processes records at once.
func (d *Daemon) loadPipelineCache() {
	data, err := os.ReadFile(d.pipelineCachePath())
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err == nil {
		err = d.pipes.LoadCache(data)
	}
	if err != nil {
		d.log.WithError(err).Warn("ignoring the pipeline cache; waiting for etcd")
	}
}

// savePipelineCache keeps the pipelines in force when they changed.
func (d *Daemon) savePipelineCache() {
	data, ok := d.pipes.MarshalCache()
	if !ok || bytes.Equal(data, d.savedPipes) {
		return
	}
	err := os.MkdirAll(d.cfg.DataDir, 0o700)
	if err == nil {
		err = fsutil.WriteAtomic(d.pipelineCachePath(), data, 0o600)
	}
	if err != nil {
		d.thr.Log("pipecache", d.log.WithError(err), logrus.WarnLevel, "saving the pipeline cache")
		return
	}
	d.savedPipes = data
}

func (d *Daemon) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	claims := d.consumer.Claims()
	sort.Strings(claims)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	st := map[string]any{"topics": d.topics.List(), "missing_topics": d.consumer.Missing(), "held_topics": d.consumer.Held(), "claims": claims, "joined": d.consumer.Joined(), "pipelines": d.pipes.Status(), "elasticsearch": d.writer.Status()}
	if d.retention != nil {
		st["retention"] = d.retention.Status()
	}
	if d.retOver != nil {
		st["retention_config"] = d.retOver.Status(d.cfg.Discovery.RetentionKey)
	}
	if d.elector != nil {
		st["leader"] = d.elector.Status()
	} else {
		st["leader"] = map[string]any{"id": instanceName(d.cfg), "leading": true, "alone": true}
	}
	_ = enc.Encode(st)
}

// serveIndices lists the indices of the topics served and what retention
// makes of each (logctl indices): nothing is deleted.
func (d *Daemon) serveIndices(w http.ResponseWriter, r *http.Request) {
	if d.retention == nil {
		http.Error(w, "the index pattern names no topic: the transfer cannot tell its indices apart", http.StatusNotImplemented)
		return
	}
	list, err := d.retention.List(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"indices": list})
}
