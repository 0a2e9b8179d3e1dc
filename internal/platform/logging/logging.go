// Package logging configures logrus for the daemons and throttles
// repeated messages, so a failing dependency produces one line every few
// seconds instead of one per retry.
package logging

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// New returns a logger writing to w at level in format ("text" or "json").
func New(w io.Writer, level, format, daemon string) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(w)
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("parsing log level: %w", err)
	}
	l.SetLevel(lv)
	if format == "json" {
		l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, TimestampFormat: time.RFC3339Nano, DisableColors: true})
	}
	return l.WithField("daemon", daemon), nil
}

// Throttle lets one message per key through per interval and counts the
// ones it held back.
type Throttle struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[string]time.Time
	held     map[string]int
}

// NewThrottle returns a Throttle with the given interval.
func NewThrottle(interval time.Duration) *Throttle {
	return &Throttle{interval: interval, last: map[string]time.Time{}, held: map[string]int{}}
}

// Allow reports whether a message for key may be logged now, and how many
// were suppressed since the last one that was.
func (t *Throttle) Allow(key string) (ok bool, suppressed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	if last, seen := t.last[key]; seen && now.Sub(last) < t.interval {
		t.held[key]++
		return false, 0
	}
	t.last[key] = now
	n := t.held[key]
	delete(t.held, key)
	if len(t.last) > 10000 { // keys are bounded in practice; never grow without bound
		for k, v := range t.last {
			if now.Sub(v) > t.interval {
				delete(t.last, k)
			}
		}
	}
	return true, n
}

// Log logs e at level through the throttle.
func (t *Throttle) Log(key string, e *logrus.Entry, level logrus.Level, msg string) {
	ok, n := t.Allow(key)
	if !ok {
		return
	}
	if n > 0 {
		e = e.WithField("suppressed", n)
	}
	e.Log(level, msg)
}
