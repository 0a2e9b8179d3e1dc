package producer

// Deterministic tests at the agent's acknowledgement edge: a scripted
// stand-in for sarama's AsyncProducer (the producer's own asyncProducer
// interface) decides exactly when each message is acknowledged or fails,
// and a real acktrack.Tracker (what the registry uses) shows which file
// offset counts as durable.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// scripted is a one-broker Kafka whose answers the test gives: every
// produce request the producer writes comes out of reqs, and the test
// acknowledges or fails it. Every topic exists unless listed as missing.
type scripted struct {
	reqs    chan *call
	mu      sync.Mutex
	missing map[string]bool
}

// call is one produce request: what it carries and how to answer it.
type call struct {
	topic   string
	parts   []tp
	offsets []int64 // the events' file offsets, in order
	cb      sarama.ProduceCallback
}

func (s *scripted) produce(_ *sarama.ProduceRequest, set *reqSet, cb sarama.ProduceCallback) error {
	c := &call{cb: cb, topic: set.parts[0].tp.topic}
	for _, ps := range set.parts {
		c.parts = append(c.parts, ps.tp)
		for _, ch := range ps.chunks {
			for i := ch.from; i < ch.to; i++ {
				c.offsets = append(c.offsets, ch.st.batch.Events[i].Offset)
			}
		}
	}
	s.reqs <- c
	return nil
}

func (s *scripted) Close() error                       { return nil }
func (s *scripted) Leader(string, int32) (conn, error) { return s, nil }
func (s *scripted) RefreshMetadata(...string) error    { return nil }
func (s *scripted) Partitions(topic string) ([]int32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.missing[topic] {
		return nil, sarama.ErrUnknownTopicOrPartition
	}
	return []int32{0}, nil
}

func (s *scripted) set(topic string, missing bool) {
	s.mu.Lock()
	s.missing[topic] = missing
	s.mu.Unlock()
}

// take returns the next request the producer wrote.
func (s *scripted) take(t *testing.T) *call {
	t.Helper()
	select {
	case c := <-s.reqs:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no request written to Kafka")
		return nil
	}
}

// ack answers c: every partition written.
func (c *call) ack() { c.answer(sarama.ErrNoError) }

// fail answers c with a partition error (a sarama.KError) or fails the
// connection (any other error).
func (c *call) fail(err error) {
	var kerr sarama.KError
	if errors.As(err, &kerr) {
		c.answer(kerr)
		return
	}
	c.cb(nil, err)
}

func (c *call) answer(kerr sarama.KError) {
	resp := &sarama.ProduceResponse{}
	for _, t := range c.parts {
		resp.AddTopicPartition(t.topic, t.part, kerr)
	}
	c.cb(resp, nil)
}

type rig struct {
	t    *testing.T
	p    *Producer
	k    *scripted
	stop func()
}

func newRig(t *testing.T, ini string) *rig {
	cfg, err := config.ParseAgent("test.ini", []byte("[kafka]\naddress = 127.0.0.1:1\nretry_backoff_max = 100ms\nflush_interval = 0s\n"+ini))
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := New(Config{Kafka: cfg.Kafka, MaxRecordBytes: 1 << 20, ShutdownTimeout: time.Second}, logrus.NewEntry(l), nil)
	r := &rig{t: t, p: p, k: &scripted{reqs: make(chan *call, 1024), missing: map[string]bool{}}}
	p.connect = func([]string, *sarama.Config) (cluster, error) { return r.k, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(r.stop)
	return r
}

// file is one tailed file: a tracker, and lines of 10 bytes each.
type file struct {
	tr  *acktrack.Tracker
	src *event.Source
	off int64
}

func newFile(topic string) *file {
	return &file{tr: acktrack.New(0), src: event.NewSource(topic, "/var/log/"+topic+".log", "h", "10.0.0.1", nil)}
}

// batch registers n lines with the tracker and returns them as a batch.
func (f *file) batch(n int) *event.Batch {
	ends := make([]int64, n)
	dones := make([]bool, n)
	b := &event.Batch{}
	for i := 0; i < n; i++ {
		ends[i] = f.off + 10
		b.Events = append(b.Events, event.Event{Source: f.src, Value: []byte(fmt.Sprintf("line %4d", f.off/10)), Offset: f.off, Time: time.Now()})
		b.Bytes += 9
		f.off += 10
	}
	first := f.tr.EmitBatch(ends, dones)
	for i := range b.Events {
		b.Events[i].Acker, b.Events[i].Seq = f.tr, first+uint64(i)
	}
	return b
}

func (f *file) acked() int64 { a, _, _ := f.tr.State(); return a }

func (r *rig) send(b *event.Batch) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.p.Send(ctx, b); err != nil {
		r.t.Fatalf("Send: %v", err)
	}
}

