// Package eswriter writes documents to Elasticsearch through a pool of bulk
// workers on olivere/elastic's BulkService, honouring every item's result:
// 2xx acknowledges the document, 429/5xx and connection errors are retried
// with jittered backoff (the queue fills and Submit blocks, which pauses
// consumption), and a permanent per-item rejection goes to a dead-letter
// target. Nothing is acknowledged that Elasticsearch did not accept, and
// nothing is dropped. It knows nothing of Kafka.
//
// Why not olivere's BulkProcessor: its After callback sees only the last
// retry's response, so which documents were finally accepted cannot be
// known from it; this pool keeps each document until its own item says so.
package eswriter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/backoff"
	"github.com/logpipe/logpipe/internal/logging"
	"github.com/logpipe/logpipe/internal/record"
)

// Doc is one document to index.
type Doc struct {
	Index string
	ID    string
	Body  []byte
	// Time is the event time, for the write-to-index delay metric.
	Time time.Time
	// Origin is what the dead-letter target needs to re-publish the
	// source record; the writer does not look at it.
	Origin any

	Acker record.Acker
	Seq   uint64
}

// DeadLetter takes documents Elasticsearch rejected for good (e.g. a
// mapping error). Send must return nil only once the document is safely
// stored elsewhere.
type DeadLetter interface {
	Send(ctx context.Context, d *Doc, reason string) error
}

// Config shapes the pool.
type Config struct {
	Workers         int
	BulkActions     int
	BulkBytes       int
	FlushInterval   time.Duration
	RetryBackoffMax time.Duration
	ShutdownTimeout time.Duration
}

// Writer is the bulk worker pool.
type Writer struct {
	cfg    Config
	client *elastic.Client
	dlq    DeadLetter
	log    *logrus.Entry
	thr    *logging.Throttle
	queue  chan *Doc
	up     atomic.Bool
	m      metrics
}

type metrics struct {
	indexed    *prometheus.CounterVec
	retried    prometheus.Counter
	dead       prometheus.Counter
	requests   *prometheus.CounterVec
	duration   prometheus.Histogram
	delay      prometheus.Histogram
	queue      prometheus.GaugeFunc
	lastStatus prometheus.GaugeFunc
}

// New returns a writer; call Run, then Submit.
func New(cfg Config, client *elastic.Client, dlq DeadLetter, log *logrus.Entry, reg prometheus.Registerer) *Writer {
	w := &Writer{
		cfg: cfg, client: client, dlq: dlq,
		log:   log.WithField("component", "eswriter"),
		thr:   logging.NewThrottle(10 * time.Second),
		queue: make(chan *Doc, cfg.Workers*cfg.BulkActions),
	}
	w.m = metrics{
		indexed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logtransfer_docs_indexed_total",
			Help: "Documents acknowledged by Elasticsearch, by result (created, or updated: an overwrite of an earlier delivery)."}, []string{"result"}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_docs_retried_total", Help: "Document sends retried after 429, 5xx or a connection error."}),
		dead:    prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_docs_dead_lettered_total", Help: "Documents rejected for good and sent to the dead-letter topic."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logtransfer_bulk_requests_total",
			Help: "Bulk requests, by outcome (ok, partial: some items failed, error: the whole request failed)."}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logtransfer_bulk_duration_seconds", Help: "Bulk request latency.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "logtransfer_index_delay_seconds",
			Help:    "From the line being read by the agent to its document being acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16)}),
	}
	w.m.lastStatus = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logtransfer_es_up", Help: "1 if the last bulk request reached Elasticsearch."},
		func() float64 {
			if w.up.Load() {
				return 1
			}
			return 0
		})
	w.m.queue = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logtransfer_es_queue_length", Help: "Documents waiting for a bulk worker."},
		func() float64 { return float64(len(w.queue)) })
	w.up.Store(true) // until a request fails
	for _, r := range []string{"created", "updated"} {
		w.m.indexed.WithLabelValues(r)
	}
	for _, o := range []string{"ok", "partial", "error"} {
		w.m.requests.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(w.m.indexed, w.m.retried, w.m.dead, w.m.requests, w.m.duration, w.m.delay, w.m.queue, w.m.lastStatus)
	}
	return w
}

// Up reports whether the last request reached Elasticsearch (true before
// the first).
func (w *Writer) Up() bool { return w.up.Load() }

