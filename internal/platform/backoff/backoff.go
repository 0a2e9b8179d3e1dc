// Package backoff is jittered exponential backoff for retry loops, and a
// context-aware sleep to wait it out.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields delays that double from Min to Max, each with up to ±20 %
// jitter so that a fleet of agents does not retry in lockstep. The zero
// value is not usable; set Min and Max.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	d := b.Min
	for i := 0; i < b.n && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	b.n++
	j := time.Duration(rand.Int64N(int64(d)/5+1)) * 2
	return d - d/5 + j
}

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Attempts is how many delays were handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.n }

// Sleep waits for d or until ctx is done; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
