package eswriter

import (
	"sync"
	"time"
)

// bufIdle is how long a body buffer may go unused before it is dropped.
const bufIdle = 2 * time.Second

// bufStack keeps the workers' bulk body buffers, the most recently used on
// top. A request takes the top one, so in steady state only as many
// buffers as requests run at once stay in use; the rest sink to the
// bottom and are dropped once unused for bufIdle (a burst that had every
// worker busy does not leave Workers × a request's size resident).
type bufStack struct {
	mu   sync.Mutex
	bufs [][]byte
	used []time.Time // when each was put back
}

func (s *bufStack) get() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.bufs)
	if n == 0 {
		return nil
	}
	b := s.bufs[n-1]
	s.bufs[n-1] = nil
	s.bufs, s.used = s.bufs[:n-1], s.used[:n-1]
	return b
}

func (s *bufStack) put(b []byte, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b != nil {
		s.bufs = append(s.bufs, b[:0])
		s.used = append(s.used, now)
	}
	drop := 0
	for drop < len(s.bufs) && now.Sub(s.used[drop]) > bufIdle {
		drop++
	}
	if drop > 0 {
		clear(s.bufs[:drop])
		s.bufs = append(s.bufs[:0], s.bufs[drop:]...)
		s.used = append(s.used[:0], s.used[drop:]...)
	}
}

// len is how many buffers are kept.
func (s *bufStack) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bufs)
}
