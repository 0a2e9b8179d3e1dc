// Package eswriter writes documents to Elasticsearch through a pool of bulk
// workers, honouring every item's result: 2xx acknowledges the document,
// 429/5xx and connection errors are retried with jittered backoff (the
// queue fills and Submit blocks, which pauses consumption), and a permanent
// per-item rejection goes to a dead-letter target. Nothing is acknowledged
// that Elasticsearch did not accept, and nothing is dropped. It knows
// nothing of Kafka.
//
// Documents are sent with the "create" action: a document whose _id is
// already stored (a re-delivery after a crash or a retry whose first answer
// was lost) is answered 409 and counted as already stored, so a re-sent
// record never rewrites what is there, and a producer that reuses another
// record's id cannot replace it.
//
// One batcher forms bulk requests (bulk_actions, bulk_bytes or
// flush_interval, whichever comes first) and hands them to idle workers,
// so requests are full under load and a document waits at most
// flush_interval when traffic is thin.
//
// The requests go through olivere/elastic's client (connections, auth,
// headers, error decoding), but the NDJSON body is built here from the
// ready-made documents and the response is scanned here: olivere's
// BulkService re-encodes every document twice (once to estimate the size)
// and decodes every item into a map, which was half of logtransfer's CPU.
// Its BulkProcessor is not used either: its After callback sees only the
// last retry's response, so which documents were finally accepted cannot
// be known from it; this pool keeps each document until its own item says
// so.
package eswriter

import (
	"bytes"
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
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/transfer/document"
)

// Doc is one document to index.
type Doc struct {
	Index string
	ID    string
	// Body is the document as bytes; when it is nil, Parts renders it
	// into the bulk request (the transfer's documents, kept as their
	// parts until then).
	Body  []byte
	Parts document.Parts
	// Time is the event time, for the write-to-index delay metric.
	Time time.Time
	// Origin is the record the document was made from, for the
	// dead-letter target to publish again; the writer does not look at
	// it.
	Origin Origin
	// Topic groups documents that Elasticsearch may hold back together
	// (see parking).
	Topic string

	Acker acktrack.Acker
	Seq   uint64

	// Reject, if set, is why the document must not be indexed: it goes
	// straight to the dead-letter target with this reason (a pipeline
	// over its per-document budget).
	Reject string
	// Quarantine marks a Reject for the record's origin, not its content
	// (a forged or unverifiable record): the dead-letter target keeps it
	// apart from the documents Elasticsearch refused.
	Quarantine bool

	held   bool // the last answer held it back for its topic's reason
	parked bool // counted among its topic's parked documents until settled
}

// Origin gives the Kafka record a document was made from (the consumer's
// own record type behind it: no copy per document).
type Origin interface {
	Record() Record
}

// Record is a Kafka record as the dead-letter target publishes it again.
type Record struct {
	Topic      string
	Partition  int32
	Offset     int64
	Key, Value []byte
	Headers    []*record.Header
	Timestamp  time.Time
}

func (d *Doc) size() int {
	if d.Body == nil {
		return d.Parts.Size()
	}
	return len(d.Body)
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
	// Pipeline names an Elasticsearch ingest pipeline for every document
	// ("": none).
	Pipeline string
	// Identify asks the engine which it is (GET /) for the log and
	// Status; off for stores that answer the bulk API only.
	Identify bool
}

// bulkDoer is what the writer needs of the Elasticsearch client to send a
// bulk request: olivere's *elastic.Client, or a scripted one in tests.
type bulkDoer interface {
	PerformRequest(ctx context.Context, opt elastic.PerformRequestOptions) (*elastic.Response, error)
}

// Writer is the bulk worker pool.
type Writer struct {
	cfg     Config
	client  *elastic.Client // templates
	bulkc   bulkDoer        // bulk requests
	dlq     DeadLetter
	log     *logrus.Entry
	thr     *logging.Throttle
	queue   chan []*Doc
	queued  atomic.Int64 // documents in queue
	batches chan []*Doc
	bufs    bufStack   // the workers' body buffers
	params  url.Values // of every bulk request
	up      atomic.Bool
	engine  atomic.Pointer[Engine] // nil until identified
	// noPipeline is set while Elasticsearch answers that the ingest
	// pipeline does not exist.
	noPipeline  atomic.Bool
	missingName atomic.Pointer[string]
	park        *parking
	m           metrics
}

