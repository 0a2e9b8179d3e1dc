// Package influx pushes line protocol points to InfluxDB (1.x /write or
// 2.x /api/v2/write): batched, gzip, retried with backoff, and bounded in
// memory. Metrics are not lines: when the bound is reached the oldest
// points go, and every one that goes is counted.
package influx

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

// Target is where points go.
type Target struct {
	// URL is the write endpoint with its database or bucket; the writer
	// adds precision=ns.
	URL string
	// Token, if set, is sent as "Authorization: Token <Token>" (2.x
	// tokens; 1.x takes "user:password").
	Token     string
	MaxPoints int
}

// MaxBatch is the most points one request carries.
const MaxBatch = 5000

// Writer holds points and pushes them to its target.
type Writer struct {
	log    *logrus.Entry
	thr    *logging.Throttle
	client *http.Client
	retry  backoff.Backoff // between failed pushes

	mu     sync.Mutex
	target *Target
	url    string // target.URL with precision=ns
	queue  [][]byte
	head   uint64 // how many points ever left the queue: queue[0]'s number
	// lastErr is the last push's error ("" after a success).
	lastErr string
	notify  chan struct{}
	// zw is Run's compressor, reset for each push: a new one allocates
	// nearly a megabyte of state, which at a push per collection would
	// drive the idle agent's collections.
	zw *gzip.Writer

	sent, dropped, failed prometheus.Counter
	queued                prometheus.GaugeFunc
}

// New returns a Writer with no target (Add drops nothing and keeps
// nothing until one is set).
func New(log *logrus.Entry, reg prometheus.Registerer) *Writer {
	w := &Writer{
		log:    log.WithField("component", "influx"),
		thr:    logging.NewThrottle(time.Minute),
		client: &http.Client{Timeout: 30 * time.Second},
		retry:  backoff.Backoff{Min: time.Second, Max: time.Minute},
		notify: make(chan struct{}, 1),
		sent:   prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_influx_points_sent_total", Help: "Host metric points InfluxDB accepted."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_influx_points_dropped_total",
			Help: "Host metric points dropped: the oldest when the buffer was full, or ones InfluxDB refused for good (4xx)."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "logagent_influx_write_errors_total", Help: "Pushes to InfluxDB that failed (each is retried unless refused for good)."}),
	}
	w.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_influx_points_queued", Help: "Host metric points waiting to be pushed to InfluxDB."},
		func() float64 {
			w.mu.Lock()
			defer w.mu.Unlock()
			return float64(len(w.queue))
		})
	if reg != nil {
		reg.MustRegister(w.sent, w.dropped, w.failed, w.queued)
	}
	return w
}

// Set changes the target; nil stops pushing and drops what is held. A
// new URL or token keeps the points held (they go to the new target).
func (w *Writer) Set(t *Target) error {
	var full string
	if t != nil {
		u, err := url.Parse(t.URL)
		if err != nil {
			return fmt.Errorf("parsing the InfluxDB URL: %w", err)
		}
		q := u.Query()
		q.Set("precision", "ns")
		u.RawQuery = q.Encode()
		full = u.String()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.target, w.url = t, full
	if t == nil {
		w.head += uint64(len(w.queue))
		w.queue, w.lastErr = nil, ""
		return nil
	}
	w.trim()
	return nil
}

// Err is the last push's error, "" if it succeeded (or none was made).
func (w *Writer) Err() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastErr
}

// Add queues the points of a line protocol block (one per line).
func (w *Writer) Add(block []byte) {
	w.mu.Lock()
	if w.target == nil {
		w.mu.Unlock()
		return
	}
	for len(block) > 0 {
		i := bytes.IndexByte(block, '\n')
		if i < 0 {
			i = len(block) - 1
		}
		w.queue = append(w.queue, block[:i+1])
		block = block[i+1:]
	}
	w.trim()
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// trim drops the oldest points past the bound. The caller holds mu.
func (w *Writer) trim() {
	if n := len(w.queue) - w.target.MaxPoints; n > 0 {
		clear(w.queue[:n])
		w.queue = w.queue[n:]
		w.head += uint64(n)
		w.dropped.Add(float64(n))
		w.thr.Log("full", w.log.WithField("dropped", n), logrus.WarnLevel, "InfluxDB buffer full: oldest points dropped")
	}
}

// Run pushes what is queued until ctx ends; then it makes one last try
// (bounded by a few seconds) for what is left.
func (w *Writer) Run(ctx context.Context) error {
	bo := w.retry
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			w.push(last)
			cancel()
			return nil
		case <-w.notify:
		}
		for {
			ok, more := w.push(ctx)
			if !ok {
				if !backoff.Sleep(ctx, bo.Next()) {
					break
				}
				continue
			}
			bo.Reset()
			if !more {
				break
			}
		}
	}
}

// push sends up to MaxBatch points. ok is false when they should be sent
// again later; more, when points are left after a success.
func (w *Writer) push(ctx context.Context) (ok, more bool) {
	w.mu.Lock()
	if w.target == nil || len(w.queue) == 0 {
		w.mu.Unlock()
		return true, false
	}
	n := min(len(w.queue), MaxBatch)
	batch := append([][]byte(nil), w.queue[:n]...)
	first := w.head
	target, u := *w.target, w.url
	w.mu.Unlock()

	status, err := w.post(ctx, u, target.Token, batch)
	permanent := status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout &&
		status != http.StatusUnauthorized && status != http.StatusForbidden && status != http.StatusNotFound
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.target == nil || w.url != u {
		return true, len(w.queue) > 0 // the target changed meanwhile: start over with the new one
	}
	if err != nil && !permanent {
		w.failed.Inc()
		w.lastErr = err.Error()
		w.thr.Log("push", w.log.WithError(err), logrus.WarnLevel, "pushing to InfluxDB failed; retrying")
		return false, true
	}
	// Sent, or refused for good: those points leave the queue (trim may
	// have dropped the oldest of them meanwhile).
	if end := first + uint64(n); end > w.head {
		k := min(int(end-w.head), len(w.queue))
		clear(w.queue[:k])
		w.queue = w.queue[k:]
		w.head += uint64(k)
	}
	if err != nil {
		w.failed.Inc()
		w.dropped.Add(float64(n))
		w.lastErr = err.Error()
		w.thr.Log("refused", w.log.WithError(err), logrus.ErrorLevel, "InfluxDB refused points for good; dropped")
		return true, len(w.queue) > 0
	}
	w.sent.Add(float64(n))
	w.lastErr = ""
	return true, len(w.queue) > 0
}

func (w *Writer) post(ctx context.Context, u, token string, batch [][]byte) (int, error) {
	var body bytes.Buffer
	if w.zw == nil {
		w.zw, _ = gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level: no error
	}
	zw := w.zw
	zw.Reset(&body)
	for _, p := range batch {
		zw.Write(p)
	}
	if err := zw.Close(); err != nil {
		return 0, fmt.Errorf("compressing points: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, &body)
	if err != nil {
		return 0, fmt.Errorf("building the InfluxDB request: %w", err)
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Content-Encoding", "gzip")
	if token != "" {
		req.Header.Set("Authorization", "Token "+token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("writing to InfluxDB: %w", redact(err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("InfluxDB answered %d: %s", resp.StatusCode, strconv.Quote(string(bytes.TrimSpace(msg))))
	}
	return resp.StatusCode, nil
}

// redact keeps an URL error's operation and cause, without the URL's
// query (a 2.x org or 1.x user could be in it).
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