// Submit queues d, blocking while every worker is busy or retrying.
func (w *Writer) Submit(ctx context.Context, d *Doc) error {
	select {
	case w.queue <- d:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the workers until ctx ends; each then sends its partial batch
// (for at most ShutdownTimeout) and stops.
func (w *Writer) Run(ctx context.Context) error {
	done := make(chan struct{})
	for i := 0; i < w.cfg.Workers; i++ {
		go func() {
			defer func() { done <- struct{}{} }()
			w.worker(ctx)
		}()
	}
	for i := 0; i < w.cfg.Workers; i++ {
		<-done
	}
	return nil
}

func (w *Writer) worker(ctx context.Context) {
	var (
		batch []*Doc
		size  int
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	flush := func(fctx context.Context) {
		w.flush(fctx, batch)
		batch, size = nil, 0
	}
	for {
		select {
		case d := <-w.queue:
			batch = append(batch, d)
			size += len(d.Body) + len(d.ID) + len(d.Index) + 48
			if len(batch) == 1 {
				timer.Reset(w.cfg.FlushInterval)
			}
			if len(batch) >= w.cfg.BulkActions || size >= w.cfg.BulkBytes {
				flush(ctx)
			}
		case <-timer.C:
			if len(batch) > 0 {
				flush(ctx)
			}
		case <-ctx.Done():
			if len(batch) > 0 {
				sctx, cancel := context.WithTimeout(context.Background(), w.cfg.ShutdownTimeout)
				flush(sctx)
				cancel()
			}
			return
		}
	}
}

// flush sends docs until every one is acknowledged or dead-lettered, or
// ctx ends (then the rest stays unacknowledged and is delivered again).
func (w *Writer) flush(ctx context.Context, docs []*Doc) {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: w.cfg.RetryBackoffMax}
	for len(docs) > 0 && ctx.Err() == nil {
		retry := w.bulk(ctx, docs)
		if len(retry) == 0 {
			return
		}
		w.m.retried.Add(float64(len(retry)))
		docs = retry
		backoff.Sleep(ctx, bo.Next())
	}
}

// bulk sends one bulk request and returns the documents to retry.
func (w *Writer) bulk(ctx context.Context, docs []*Doc) []*Doc {
	svc := w.client.Bulk()
	for _, d := range docs {
		svc.Add(elastic.NewBulkIndexRequest().Index(d.Index).Id(d.ID).Doc(json.RawMessage(d.Body)))
	}
	start := time.Now()
	resp, err := svc.Do(ctx)
	w.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		return w.requestFailed(ctx, docs, err)
	}
	w.up.Store(true)
	if len(resp.Items) != len(docs) {
		if !resp.Errors {
			// Some ES-compatible stores answer without per-item results.
			for _, d := range docs {
				w.ack(d, "created")
			}
			w.m.requests.WithLabelValues("ok").Inc()
			return nil
		}
		w.thr.Log("items", w.log.WithFields(logrus.Fields{"sent": len(docs), "items": len(resp.Items)}), logrus.WarnLevel, "bulk response does not match the request; retrying all")
		w.m.requests.WithLabelValues("error").Inc()
		return docs
	}
	var retry []*Doc
	for i, item := range resp.Items {
		d := docs[i]
		var r *elastic.BulkResponseItem
		for _, v := range item {
			r = v
		}
		switch {
		case r == nil:
			retry = append(retry, d)
		case r.Status >= 200 && r.Status < 300:
			w.ack(d, r.Result)
		case r.Status == http.StatusTooManyRequests || r.Status >= 500 || r.Status == http.StatusRequestTimeout:
			retry = append(retry, d)
		default:
			w.deadLetter(ctx, d, itemReason(r))
		}
	}
	if len(retry) > 0 || resp.Errors {
		w.m.requests.WithLabelValues("partial").Inc()
		if len(retry) > 0 {
			w.thr.Log("retry", w.log.WithField("items", len(retry)), logrus.WarnLevel, "Elasticsearch rejected items temporarily (429/5xx); retrying with backoff")
		}
	} else {
		w.m.requests.WithLabelValues("ok").Inc()
	}
	return retry
}

// requestFailed handles a bulk request that failed as a whole.
func (w *Writer) requestFailed(ctx context.Context, docs []*Doc, err error) []*Doc {
	w.m.requests.WithLabelValues("error").Inc()
	var ee *elastic.Error
	status := 0
	if errors.As(err, &ee) {
		status = ee.Status
	}
	permanent := status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout
	if status == 0 || !permanent {
		if status == 0 {
			w.up.Store(false)
		} else {
			w.up.Store(true)
		}
		if ctx.Err() == nil {
			w.thr.Log("request", w.log.WithError(err).WithField("status", status), logrus.WarnLevel, "bulk request failed; retrying with backoff")
		}
		return docs
	}
	w.up.Store(true)
	// A 4xx for the whole request (413 too large, or a body ES could not
	// parse): split until the document at fault is alone, then dead-letter
	// it, so one bad document cannot stall the pipeline.
	if len(docs) > 1 {
		h := len(docs) / 2
		return append(w.bulk(ctx, docs[:h]), w.bulk(ctx, docs[h:])...)
	}
	w.deadLetter(ctx, docs[0], fmt.Sprintf("%d %v", status, err))
	return nil
}

func itemReason(r *elastic.BulkResponseItem) string {
	if r.Error != nil {
		return fmt.Sprintf("%d %s: %s", r.Status, r.Error.Type, r.Error.Reason)
	}
	return fmt.Sprintf("%d %s", r.Status, r.Result)
}

func (w *Writer) ack(d *Doc, result string) {
	if result != "updated" {
		result = "created"
	}
	w.m.indexed.WithLabelValues(result).Inc()
	if !d.Time.IsZero() {
		w.m.delay.Observe(time.Since(d.Time).Seconds())
	}
	d.Acker.Ack(d.Seq)
}

// deadLetter hands d to the dead-letter target, retrying until it takes
// it (or ctx ends: then d stays unacknowledged and comes back).
func (w *Writer) deadLetter(ctx context.Context, d *Doc, reason string) {
	bo := backoff.Backoff{Min: 200 * time.Millisecond, Max: w.cfg.RetryBackoffMax}
	for ctx.Err() == nil {
		err := w.dlq.Send(ctx, d, reason)
		if err == nil {
			w.m.dead.Inc()
			w.thr.Log("dlq", w.log.WithFields(logrus.Fields{"index": d.Index, "id": d.ID, "reason": reason}), logrus.WarnLevel, "document rejected by Elasticsearch; sent to the dead-letter topic")
			d.Acker.Ack(d.Seq)
			return
		}
		w.thr.Log("dlqerr", w.log.WithError(err), logrus.ErrorLevel, "dead-letter send failed; retrying")
		backoff.Sleep(ctx, bo.Next())
	}
}
