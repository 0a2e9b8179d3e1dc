package indexlife

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
)

// Limits of a retention document from etcd: it is untrusted input.
const (
	MaxOverrideBytes  = 64 << 10
	MaxOverrideTopics = 10000
	MaxRetentionDays  = 36500
)

// OverrideDoc is the retention set in etcd ([etcd] retention_key), which
// replaces the ini's without a restart:
//
//	{"default_days": 14, "topics": {"web_log": 7, "audit": 0}}
//
// A topic named in topics takes its days (0 keeps its indices for ever);
// the others take default_days when it is set, else what the ini says.
type OverrideDoc struct {
	DefaultDays *int           `json:"default_days,omitempty"`
	Topics      map[string]int `json:"topics,omitempty"`
}

// ParseOverrides reads and checks a retention document: one JSON object of
// the fields above and nothing else, days from 0 to MaxRetentionDays,
// topics named as Kafka allows, within the size limits. Every problem is
// reported, by topic, sorted.
func ParseOverrides(b []byte) (*OverrideDoc, error) {
	if len(b) > MaxOverrideBytes {
		return nil, fmt.Errorf("retention document is %d bytes, at most %d", len(b), MaxOverrideBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d OverrideDoc
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("retention document: %w (want {\"default_days\": N, \"topics\": {\"<topic>\": N}})", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("retention document: data after the JSON object")
	}
	var errs []error
	if d.DefaultDays != nil && (*d.DefaultDays < 0 || *d.DefaultDays > MaxRetentionDays) {
		errs = append(errs, fmt.Errorf("default_days %d: want 0 (keep for ever) to %d", *d.DefaultDays, MaxRetentionDays))
	}
	if len(d.Topics) > MaxOverrideTopics {
		errs = append(errs, fmt.Errorf("topics names %d topics, at most %d", len(d.Topics), MaxOverrideTopics))
	}
	for _, t := range slices.Sorted(maps.Keys(d.Topics)) {
		if err := collectconf.ValidTopic(t); err != nil {
			errs = append(errs, fmt.Errorf("topics: %w", err))
		}
		if n := d.Topics[t]; n < 0 || n > MaxRetentionDays {
			errs = append(errs, fmt.Errorf("topics: %q: %d days, want 0 (keep for ever) to %d", t, n, MaxRetentionDays))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &d, nil
}

// Overrides holds the retention document in force from etcd (the last
// valid one), and what became of the last one put.
type Overrides struct {
	log    *logrus.Entry
	errors prometheus.Counter

	mu      sync.Mutex
	doc     *OverrideDoc // nil: none, the ini's retention
	rev     int64        // its etcd mod revision
	lastErr string       // why the last document put was refused ("": it was not)
	errRev  int64
}

// OverrideStatus is what /status shows of the retention from etcd.
type OverrideStatus struct {
	Key      string       `json:"key"`
	Revision int64        `json:"revision"` // of the document in force (0: none)
	InForce  *OverrideDoc `json:"in_force,omitempty"`
	// Error is why the document at Key, at ErrorRevision, was refused;
	// the one in force stays.
	Error         string `json:"error,omitempty"`
	ErrorRevision int64  `json:"error_revision,omitempty"`
}

// NewOverrides returns an empty Overrides (the ini's retention); reg may be
// nil.
func NewOverrides(log *logrus.Entry, reg prometheus.Registerer) *Overrides {
	o := &Overrides{log: log.WithField("component", "retention"),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_retention_config_errors_total",
			Help: "Retention documents from etcd refused as invalid (the one in force stays)."})}
	if reg != nil {
		reg.MustRegister(o.errors)
	}
	return o
}

// Update applies what etcd holds at the key: value at mod revision rev, or
// nothing (present false: back to the ini's retention). An invalid value
// is refused whole: logged, counted and shown, and the document in force
// stays.
func (o *Overrides) Update(value []byte, rev int64, present bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !present {
		if o.doc != nil {
			o.log.Info("retention document deleted from etcd: the ini's retention is in force")
		}
		o.doc, o.rev, o.lastErr, o.errRev = nil, 0, "", 0
		return
	}
	if rev == o.rev || rev == o.errRev {
		return
	}
	d, err := ParseOverrides(value)
	if err != nil {
		o.lastErr, o.errRev = err.Error(), rev
		o.errors.Inc()
		o.log.WithError(err).WithField("revision", rev).Error("retention document from etcd refused; the one in force stays")
		return
	}
	o.doc, o.rev, o.lastErr, o.errRev = d, rev, "", 0
	l := o.log.WithField("revision", rev).WithField("topics", len(d.Topics))
	if d.DefaultDays != nil {
		l = l.WithField("default_days", *d.DefaultDays)
	}
	l.Info("retention document from etcd in force")
}

// Days is topic's retention: the document's for the topic, else its
// default_days, else ini (the ini's for the topic).
func (o *Overrides) Days(topic string, ini int) int {
	if o == nil {
		return ini
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.doc == nil {
		return ini
	}
	if n, ok := o.doc.Topics[topic]; ok {
		return n
	}
	if o.doc.DefaultDays != nil {
		return *o.doc.DefaultDays
	}
	return ini
}

// Status reports the document in force and the last refusal.
func (o *Overrides) Status(key string) OverrideStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	return OverrideStatus{Key: key, Revision: o.rev, InForce: o.doc, Error: o.lastErr, ErrorRevision: o.errRev}
}
