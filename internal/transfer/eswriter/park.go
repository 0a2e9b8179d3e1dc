package eswriter

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// Documents Elasticsearch holds back for a reason of their topic's (the
// ingest pipeline its index names does not exist) are parked here, per
// topic, instead of being retried by the worker that sent them: a worker
// looping on one topic's documents is a worker lost to every other topic,
// and with a few such batches every worker was. A parker re-sends each
// topic's documents after a backoff of its own; while a topic has
// parkLimit documents parked and not yet settled (acknowledged or
// dead-lettered), Submit takes no more of that topic (its claims wait), so
// the other topics keep the workers and the memory.
type parking struct {
	limit int
	max   time.Duration // longest backoff

	mu     sync.Mutex
	topics map[string]*parked
	wake   chan struct{} // something was parked
	// outstanding counts documents parked and not yet acknowledged or
	// dead-lettered (waiting, or re-sent), over all topics.
	outstanding atomic.Int64
}

type parked struct {
	docs   []*Doc
	out    int       // documents parked and not yet settled (docs, and those re-sent)
	due    time.Time // when docs are sent again
	bo     backoff.Backoff
	last   time.Time     // when docs were last parked
	room   chan struct{} // closed when out goes below limit
	reason string
}

func newParking(limit int, maxBackoff time.Duration) *parking {
	return &parking{limit: limit, max: maxBackoff, topics: map[string]*parked{}, wake: make(chan struct{}, 1)}
}

// park takes docs (all of one reason) out of the worker.
func (p *parking) park(docs []*Doc, reason string) {
	now := time.Now()
	p.mu.Lock()
	for _, d := range docs {
		t := p.topics[d.Topic]
		if t == nil {
			t = &parked{bo: backoff.Backoff{Min: 200 * time.Millisecond, Max: p.max}, room: make(chan struct{})}
			p.topics[d.Topic] = t
		}
		if len(t.docs) == 0 {
			if now.Sub(t.last) > 2*p.max {
				t.bo.Reset() // held again after a long while: start over
			}
			t.due = now.Add(t.bo.Next())
		}
		t.docs = append(t.docs, d)
		t.last, t.reason = now, reason
		if !d.parked {
			d.parked = true
			t.out++
			p.outstanding.Add(1)
		}
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// settle takes docs that were acknowledged or dead-lettered off the
// count of their topics' parked documents.
func (p *parking) settle(docs ...*Doc) {
	if p.outstanding.Load() == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range docs {
		if !d.parked {
			continue
		}
		d.parked = false
		p.outstanding.Add(-1)
		t := p.topics[d.Topic]
		if t.out--; t.out == p.limit-1 {
			close(t.room)
			t.room = make(chan struct{})
		}
	}
}

// wait blocks while topic has limit documents parked.
func (p *parking) wait(ctx context.Context, topic string) error {
	for {
		p.mu.Lock()
		t := p.topics[topic]
		if t == nil || t.out < p.limit {
			p.mu.Unlock()
			return nil
		}
		room := t.room
		p.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// held lists the topics with parked documents not yet settled, with why.
func (p *parking) held() map[string]string {
	if p.outstanding.Load() == 0 {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out map[string]string
	for name, t := range p.topics {
		if t.out > 0 {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = t.reason
		}
	}
	return out
}

// due takes the documents whose backoff is over, and returns when the next
// are due (zero: none parked).
func (p *parking) due(now time.Time) ([]*Doc, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*Doc
	var next time.Time
	for _, t := range p.topics {
		if len(t.docs) == 0 {
			continue
		}
		if !t.due.After(now) {
			out = append(out, t.docs...)
			t.docs = nil
			continue
		}
		if next.IsZero() || t.due.Before(next) {
			next = t.due
		}
	}
	return out, next
}

// run re-sends parked documents when due, in batches of at most size,
// until ctx ends (what is parked then stays unacknowledged and is
// delivered again).
func (p *parking) run(ctx context.Context, size int, send func([]*Doc) bool) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		docs, next := p.due(time.Now())
		for len(docs) > 0 {
			n := min(len(docs), size)
			if !send(docs[:n:n]) {
				return
			}
			docs = docs[n:]
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), time.Millisecond)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-p.wake:
		case <-timer.C:
		}
	}
}
