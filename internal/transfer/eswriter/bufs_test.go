package eswriter

import (
	"testing"
	"time"
)

// The buffer used last is handed out first, and buffers left unused for
// bufIdle are dropped, so a past burst does not stay resident.
func TestBufStackReusesNewestDropsIdle(t *testing.T) {
	var s bufStack
	t0 := time.Now()
	a, b := make([]byte, 0, 100), make([]byte, 0, 200)
	s.put(a, t0)
	s.put(b, t0.Add(time.Second))
	if got := s.get(); cap(got) != 200 {
		t.Fatalf("got a buffer of cap %d, want the one put back last (200)", cap(got))
	}
	s.put(b, t0.Add(2*time.Second))
	// a has not been used since t0: past bufIdle it goes, b stays.
	s.put(nil, t0.Add(bufIdle+time.Second+time.Millisecond))
	if n := s.len(); n != 1 {
		t.Fatalf("%d buffers kept, want 1 (the idle one dropped)", n)
	}
	if got := s.get(); cap(got) != 200 {
		t.Fatalf("kept the buffer of cap %d, want 200", cap(got))
	}
	if got := s.get(); got != nil {
		t.Fatalf("empty stack handed out a buffer of cap %d", cap(got))
	}
}
