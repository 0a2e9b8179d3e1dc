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

	"github.com/logpipe/logpipe/internal/acktrack"
	"github.com/logpipe/logpipe/internal/config"
	"github.com/logpipe/logpipe/internal/record"
	"github.com/logpipe/logpipe/internal/testutil"
)

// scripted is a sarama AsyncProducer whose acknowledgements the test gives.
type scripted struct {
	in     chan *sarama.ProducerMessage
	ok     chan *sarama.ProducerMessage
	errs   chan *sarama.ProducerError
	closed chan struct{}
	once   sync.Once
}

func newScripted() *scripted {
	return &scripted{in: make(chan *sarama.ProducerMessage, 1024), ok: make(chan *sarama.ProducerMessage, 1024),
		errs: make(chan *sarama.ProducerError, 1024), closed: make(chan struct{})}
}

func (s *scripted) Input() chan<- *sarama.ProducerMessage     { return s.in }
func (s *scripted) Successes() <-chan *sarama.ProducerMessage { return s.ok }
func (s *scripted) Errors() <-chan *sarama.ProducerError      { return s.errs }
func (s *scripted) AsyncClose() {
	s.once.Do(func() { close(s.closed); close(s.ok); close(s.errs) })
}

// take returns the next message the producer handed over.
func (s *scripted) take(t *testing.T) *sarama.ProducerMessage {
	t.Helper()
	select {
	case m := <-s.in:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message handed to Kafka")
		return nil
	}
}

func (s *scripted) ack(m *sarama.ProducerMessage) { s.ok <- m }
func (s *scripted) fail(m *sarama.ProducerMessage, e error) {
	s.errs <- &sarama.ProducerError{Msg: m, Err: e}
}

// meta answers the topic gates: every topic exists unless listed.
type meta struct {
	mu      sync.Mutex
	missing map[string]bool
}

func (m *meta) RefreshMetadata(...string) error { return nil }
func (m *meta) Partitions(topic string) ([]int32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.missing[topic] {
		return nil, sarama.ErrUnknownTopicOrPartition
	}
	return []int32{0}, nil
}
func (m *meta) Close() error { return nil }
func (m *meta) set(topic string, missing bool) {
	m.mu.Lock()
	m.missing[topic] = missing
	m.mu.Unlock()
}

type rig struct {
	t    *testing.T
	p    *Producer
	sp   *scripted
	md   *meta
	stop func()
}

func newRig(t *testing.T, ini string) *rig {
	cfg, err := config.ParseAgent("test.ini", []byte("[kafka]\naddress = 127.0.0.1:1\nretry_backoff_max = 100ms\n"+ini))
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := New(Config{Kafka: cfg.Kafka, MaxRecordBytes: 1 << 20, ShutdownTimeout: time.Second}, logrus.NewEntry(l), nil)
	r := &rig{t: t, p: p, sp: newScripted(), md: &meta{missing: map[string]bool{}}}
	p.connect = func([]string, *sarama.Config) (asyncProducer, metadata, error) { return r.sp, r.md, nil }
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
	src *record.Source
	off int64
}

func newFile(topic string) *file {
	return &file{tr: acktrack.New(0), src: record.NewSource(topic, "/var/log/"+topic+".log", "h", "10.0.0.1", nil)}
}

