package main

// Kills where data is at risk: while the broker is down (events read but
// not acknowledged), after a run longer than the registry's save interval
// (what may be re-sent is bounded), and rotations while the agent is
// behind. scripts/mutants breaks the guarantees these tests stand for and
// checks that they fail.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// The agent is SIGKILLed while the broker is down, with events read and
// handed to the producer but never acknowledged: after both come back,
// nothing is lost (an agent that marked events durable on hand-over would
// have saved offsets past them).
func TestSIGKILLWhileBrokerDown(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			s := newStackOn(t, "", b.start(t))
			s.putConfig("a.log", "b.log")
			cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
			w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 3000)
			p := s.start()
			waitForLines(t, cons, 1000)
			s.kafka.Stop()
			// Reading goes on into the producer's buffer, and the registry
			// is saved several times, while nothing can be acknowledged.
			time.Sleep(3 * time.Second)
			rss := p.PeakRSS()
			p.Kill()
			s.kafka.Start()
			p = s.start()
			time.Sleep(time.Second) // keep writing after the restart
			w.Stop()
			res := verify(t, s, cons, w, 90*time.Second)
			if code := p.Term(); code != 0 {
				t.Errorf("exit code %d\n%s", code, p.LogText())
			}
			report(t, "sigkill while broker down ("+b.name+")", res, rss)
		})
	}
}

// A run longer than the save interval, then SIGKILL: the restart re-sends
// only what was acknowledged since the last save (at most about one save
// interval of lines), not the whole run.
func TestRestartAfterLongRunResendsOnlyLastInterval(t *testing.T) {
	const rate = 2000        // lines per second
	const saveInterval = 1.0 // seconds, as the agent saves
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, rate)
	p := s.start()
	waitForLines(t, cons, 500)
	time.Sleep(4 * time.Second) // four save intervals of steady shipping
	rss := p.PeakRSS()
	p.Kill()
	p = s.start()
	time.Sleep(time.Second)
	w.Stop()
	res := verify(t, s, cons, w, 60*time.Second)
	p.Term()
	report(t, "restart after 4s run", res, rss)
	// One interval of lines, plus what was in flight and the save's own
	// latency: allow 1.5 intervals.
	if bound := int(1.5 * saveInterval * rate); res.dups > bound {
		t.Errorf("%d lines re-sent after the restart; at most %d (1.5 save intervals at %d lines/s) may be", res.dups, bound, rate)
	}
}

// copytruncate while the agent is behind (the broker is down, so reading
// is held back by the full buffer): the unread rest of the file is only in
// the copy, and must be read from there.
func TestCopyTruncateWhileBehind(t *testing.T) {
	s := newStack(t, "")
	s.putConfig("a.log")
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log"}, 4000)
	p := s.start()
	waitForLines(t, cons, 1000)
	s.kafka.Stop()
	time.Sleep(2 * time.Second) // 8000 lines written; at most chan_max_size (2000) taken in
	w.CopyTruncate("a.log")
	time.Sleep(time.Second)
	s.kafka.Start()
	time.Sleep(time.Second)
	w.Stop()
	res := verify(t, s, cons, w, 90*time.Second)
	rss := p.PeakRSS()
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.LogText())
	}
	report(t, "copytruncate while behind", res, rss)
}

// A broker outage long enough to fill buffer_bytes: the byte bound holds
// (the buffer reaches it and stays under it, reading pauses), and every
// line arrives once the broker is back. The two files go to two topics:
// one topic holds at most half of the bound (its share).
func TestBrokerOutageFillsBufferBytes(t *testing.T) {
	const bufferBytes = 256 << 10
	s := newStack(t, fmt.Sprintf("[kafka]\nbuffer_bytes = %d\nchan_max_size = 1000000\n", bufferBytes))
	s.etcd.Put(s.key(), fmt.Sprintf(`[{"path":%q,"topic":"failure_test"},{"path":%q,"topic":"failure_test_b"}]`,
		filepath.Join(s.dir, "a.log"), filepath.Join(s.dir, "b.log")))
	cons := testutil.Consume(t, s.kafka.Addr(), "failure_test", "failure_test_b")
	w := testutil.StartLineWriter(t, s.dir, []string{"a.log", "b.log"}, 4000) // ~400 KB/s
	p := s.start()
	waitForLines(t, cons, 1000)
	s.kafka.Stop()
	outage := time.Now()
	peak, held := 0.0, 0.0
	var readAtHold float64
	for time.Since(outage) < 5*time.Second {
		page := s.get("/metrics")
		v := metric(page, "logagent_buffer_bytes")
		peak = max(peak, v)
		if held == 0 && time.Since(outage) >= 3*time.Second {
			held, readAtHold = v, metric(page, "logagent_bytes_read_total")
		}
		time.Sleep(100 * time.Millisecond)
	}
	page := s.get("/metrics")
	end, readAtEnd := metric(page, "logagent_buffer_bytes"), metric(page, "logagent_bytes_read_total")
	// The bound holds, and reading is paused by it: for the last two
	// seconds of the outage (8000 lines written) nothing more was read and
	// the buffer stayed where it was. Each topic stops within one read's
	// batch of its half (a batch that does not fit waits); how big that
	// batch is depends on how many of the writer's bursts one read took,
	// so "reached" is asked as more than half the bound, not as a margin.
	if peak > bufferBytes {
		t.Errorf("buffered bytes peaked at %.0f during the outage; the bound is %d", peak, bufferBytes)
	}
	if readAtEnd != readAtHold || end != held {
		t.Errorf("reading went on during the outage: read %.0f -> %.0f bytes, buffered %.0f -> %.0f", readAtHold, readAtEnd, held, end)
	}
	if peak <= bufferBytes/2 {
		t.Errorf("reading paused at %.0f buffered bytes, not at the bound %d", peak, bufferBytes)
	}
	rss := p.PeakRSS()
	s.kafka.Start()
	time.Sleep(time.Second)
	w.Stop()
	res := verify(t, s, cons, w, 90*time.Second)
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d\n%s", code, p.LogText())
	}
	t.Logf("buffer peak %.0f of %d bytes", peak, bufferBytes)
	report(t, "outage fills buffer_bytes", res, rss)
}

// metric reads an unlabelled value from a /metrics page (-1 if absent).
func metric(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
