package transfer

// Deterministic tests at the transfer's acknowledgement edge: a scripted
// Submitter (the consumer's own interface to the writer) acknowledges
// documents in an order the test chooses, and a stand-in for sarama's
// group session records what offsets are marked.

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// session records marks; its context ends when the test says.
type session struct {
	ctx   context.Context
	mu    sync.Mutex
	marks []int64
}

func (s *session) Claims() map[string][]int32 { return nil }
func (s *session) MemberID() string           { return "m" }
func (s *session) GenerationID() int32        { return 1 }
func (s *session) MarkOffset(_ string, _ int32, off int64, _ string) {
	s.mu.Lock()
	s.marks = append(s.marks, off)
	s.mu.Unlock()
}
func (s *session) Commit()                                  {}
func (s *session) ResetOffset(string, int32, int64, string) {}
func (s *session) MarkMessage(m *sarama.ConsumerMessage, _ string) {
	s.MarkOffset("", 0, m.Offset+1, "")
}
func (s *session) Context() context.Context { return s.ctx }

func (s *session) last() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) == 0 {
		return -1
	}
	return s.marks[len(s.marks)-1]
}

type claim struct {
	msgs    chan *sarama.ConsumerMessage
	initial int64
}

func (c *claim) Topic() string                            { return "t" }
func (c *claim) Partition() int32                         { return 0 }
func (c *claim) InitialOffset() int64                     { return c.initial }
func (c *claim) HighWaterMarkOffset() int64               { return 100 }
func (c *claim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

// submitter keeps the documents for the test to acknowledge.
type submitter struct {
	docs   chan *eswriter.Doc
	refuse atomic.Bool
}

func (s *submitter) Submit(_ context.Context, docs []*eswriter.Doc) error {
	if s.refuse.Load() {
		return context.Canceled
	}
	for _, d := range docs {
		s.docs <- d
	}
	return nil
}

type claimRig struct {
	t    *testing.T
	sess *session
	cl   *claim
	sub  *submitter
	done chan struct{}
	end  context.CancelFunc
}

func newClaimRig(t *testing.T, initial int64) *claimRig {
	return newClaimRigWith(t, initial, nil, nil)
}

// newClaimRigWith is newClaimRig with pipelines, and with records queued
// before the claim starts (so that it takes them in one round).
func newClaimRigWith(t *testing.T, initial int64, pipes *pipeline.Set, queued []*sarama.ConsumerMessage) *claimRig {
	idx, err := index.Parse("%{topic}-%{+2006.01.02}")
	if err != nil {
		t.Fatal(err)
	}
	l := logrus.New()
	l.SetOutput(io.Discard)
	r := &claimRig{t: t, cl: &claim{msgs: make(chan *sarama.ConsumerMessage, 100), initial: initial},
		sub: &submitter{docs: make(chan *eswriter.Doc, 100)}, done: make(chan struct{})}
	for _, m := range queued {
		r.cl.msgs <- m
	}
	c := NewConsumer(Options{Index: idx, Out: r.sub, DrainTimeout: 300 * time.Millisecond, Pipelines: pipes}, logrus.NewEntry(l), nil)
	ctx, cancel := context.WithCancel(context.Background())
	r.sess, r.end = &session{ctx: ctx}, cancel
	go func() { defer close(r.done); c.ConsumeClaim(r.sess, r.cl) }()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

func (r *claimRig) feed(from, n int) []*eswriter.Doc {
	r.t.Helper()
	var docs []*eswriter.Doc
	for i := from; i < from+n; i++ {
		r.cl.msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: int64(i), Value: []byte(fmt.Sprintf("line %d", i)), Timestamp: time.Now()}
		select {
		case d := <-r.sub.docs:
			docs = append(docs, d)
		case <-time.After(5 * time.Second):
			r.t.Fatal("no document submitted")
		}
	}
	return docs
}

func (r *claimRig) waitMark(want int64) {
	r.t.Helper()
	testutil.Eventually(r.t, 5*time.Second, func() bool { return r.sess.last() == want },
		func() string { return fmt.Sprintf("marked %d, want %d", r.sess.last(), want) })
}

// noMarkBeyond asserts, for several mark intervals, that nothing past want
// is marked (an absence: a bounded wait).
func (r *claimRig) noMarkBeyond(want int64) {
	r.t.Helper()
	deadline := time.Now().Add(350 * time.Millisecond)
	for time.Now().Before(deadline) {
		if m := r.sess.last(); m > want {
			r.t.Fatalf("offset %d marked before its documents were acknowledged (want at most %d)", m, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An offset is marked only after Elasticsearch acknowledged (or
// dead-lettered) the documents before it, over the contiguous prefix.
func TestMarkOnlyOverAcknowledgedPrefix(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int
		after []int64 // the mark after each ack (10: the initial offset, nothing new)
	}{
		{"in order", []int{0, 1, 2, 3}, []int64{11, 12, 13, 14}},
		{"last first", []int{3, 2, 1, 0}, []int64{10, 10, 10, 14}},
		{"gap", []int{1, 0, 3, 2}, []int64{10, 12, 12, 14}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newClaimRig(t, 10)
			docs := r.feed(10, 4)
			r.noMarkBeyond(10) // submitted is not acknowledged
			for k, i := range tc.order {
				docs[i].Acker.Ack(docs[i].Seq)
				if tc.after[k] == 10 || (k > 0 && tc.after[k] == tc.after[k-1]) {
					r.noMarkBeyond(tc.after[k])
				} else {
					r.waitMark(tc.after[k])
				}
			}
		})
	}
}

// When the session ends with documents unacknowledged, the claim waits
// (DrainTimeout) for them, marks what was acknowledged, and leaves the
// rest to be delivered again.
func TestSessionEndLeavesUnacknowledgedUnmarked(t *testing.T) {
	r := newClaimRig(t, 0)
	docs := r.feed(0, 3)
	docs[0].Acker.Ack(docs[0].Seq)
	r.waitMark(1)
	r.end()
	go func() {
		time.Sleep(100 * time.Millisecond) // acknowledged during the drain
		docs[1].Acker.Ack(docs[1].Seq)
	}()
	<-r.done
	if m := r.sess.last(); m != 2 {
		t.Fatalf("marked %d at the end, want 2 (document 2 was never acknowledged)", m)
	}
}

// A document the writer would not take (the transfer is stopping) is not
// counted: the offset stays before it.
func TestRefusedSubmitIsNotMarked(t *testing.T) {
	r := newClaimRig(t, 0)
	docs := r.feed(0, 1)
	docs[0].Acker.Ack(docs[0].Seq)
	r.waitMark(1)
	r.sub.refuse.Store(true)
	r.cl.msgs <- &sarama.ConsumerMessage{Topic: "t", Offset: 1, Value: []byte("refused")}
	<-r.done
	if m := r.sess.last(); m != 1 {
		t.Fatalf("marked %d, want 1: a refused document counted as done", m)
	}
}

// A round's records are registered with the tracker together; a record its
// pipeline dropped is done at once, and every document keeps the sequence
// number of its own record, so acknowledging the documents marks past the
// whole round.
func TestDroppedRecordInARoundKeepsTheOthersInPlace(t *testing.T) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	pipes := pipeline.NewSet("/p/", logrus.NewEntry(l), nil)
	pipes.Update(1, map[string]pipeline.Def{"/p/dropper": {Value: []byte(`[{"drop":{"matches":"^skip"}}]`), Revision: 1}})
	if _, ok := pipes.Lookup([]byte("dropper")); !ok {
		t.Fatal("pipeline not loaded")
	}
	var queued []*sarama.ConsumerMessage
	for i, v := range []string{"keep a", "skip b", "keep c", "keep d"} {
		queued = append(queued, &sarama.ConsumerMessage{Topic: "t", Offset: int64(10 + i), Value: []byte(v), Timestamp: time.Now(),
			Headers: []*sarama.RecordHeader{{Key: []byte("pipeline"), Value: []byte("dropper")}}})
	}
	r := newClaimRigWith(t, 10, pipes, queued)
	var docs []*eswriter.Doc
	for len(docs) < 3 {
		select {
		case d := <-r.sub.docs:
			docs = append(docs, d)
		case <-time.After(5 * time.Second):
			t.Fatalf("%d documents submitted, want 3 (one record dropped)", len(docs))
		}
	}
	r.noMarkBeyond(10)
	docs[0].Acker.Ack(docs[0].Seq)
	r.waitMark(12) // record 10's document, and the dropped record 11
	docs[2].Acker.Ack(docs[2].Seq)
	r.noMarkBeyond(12) // record 12's document is still out
	docs[1].Acker.Ack(docs[1].Seq)
	r.waitMark(14)
}