// batch registers n lines with the tracker and returns them as a batch.
func (f *file) batch(n int) *record.Batch {
	ends := make([]int64, n)
	dones := make([]bool, n)
	b := &record.Batch{}
	for i := 0; i < n; i++ {
		ends[i] = f.off + 10
		b.Events = append(b.Events, record.Event{Source: f.src, Value: []byte(fmt.Sprintf("line %4d", f.off/10)), Offset: f.off, Time: time.Now()})
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

func (r *rig) send(b *record.Batch) {
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

func offsetOf(m *sarama.ProducerMessage) int64 { return m.Metadata.(*flight).ev.Offset }

// An offset moves only once Kafka acknowledged it, and only over the
// contiguous prefix of acknowledged lines, whatever the order of the acks.
func TestOffsetMovesOnlyOverAcknowledgedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int   // acknowledgement order of the 5 messages
		after []int64 // acked offset after each acknowledgement
	}{
		{"in order", []int{0, 1, 2, 3, 4}, []int64{10, 20, 30, 40, 50}},
		{"reversed", []int{4, 3, 2, 1, 0}, []int64{0, 0, 0, 0, 50}},
		{"gap filled last", []int{0, 2, 3, 1, 4}, []int64{10, 10, 10, 40, 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, "")
			f := newFile("t")
			r.send(f.batch(5))
			msgs := make([]*sarama.ProducerMessage, 5)
			for i := range msgs {
				msgs[i] = r.sp.take(t)
				if offsetOf(msgs[i]) != int64(i*10) {
					t.Fatalf("message %d has offset %d", i, offsetOf(msgs[i]))
				}
			}
			stays(t, f, 0) // handed to Kafka is not durable
			for k, i := range tc.order {
				r.sp.ack(msgs[i])
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
	r.send(f.batch(3))
	m0, m1, m2 := r.sp.take(t), r.sp.take(t), r.sp.take(t)
	r.sp.ack(m0)
	waitAcked(t, f, 10)
	r.sp.fail(m1, sarama.ErrNotLeaderForPartition)
	r.sp.ack(m2)
	stays(t, f, 10)
	again := r.sp.take(t)
	if offsetOf(again) != 10 || again.Topic != "t" {
		t.Fatalf("re-sent offset %d topic %s, want 10 t", offsetOf(again), again.Topic)
	}
	r.sp.fail(again, errors.New("broken pipe")) // fails twice
	stays(t, f, 10)
	again = r.sp.take(t)
	r.sp.ack(again)
	waitAcked(t, f, 30)
}

// The memory bound is held from hand-over to acknowledgement: with a
// bound of 4 events, a fifth batch waits until an acknowledgement.
func TestBoundReleasedOnlyOnAck(t *testing.T) {
	r := newRig(t, "chan_max_size = 4\n")
	f := newFile("t")
	r.send(f.batch(4))
	var ms []*sarama.ProducerMessage
	for i := 0; i < 4; i++ {
		ms = append(ms, r.sp.take(t))
	}
	sent := make(chan error, 1)
	go func() { sent <- r.p.Send(context.Background(), f.batch(1)) }()
	select {
	case err := <-sent:
		t.Fatalf("Send went through with the bound full (err %v)", err)
	case <-time.After(200 * time.Millisecond): // an absence: a bounded wait
	}
	for _, m := range ms {
		r.sp.ack(m)
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	waitAcked(t, f, 40)
}

// A topic Kafka refuses pauses only its own files: its Send waits, a
// healthy topic's goes through, and the refused one resumes once it exists.
func TestRefusedTopicPausesOnlyItsFiles(t *testing.T) {
	r := newRig(t, "")
	r.md.set("missing", true)
	bad, good := newFile("missing"), newFile("good")
	badSent := make(chan error, 1)
	go func() { badSent <- r.p.Send(context.Background(), bad.batch(2)) }()
	r.send(good.batch(2))
	m := r.sp.take(t)
	if m.Topic != "good" {
		t.Fatalf("a message for %s was handed to Kafka before the topic existed", m.Topic)
	}
	r.sp.ack(m)
	r.sp.ack(r.sp.take(t))
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
	r.md.set("missing", false)
	if err := <-badSent; err != nil {
		t.Fatal(err)
	}
	m = r.sp.take(t)
	if m.Topic != "missing" {
		t.Fatalf("got %s", m.Topic)
	}
}

// A topic that disappears while messages are in flight (unknown topic on
// send) closes its gate: later batches wait, the failed ones are kept and
// re-sent, and the offset holds until they are acknowledged.
func TestTopicErrorOnSendBlocksAndKeepsLines(t *testing.T) {
	r := newRig(t, "")
	f := newFile("t")
	r.send(f.batch(1))
	m := r.sp.take(t)
	r.md.set("t", true)
	r.sp.fail(m, sarama.ErrUnknownTopicOrPartition)
	testutil.Eventually(t, 5*time.Second, func() bool { ts := r.p.Topics(); return len(ts) == 1 && ts[0].State == TopicBlocked },
		testutil.Msg("blocked after an unknown-topic error: %v", r.p.Topics()))
	next := make(chan error, 1)
	go func() { next <- r.p.Send(context.Background(), f.batch(1)) }()
	again := r.sp.take(t) // the failed one is re-sent (sarama retries it)
	if offsetOf(again) != 0 {
		t.Fatalf("re-sent offset %d", offsetOf(again))
	}
	stays(t, f, 0)
	r.md.set("t", false)
	r.sp.ack(again)
	waitAcked(t, f, 10)
	if err := <-next; err != nil {
		t.Fatal(err)
	}
	r.sp.ack(r.sp.take(t))
	waitAcked(t, f, 20)
}

// At shutdown, what Kafka did not acknowledge within the timeout stays
// unacknowledged: it is read again after the restart.
func TestShutdownLeavesUnackedUnacked(t *testing.T) {
	r := newRig(t, "")
	f := newFile("t")
	r.send(f.batch(2))
	m0 := r.sp.take(t)
	r.sp.take(t)
	r.sp.ack(m0)
	waitAcked(t, f, 10)
	r.stop()
	if a := f.acked(); a != 10 {
		t.Fatalf("acked offset %d after shutdown, want 10", a)
	}
}