func waitAcked(t *testing.T, f *file, want int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool { return f.acked() == want },
		func() string { return fmt.Sprintf("acked offset %d, want %d", f.acked(), want) })
}

// stays asserts the acked offset does not move for a while (an absence:
// only a bounded wait can show it).
func stays(t *testing.T, f *file, want int64) {
	t.Helper()
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if a := f.acked(); a != want {
			t.Fatalf("acked offset moved to %d before its acknowledgements (want %d)", a, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An offset moves only once Kafka acknowledged it, and only over the
// contiguous prefix of acknowledged lines, whatever the order of the acks
// (requests to several brokers, or re-sent ones, are answered in any
// order).
func TestOffsetMovesOnlyOverAcknowledgedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int   // acknowledgement order of the 5 requests
		after []int64 // acked offset after each acknowledgement
	}{
		{"in order", []int{0, 1, 2, 3, 4}, []int64{10, 20, 30, 40, 50}},
		{"reversed", []int{4, 3, 2, 1, 0}, []int64{0, 0, 0, 0, 50}},
		{"gap filled last", []int{0, 2, 3, 1, 4}, []int64{10, 10, 10, 40, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "")
			f := newFile("t")
			calls := make([]*call, 5)
			for i := range calls {
				r.send(f.batch(1))
				calls[i] = r.k.take(t)
				if len(calls[i].offsets) != 1 || calls[i].offsets[0] != int64(i*10) {
					t.Fatalf("request %d carries offsets %v", i, calls[i].offsets)
				}
			}
			stays(t, f, 0) // written to Kafka is not durable
			for k, i := range tc.order {
				calls[i].ack()
				if tc.after[k] == f.acked() {
					stays(t, f, tc.after[k])
				} else {
					waitAcked(t, f, tc.after[k])
				}
			}
		})
	}
}

// A failed send holds the offset until the re-send is acknowledged; the
// re-send is the same record (same offset, so the same event id).
func TestFailedSendRetriedAndHoldsOffset(t *testing.T) {
	r := newRig(t, "")
	f := newFile("t")
	var c [3]*call
	for i := range c {
		r.send(f.batch(1))
		c[i] = r.k.take(t)
	}
	c[0].ack()
	waitAcked(t, f, 10)
	c[1].fail(sarama.ErrNotLeaderForPartition)
	c[2].ack()
	stays(t, f, 10)
	again := r.k.take(t)
	if len(again.offsets) != 1 || again.offsets[0] != 10 || again.topic != "t" {
		t.Fatalf("re-sent offsets %v topic %s, want [10] t", again.offsets, again.topic)
	}
	again.fail(errors.New("broken pipe")) // fails twice, the connection this time
	stays(t, f, 10)
	again = r.k.take(t)
	again.ack()
	waitAcked(t, f, 30)
}

// The memory bound is held from hand-over to acknowledgement: with a
// bound of 4 events, a fifth batch waits until an acknowledgement.
func TestBoundReleasedOnlyOnAck(t *testing.T) {
	r := newRig(t, "chan_max_size = 4\n")
	f := newFile("t")
	r.send(f.batch(4))
	c := r.k.take(t)
	sent := make(chan error, 1)
	go func() { sent <- r.p.Send(context.Background(), f.batch(1)) }()
	select {
	case err := <-sent:
		t.Fatalf("Send went through with the bound full (err %v)", err)
	case <-time.After(200 * time.Millisecond): // an absence: a bounded wait
	}
	c.ack()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	waitAcked(t, f, 40)
}

// A topic Kafka refuses pauses only its own files: its Send waits, a
// healthy topic's goes through, and the refused one resumes once it exists.
func TestRefusedTopicPausesOnlyItsFiles(t *testing.T) {
	r := newRig(t, "")
	r.k.set("missing", true)
	bad, good := newFile("missing"), newFile("good")
	badSent := make(chan error, 1)
	go func() { badSent <- r.p.Send(context.Background(), bad.batch(2)) }()
	r.send(good.batch(2))
	c := r.k.take(t)
	if c.topic != "good" {
		t.Fatalf("a request for %s was written to Kafka before the topic existed", c.topic)
	}
	c.ack()
	waitAcked(t, good, 20)
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, ts := range r.p.Topics() {
			if ts.Topic == "missing" && ts.State == TopicBlocked {
				return true
			}
		}
		return false
	}, testutil.Msg("topic shown as blocked: %v", r.p.Topics()))
	select {
	case err := <-badSent:
		t.Fatalf("Send for the missing topic returned (%v) while it does not exist", err)
	default:
	}
	r.k.set("missing", false)
	if err := <-badSent; err != nil {
		t.Fatal(err)
	}
	if c = r.k.take(t); c.topic != "missing" {
		t.Fatalf("got %s", c.topic)
	}
}