type metrics struct {
	indexed    *prometheus.CounterVec
	created    prometheus.Counter
	updated    prometheus.Counter
	exists     prometheus.Counter
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
		cfg: cfg, client: client, bulkc: client, dlq: dlq,
		log:     log.WithField("component", "eswriter"),
		thr:     logging.NewThrottle(10 * time.Second),
		queue:   make(chan []*Doc, max(4, 2*cfg.BulkActions/256)),
		batches: make(chan []*Doc),
		park:    newParking(max(2*cfg.BulkActions, 512), cfg.RetryBackoffMax),
	}
	if cfg.Pipeline != "" {
		w.params = url.Values{"pipeline": {cfg.Pipeline}}
	}
	w.m = metrics{
		indexed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "logtransfer_docs_indexed_total",
			Help: "Documents acknowledged by Elasticsearch, by result (created; exists: a re-delivery of a document already stored, answered 409; updated: a store that ignores the create action overwrote one)."}, []string{"result"}),
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
		func() float64 { return float64(w.queued.Load()) })
	w.up.Store(true) // until a request fails
	w.m.created = w.m.indexed.WithLabelValues("created")
	w.m.updated = w.m.indexed.WithLabelValues("updated")
	w.m.exists = w.m.indexed.WithLabelValues("exists")
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

// Ready is nil while documents are being stored: the last request reached
// Elasticsearch, and the ingest pipeline, if one is set, exists.
func (w *Writer) Ready() error {
	switch {
	case !w.up.Load():
		return errors.New("last bulk request did not reach Elasticsearch")
	case w.noPipeline.Load() || len(w.park.held()) > 0:
		return fmt.Errorf("ingest pipeline %q does not exist in Elasticsearch", w.missing())
	}
	return nil
}

func (w *Writer) missing() string {
	if p := w.missingName.Load(); p != nil && (w.noPipeline.Load() || len(w.park.held()) > 0) {
		return *p
	}
	return ""
}

// Held lists the topics whose documents Elasticsearch holds back, with
// why; the other topics are written meanwhile.
func (w *Writer) Held() map[string]string { return w.park.held() }

// Status is what /status shows of the writer.
type Status struct {
	Up                    bool   `json:"up"`
	IngestPipeline        string `json:"ingest_pipeline,omitempty"`
	IngestPipelineMissing string `json:"ingest_pipeline_missing,omitempty"`
	Queued                int    `json:"queued"`
	// HeldTopics are the topics whose documents Elasticsearch holds back
	// (parked, retried with backoff; the others flow), with why.
	HeldTopics map[string]string `json:"held_topics,omitempty"`
	// Engine is the search engine, once it said which (GET /).
	Engine *Engine `json:"engine,omitempty"`
}

// Status reports the writer's state.
func (w *Writer) Status() Status {
	return Status{Up: w.up.Load(), IngestPipeline: w.cfg.Pipeline, IngestPipelineMissing: w.missing(), Queued: int(w.queued.Load()), HeldTopics: w.park.held(),
		Engine: w.engine.Load()}
}

// Submit queues docs (the writer owns the slice from then on), blocking
// while every worker is busy or retrying. It takes all of them or, when
// ctx ends first, none. Submitting what arrived together in one call
// costs one hand-off instead of one per document; the queue holds a few
// submissions (2×BulkActions/256, at least 4): about 2×BulkActions
// documents when callers pass up to 256 at once.
func (w *Writer) Submit(ctx context.Context, docs []*Doc) error {
	if len(docs) == 0 {
		return nil
	}
	if err := w.park.wait(ctx, docs[0].Topic); err != nil {
		return err
	}
	w.queued.Add(int64(len(docs)))
	select {
	case w.queue <- docs:
		return nil
	case <-ctx.Done():
		w.queued.Add(-int64(len(docs)))
		return ctx.Err()
	}
}