// A topic that disappears while requests are in flight (unknown topic on
// send) closes its gate: later batches wait, the failed ones are kept and
// re-sent, and the offset holds until they are acknowledged.
func TestTopicErrorOnSendBlocksAndKeepsLines(t *testing.T) {
	r := newRig(t, "")
	f := newFile("t")
	r.send(f.batch(1))
	c := r.k.take(t)
	r.k.set("t", true)
	c.fail(sarama.ErrUnknownTopicOrPartition)
	testutil.Eventually(t, 5*time.Second, func() bool { ts := r.p.Topics(); return len(ts) == 1 && ts[0].State == TopicBlocked },
		testutil.Msg("blocked after an unknown-topic error: %v", r.p.Topics()))
	next := make(chan error, 1)
	go func() { next <- r.p.Send(context.Background(), f.batch(1)) }()
	r.k.set("t", false) // the re-send needs the partitions again
	again := r.k.take(t)
	if len(again.offsets) != 1 || again.offsets[0] != 0 {
		t.Fatalf("re-sent offsets %v", again.offsets)
	}
	stays(t, f, 0)
	again.ack()
	waitAcked(t, f, 10)
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	r.k.take(t).ack()
	waitAcked(t, f, 20)
}

// At shutdown, what Kafka did not acknowledge within the timeout stays
// unacknowledged: it is read again after the restart.
func TestShutdownLeavesUnackedUnacked(t *testing.T) {
	r := newRig(t, "")
	f := newFile("t")
	r.send(f.batch(1))
	c0 := r.k.take(t)
	r.send(f.batch(1))
	r.k.take(t)
	c0.ack()
	waitAcked(t, f, 10)
	r.stop()
	if a := f.acked(); a != 10 {
		t.Fatalf("acked offset %d after shutdown, want 10", a)
	}
}

// A topic that Kafka starts refusing while it is busy keeps what it holds
// (re-sent once the topic is back), but it holds at most half of
// chan_max_size and buffer_bytes: a healthy topic's batch still goes
// through (with eight of topic bad in flight and the topic then missing, a
// 1-event batch for good waited past its 3 s deadline).
func TestFailingTopicLeavesTheOthersTheirShare(t *testing.T) {
	r := newRig(t, "chan_max_size = 8\n")
	bad, good := newFile("bad"), newFile("good")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for range 8 {
			if r.p.Send(ctx, bad.batch(1)) != nil {
				return
			}
		}
	}()
	var calls []*call
	for n := 0; n < 4; {
		c := r.k.take(t)
		calls = append(calls, c)
		n += len(c.offsets)
	}
	r.k.set("bad", true) // deleted under load
	for _, c := range calls {
		c.fail(sarama.ErrUnknownTopicOrPartition)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, ts := range r.p.Topics() {
			if ts.Topic == "bad" && ts.State == TopicBlocked {
				return true
			}
		}
		return false
	}, testutil.Msg("bad shown as blocked: %v", r.p.Topics()))
	sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer scancel()
	if err := r.p.Send(sctx, good.batch(1)); err != nil {
		t.Fatalf("a healthy topic's batch waited behind the failing topic's: %v", err)
	}
	for {
		c := r.k.take(t)
		if c.topic == "good" {
			c.ack()
			break
		}
	}
	waitAcked(t, good, 10)
	if a := bad.acked(); a != 0 {
		t.Fatalf("the failing topic's offset moved to %d", a)
	}
}

// Only the lines' events are activity: a Background batch (host metrics
// on their schedule) is written and acknowledged like any other but
// leaves Sent where it was, so the agent's memory governor stays idle on
// a host whose files are quiet.
func TestBackgroundBatchesAreNotActivity(t *testing.T) {
	r := newRig(t, "")
	lines, metrics := newFile("lines"), newFile("metrics")
	bg := metrics.batch(3)
	bg.Background = true
	r.send(bg)
	r.k.take(t).ack()
	waitAcked(t, metrics, 30)
	if n := r.p.Sent(); n != 0 {
		t.Fatalf("Sent = %d after a background batch of 3, want 0", n)
	}
	r.send(lines.batch(2))
	r.k.take(t).ack()
	waitAcked(t, lines, 20)
	if n := r.p.Sent(); n != 2 {
		t.Fatalf("Sent = %d after 2 lines, want 2", n)
	}
}