// Run runs the batcher and the workers until ctx ends; then the batch being
// formed is sent too, and every worker gets at most ShutdownTimeout to
// finish its request.
func (w *Writer) Run(ctx context.Context) error {
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(w.cfg.ShutdownTimeout, cancel) })
	defer stopTimer()
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for batch := range w.batches {
				w.bufs.put(w.flush(wctx, batch, w.bufs.get()), time.Now())
			}
		}()
	}
	identified := make(chan struct{})
	go func() {
		defer close(identified)
		w.identify(ctx)
	}()
	defer func() { <-identified }()
	parker := make(chan struct{})
	go func() {
		defer close(parker)
		w.park.run(ctx, w.cfg.BulkActions, func(docs []*Doc) bool {
			select {
			case w.batches <- docs:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	w.batcher(ctx)
	<-parker
	close(w.batches) // the batcher and the parker are the senders
	wg.Wait()
	return nil
}

// batcher forms bulk requests from the queue.
func (w *Writer) batcher(ctx context.Context) {
	var (
		batch []*Doc
		size  int
		timer = time.NewTimer(time.Hour)
	)
	defer timer.Stop()
	send := func() {
		w.batches <- batch // blocks while every worker is busy: backpressure
		batch, size = nil, 0
	}
	for {
		select {
		case docs := <-w.queue:
			w.queued.Add(-int64(len(docs)))
			for _, d := range docs {
				if batch == nil {
					batch = make([]*Doc, 0, min(w.cfg.BulkActions, 1024))
					timer.Reset(w.cfg.FlushInterval)
				}
				batch = append(batch, d)
				size += d.size() + len(d.ID) + len(d.Index) + 48
				if len(batch) >= w.cfg.BulkActions || size >= w.cfg.BulkBytes {
					send()
				}
			}
		case <-timer.C:
			if len(batch) > 0 {
				send()
			}
		case <-ctx.Done():
			if len(batch) > 0 {
				send()
			}
			return
		}
	}
}

// flush sends docs until every one is acknowledged or dead-lettered, or
// ctx ends (then the rest stays unacknowledged and is delivered again).
// buf is the worker's reusable body buffer.
func (w *Writer) flush(ctx context.Context, docs []*Doc, buf []byte) []byte {
	bo := backoff.Backoff{Min: 100 * time.Millisecond, Max: w.cfg.RetryBackoffMax}
	if slices.ContainsFunc(docs, func(d *Doc) bool { return d.Reject != "" }) {
		kept := make([]*Doc, 0, len(docs))
		for _, d := range docs {
			if d.Reject == "" {
				kept = append(kept, d)
			} else {
				w.deadLetter(ctx, d, d.Reject)
			}
		}
		docs = kept
	}
	for len(docs) > 0 && ctx.Err() == nil {
		var retry []*Doc
		retry, buf = w.bulk(ctx, docs, buf)
		if slices.ContainsFunc(retry, func(d *Doc) bool { return d.held }) {
			var held []*Doc
			retry, held = splitHeld(retry)
			w.m.retried.Add(float64(len(held)))
			w.park.park(held, "ingest pipeline "+strconv.Quote(w.missing())+" does not exist")
		}
		if len(retry) == 0 {
			break
		}
		w.m.retried.Add(float64(len(retry)))
		docs = retry
		backoff.Sleep(ctx, bo.Next())
	}
	if cap(buf) > 16<<20 {
		buf = nil // do not keep an outsized buffer after a burst
	}
	return buf
}

// splitHeld splits docs into those to retry at once and those held back.
func splitHeld(docs []*Doc) (retry, held []*Doc) {
	for _, d := range docs {
		if d.held {
			held = append(held, d)
		} else {
			retry = append(retry, d)
		}
	}
	return retry, held
}

// appendBody appends the NDJSON bulk body for docs.
func appendBody(buf []byte, docs []*Doc) []byte {
	for _, d := range docs {
		buf = append(buf, `{"create":{"_index":`...)
		buf = jsonenc.AppendString(buf, d.Index)
		buf = append(buf, `,"_id":`...)
		buf = jsonenc.AppendString(buf, d.ID)
		buf = append(buf, "}}\n"...)
		if d.Body == nil {
			buf = d.Parts.Render(buf)
		} else {
			buf = append(buf, d.Body...)
		}
		buf = append(buf, '\n')
	}
	return buf
}

// bulkResponse is the part of a bulk response the writer reads.
type bulkResponse struct {
	Errors bool                  `json:"errors"`
	Items  []map[string]bulkItem `json:"items"`
}

type bulkItem struct {
	Status int    `json:"status"`
	Result string `json:"result"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// noErrors reports whether a bulk response says "errors":false near its
// start, where Elasticsearch (and compatible stores) put it; then every
// item succeeded and the items need not be decoded.
func noErrors(body []byte) bool {
	head := body[:min(len(body), 80)]
	i := bytes.Index(head, []byte(`"errors"`))
	if i < 0 {
		return false
	}
	rest := bytes.TrimLeft(head[i+len(`"errors"`):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return false
	}
	return bytes.HasPrefix(bytes.TrimLeft(rest[1:], " \t\r\n"), []byte("false"))
}

// countItems counts the items of a bulk response without decoding it: each
// starts with its action ({"index":{ or {"create":{), and documents are not
// echoed, so nothing else in the body looks like that.
func countItems(body []byte) int {
	return bytes.Count(body, []byte(`{"index":{`)) + bytes.Count(body, []byte(`{"create":{`))
}

// bulk sends one bulk request and returns the documents to retry (and the
// body buffer for reuse).
func (w *Writer) bulk(ctx context.Context, docs []*Doc, buf []byte) ([]*Doc, []byte) {
	buf = appendBody(buf[:0], docs)
	start := time.Now()
	res, err := w.bulkc.PerformRequest(ctx, elastic.PerformRequestOptions{
		Method: "POST", Path: "/_bulk", Params: w.params, Body: bodyString(buf), ContentType: "application/x-ndjson",
	})
	w.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		return w.requestFailed(ctx, docs, err), buf
	}
	w.up.Store(true)
	now := time.Now()
	if noErrors(res.Body) && countItems(res.Body) == len(docs) {
		w.noPipeline.Store(false)
		// The count of updates, not which ones, is what the metric needs.
		updated := bytes.Count(res.Body, []byte(`"result":"updated"`))
		w.m.updated.Add(float64(updated))
		w.m.created.Add(float64(len(docs) - updated))
		for _, d := range docs {
			if !d.Time.IsZero() {
				w.m.delay.Observe(now.Sub(d.Time).Seconds())
			}
		}
		ackAll(docs)
		w.park.settle(docs...)
		w.m.requests.WithLabelValues("ok").Inc()
		return nil, buf
	}
	var resp bulkResponse
	if err := json.Unmarshal(res.Body, &resp); err != nil || len(resp.Items) != len(docs) {
		w.thr.Log("items", w.log.WithFields(logrus.Fields{"sent": len(docs), "items": len(resp.Items)}).WithError(err), logrus.WarnLevel, "bulk response does not match the request; retrying all")
		w.m.requests.WithLabelValues("error").Inc()
		return docs, buf
	}
	var retry []*Doc
	missing, missingName := 0, ""
	for i, item := range resp.Items {
		d := docs[i]
		d.held = false
		var r bulkItem
		found := false
		for _, v := range item {
			r, found = v, true
		}
		switch {
		case !found:
			retry = append(retry, d)
		case r.Status == 0 && r.Error == nil && !resp.Errors:
			// A compatible store that omits item statuses but says there
			// were no errors.
			w.ack(d, r.Result, now)
		case r.Status == 0: // no verdict
			retry = append(retry, d)
		case r.Status >= 200 && r.Status < 300:
			w.ack(d, r.Result, now)
		case alreadyStored(r):
			w.ack(d, "exists", now)
		case missingPipeline(r):
			if missing == 0 {
				missingName = strings.TrimSuffix(strings.TrimPrefix(r.Error.Reason, "pipeline with id ["), "] does not exist")
			}
			missing++
			d.held = true
			retry = append(retry, d)
		case retryableItem(r):
			retry = append(retry, d)
		default:
			w.deadLetter(ctx, d, itemReason(r))
		}
	}
	w.m.requests.WithLabelValues("partial").Inc()
	w.noPipeline.Store(missing > 0)
	if missing > 0 {
		w.missingName.Store(&missingName)
		w.thr.Log("nopipeline", w.log.WithFields(logrus.Fields{"pipeline": missingName, "items": missing}), logrus.ErrorLevel,
			"an ingest pipeline named by [es] pipeline or an index's default_pipeline does not exist in Elasticsearch: create it (PUT _ingest/pipeline/<name>) or stop naming it; documents are held and retried, none is dead-lettered")
	}
	if len(retry) > missing {
		w.thr.Log("retry", w.log.WithField("items", len(retry)), logrus.WarnLevel, "Elasticsearch rejected items temporarily (429/5xx); retrying with backoff")
	}
	return retry, buf
}

// bodyString is buf as a string without copying it (olivere takes a
// string body; a copy of every bulk body was most of what a request
// allocated). buf is not touched until PerformRequest has returned, and by
// then the server has answered: it judged the bytes it read, and a late
// write of a body it answered early (an error) cannot change that.
func bodyString(buf []byte) string {
	if len(buf) == 0 {
		return ""
	}
	return unsafe.String(&buf[0], len(buf))
}

// requestFailed handles a bulk request that failed as a whole.
func (w *Writer) requestFailed(ctx context.Context, docs []*Doc, err error) []*Doc {
	w.m.requests.WithLabelValues("error").Inc()
	var ee *elastic.Error
	status := 0
	if errors.As(err, &ee) {
		status = ee.Status
	}
	// Only a request Elasticsearch could not take as sent (413 too large, or
	// 400: a body it could not parse) is about the documents; any other
	// answer (401/403 an expired credential, 404/407 a proxy or path, 429,
	// 5xx, no answer) is an outage: retry everything with backoff, never
	// dead-letter for it.
	aboutDocs := status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest
	if !aboutDocs {
		switch status {
		case 0, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusProxyAuthRequired:
			w.up.Store(false) // not reached, or refused: not ready
		default:
			w.up.Store(true) // reached and busy (429, 5xx)
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
		r1, _ := w.bulk(ctx, docs[:h], nil)
		r2, _ := w.bulk(ctx, docs[h:], nil)
		return append(r1, r2...)
	}
	w.deadLetter(ctx, docs[0], fmt.Sprintf("%d %v", status, err))
	return nil
}

// retryableItem reports whether an item failed for a reason that passes:
// rejected for load (429), a server error or timeout, a missing or
// read-only index block (cluster_block_exception), or a permission
// (security_exception) that an operator will restore.
func retryableItem(r bulkItem) bool {
	if r.Status == http.StatusTooManyRequests || r.Status >= 500 || r.Status == http.StatusRequestTimeout {
		return true
	}
	if r.Error != nil {
		switch r.Error.Type {
		case "cluster_block_exception", "security_exception":
			return true
		}
	}
	return r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden
}

// missingPipeline reports whether an item failed because its ingest
// pipeline ([es] pipeline, or the index's default_pipeline) does not
// exist: a configuration to fix, not a bad document, so it is retried
// until the pipeline is created.
func missingPipeline(r bulkItem) bool {
	return r.Error != nil && r.Error.Type == "illegal_argument_exception" &&
		strings.HasPrefix(r.Error.Reason, "pipeline with id [") && strings.HasSuffix(r.Error.Reason, "] does not exist")
}

// alreadyStored reports whether a create item failed because its _id is
// stored: the document is there, which is what the writer wants.
func alreadyStored(r bulkItem) bool {
	return r.Status == http.StatusConflict && (r.Error == nil || r.Error.Type == "version_conflict_engine_exception")
}

func itemReason(r bulkItem) string {
	if r.Error != nil {
		return fmt.Sprintf("%d %s: %s", r.Status, r.Error.Type, r.Error.Reason)
	}
	return fmt.Sprintf("%d %s", r.Status, r.Result)
}

func (w *Writer) ack(d *Doc, result string, now time.Time) {
	switch result {
	case "updated":
		w.m.updated.Inc()
	case "exists":
		w.m.exists.Inc()
	default:
		w.m.created.Inc()
	}
	if !d.Time.IsZero() && result != "exists" {
		w.m.delay.Observe(now.Sub(d.Time).Seconds())
	}
	d.Acker.Ack(d.Seq)
	w.park.settle(d)
}

// batchAcker is an Acker that takes many sequence numbers in one call
// (acktrack.Tracker: one lock for them all).
type batchAcker interface {
	AckBatch(seqs []uint64)
}

// ackAll acknowledges docs, each run of documents of one Acker (one
// partition's, submitted together) in one call where the Acker can.
func ackAll(docs []*Doc) {
	var seqs []uint64
	for i := 0; i < len(docs); {
		a, j := docs[i].Acker, i+1
		for j < len(docs) && docs[j].Acker == a {
			j++
		}
		if b, ok := a.(batchAcker); ok && j-i > 1 {
			if seqs == nil {
				seqs = make([]uint64, 0, len(docs))
			}
			seqs = seqs[:0]
			for _, d := range docs[i:j] {
				seqs = append(seqs, d.Seq)
			}
			b.AckBatch(seqs)
		} else {
			for _, d := range docs[i:j] {
				a.Ack(d.Seq)
			}
		}
		i = j
	}
}

// deadLetter hands d to the dead-letter target, retrying until it takes
// it (or ctx ends: then d stays unacknowledged and comes back).
func (w *Writer) deadLetter(ctx context.Context, d *Doc, reason string) {
	bo := backoff.Backoff{Min: 200 * time.Millisecond, Max: w.cfg.RetryBackoffMax}
	for ctx.Err() == nil {
		err := w.dlq.Send(ctx, d, reason)
		if err == nil {
			if d.Quarantine {
				w.thr.Log("quarantine", w.log.WithFields(logrus.Fields{"id": d.ID, "reason": reason}), logrus.WarnLevel, "record quarantined, not indexed")
			} else {
				w.m.dead.Inc()
				w.thr.Log("dlq", w.log.WithFields(logrus.Fields{"index": d.Index, "id": d.ID, "reason": reason}), logrus.WarnLevel, "document rejected; sent to the dead-letter topic")
			}
			d.Acker.Ack(d.Seq)
			w.park.settle(d)
			return
		}
		w.thr.Log("dlqerr", w.log.WithError(err), logrus.ErrorLevel, "dead-letter send failed; retrying")
		backoff.Sleep(ctx, bo.Next())
	}
}
