// Package transfersim runs the transfer's consumer (claims, marks,
// documents) and its bulk writer together against generated schedules on
// a fake clock (testing/synctest): a simulated Kafka group (partitions that
// grow, claims fed from the committed offset, sarama's periodic commit,
// rebalances), the fake Elasticsearch served in process (per-item
// 429/5xx/400, whole-request 413/401/503, an unreachable node, slow
// answers, requests applied whose answer is lost, requests lost), a
// dead-letter target that fails, and crashes at any step,
// after which nothing the dead process does reaches the world and a new
// one starts from the committed offsets. It checks the guarantees as
// invariants (see check), and at every commit that the commit passes no
// record without its outcome. pgregory.net/rapid draws the schedules and
// shrinks a failing one; its seed replays it:
//
//	go test ./internal/transfer/transfersim -run 'TestTransferPath$' -rapid.seed=N
package transfersim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"
	"github.com/sirupsen/logrus"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/transfer"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
)

const (
	topic      = "app"
	partitions = 2
)

// day is every record's Kafka timestamp (one daily index).
var day = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// op is one step of a schedule.
type op struct {
	kind   string // see drawOp
	part   int
	n      int
	status int
	d      time.Duration
	source string // produce: "agent" (signed chunks of up to chunk records), "foreign" (no host, unsigned), "forger" (an agent's host and event ids, unsigned)
	chunk  int
	// late: the agent's records are stamped before midnight, the day
	// before their Kafka timestamp (lines first sent then, and sent again
	// after a crash: their copies must meet in the first day's index).
	late bool
}

func (o op) String() string {
	switch o.kind {
	case "produce":
		return fmt.Sprintf("produce %d %s records to partition %d (chunks of %d, poison at %d%s)", o.n, o.source, o.part, o.chunk, o.status, map[bool]string{true: ", stamped the day before"}[o.late])
	case "sleep":
		return fmt.Sprintf("sleep %v", o.d)
	case "items", "request":
		return fmt.Sprintf("es %s %d", o.kind, o.status)
	case "latency":
		return fmt.Sprintf("es latency %v", o.d)
	}
	return o.kind
}

var sleeps = []time.Duration{0, 10 * time.Millisecond, 100 * time.Millisecond, time.Second, 3 * time.Second, 20 * time.Second}

// opKinds are the kinds of step a schedule draws from, with their
// weights (see testutil.Swarm: a schedule may leave any but produce out).
var opKinds, opWeights = []string{"produce", "sleep", "items", "request", "es", "latency", "dlq", "rebalance", "crash"},
	[]int{4, 3, 1, 1, 1, 1, 1, 2, 2}

// drawSchedule draws the kinds of step a schedule uses.
func drawSchedule(t *rapid.T) func(*rapid.T) op {
	kind := testutil.Swarm(t, "op", opKinds, opWeights)
	return func(t *rapid.T) op { return drawOp(t, kind(t)) }
}

func drawOp(t *rapid.T, kind string) op {
	switch kind {
	case "produce":
		n := rapid.IntRange(1, 80).Draw(t, "records")
		poison := -1 // the record Elasticsearch refuses for good (400), if any
		if rapid.IntRange(0, 3).Draw(t, "poisoned") == 0 {
			poison = rapid.IntRange(0, n-1).Draw(t, "poison")
		}
		return op{kind: "produce", part: rapid.IntRange(0, partitions-1).Draw(t, "partition"), n: n, status: poison,
			source: rapid.SampledFrom([]string{"agent", "agent", "foreign", "forger"}).Draw(t, "source"), chunk: rapid.IntRange(1, 40).Draw(t, "chunk"),
			late: rapid.IntRange(0, 2).Draw(t, "late") == 0}
	case "sleep":
		return op{kind: "sleep", d: rapid.SampledFrom(sleeps).Draw(t, "sleep")}
	case "items":
		return op{kind: "items", status: rapid.SampledFrom([]int{429, 500, 502, 503, 504}).Draw(t, "item status")}
	case "request":
		return op{kind: "request", status: rapid.SampledFrom([]int{401, 413, 503}).Draw(t, "request status")}
	case "es":
		return op{kind: rapid.SampledFrom([]string{"es down", "es ok", "es drops answers", "es drops requests"}).Draw(t, "es")}
	case "latency":
		return op{kind: "latency", d: rapid.SampledFrom([]time.Duration{0, 2 * time.Second, 40 * time.Second}).Draw(t, "latency")}
	case "dlq":
		return op{kind: rapid.SampledFrom([]string{"dlq fails", "dlq ok"}).Draw(t, "dlq")}
	case "rebalance":
		return op{kind: "rebalance"}
	case "crash":
		return op{kind: "crash"}
	}
	panic("unknown kind " + kind)
}

// rec is a record in the simulated log, and what must become of it.
type rec struct {
	msg    *sarama.ConsumerMessage
	id     string // its document's _id
	poison bool   // Elasticsearch refuses it for good (mapping error)
	forged bool   // claims the agent's host without its signature: quarantined
	// place is the day whose index its document belongs in: the agent's
	// index-time stamp (signed) if it has one, else its Kafka timestamp.
	place time.Time
}

// letter is what the dead-letter target took.
type letter struct {
	part   int32
	offset int64
	reason string
}

type world struct {
	mu        sync.Mutex
	log       [partitions][]*rec
	grew      chan struct{} // closed and replaced when a partition grows
	committed [partitions]int64
	letters   []letter
	dlqFails  bool
	errs      []string

	es       *fakees.Server
	key      *record.SigningKey
	itemCode int // the status of the items hit (itemHit), 0: none
	faultGen int // changes which items are hit
	idx      *index.Name
	logger   *logrus.Entry
	inc      *incarnation
	incs     int
	// what the schedule did that allows a record to come again
	crashed, rebalanced bool
}

func (w *world) failf(format string, a ...any) {
	w.mu.Lock()
	w.errs = append(w.errs, fmt.Sprintf(format, a...))
	w.mu.Unlock()
}

// incarnation is one run of the transfer process.
type incarnation struct {
	w      *world
	n      int
	dead   atomic.Bool // crashed: nothing it does reaches the world
	cancel context.CancelFunc
	ctx    context.Context
	writer *eswriter.Writer
	cons   *transfer.Consumer
	es     *elastic.Client
	wdone  chan struct{}
	sess   *session
}

// session is a consumer-group generation: a claim per partition, from
// the committed offsets.
type session struct {
	inc    *incarnation
	gen    int32
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	marks  [partitions]int64
	done   chan struct{} // the claims returned and Cleanup ran
}

func (s *session) Claims() map[string][]int32 { return map[string][]int32{topic: {0, 1}} }
func (s *session) MemberID() string           { return "sim" }
func (s *session) GenerationID() int32        { return s.gen }
func (s *session) MarkOffset(t string, p int32, off int64, _ string) {
	if t != topic || p < 0 || p >= partitions {
		s.inc.w.failf("a mark for %s/%d", t, p)
		return
	}
	s.mu.Lock()
	s.marks[p] = max(s.marks[p], off)
	s.mu.Unlock()
}
func (s *session) ResetOffset(string, int32, int64, string) {}
func (s *session) MarkMessage(m *sarama.ConsumerMessage, md string) {
	s.MarkOffset(m.Topic, m.Partition, m.Offset+1, md)
}
func (s *session) Context() context.Context { return s.ctx }

// Commit is sarama's commit of the marked offsets: the invariant a commit
// must keep is checked here, when it happens.
func (s *session) Commit() {
	if s.inc.dead.Load() {
		return // the process is gone: its commit never reached Kafka
	}
	s.mu.Lock()
	marks := s.marks
	s.mu.Unlock()
	w := s.inc.w
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range marks {
		if marks[p] <= w.committed[p] {
			continue
		}
		if marks[p] > int64(len(w.log[p])) {
			w.errs = append(w.errs, fmt.Sprintf("partition %d: commit at %d, past the log's end %d", p, marks[p], len(w.log[p])))
		}
		for off := w.committed[p]; off < marks[p] && off < int64(len(w.log[p])); off++ {
			if !w.settledLocked(w.log[p][off]) {
				w.errs = append(w.errs, fmt.Sprintf("partition %d: commit at %d passes offset %d, neither indexed nor dead-lettered", p, marks[p], off))
				break
			}
		}
		w.committed[p] = marks[p]
	}
}

// settledLocked says whether r has its outcome: its document in
// Elasticsearch, or a dead letter.
func (w *world) settledLocked(r *rec) bool {
	if raw, ok := w.es.Doc(w.idx.Name(topic, r.place), r.id); ok && showsRecord(raw, r) {
		return true
	}
	for _, l := range w.letters {
		if l.part == r.msg.Partition && l.offset == r.msg.Offset {
			return true
		}
	}
	return false
}

// showsRecord reports whether the document raw is r's: its message and
// where it was read.
func showsRecord(raw []byte, r *rec) bool {
	var doc struct {
		Message string
		Kafka   struct {
			Partition int32
			Offset    int64
		}
	}
	return json.Unmarshal(raw, &doc) == nil && doc.Message == string(r.msg.Value) && doc.Kafka.Partition == r.msg.Partition && doc.Kafka.Offset == r.msg.Offset
}

// claim feeds one partition from an offset, following the log as it grows;
// each fetch takes what the log holds and reports it as the high-water mark.
type claim struct {
	w       *world
	part    int32
	initial int64
	msgs    chan *sarama.ConsumerMessage
	hwm     atomic.Int64
}

func (c *claim) Topic() string                            { return topic }
func (c *claim) Partition() int32                         { return c.part }
func (c *claim) InitialOffset() int64                     { return c.initial }
func (c *claim) HighWaterMarkOffset() int64               { return c.hwm.Load() }
func (c *claim) Messages() <-chan *sarama.ConsumerMessage { return c.msgs }

func (c *claim) feed(ctx context.Context) {
	defer close(c.msgs)
	next := c.initial
	for {
		c.w.mu.Lock()
		recs := c.w.log[c.part][next:]
		grew := c.w.grew
		c.w.mu.Unlock()
		if len(recs) == 0 {
			select {
			case <-grew:
				continue
			case <-ctx.Done():
				return
			}
		}
		c.hwm.Store(next + int64(len(recs)))
		for _, r := range recs {
			select {
			case c.msgs <- r.msg:
			case <-ctx.Done():
				return
			}
		}
		next += int64(len(recs))
	}
}

// deadLetters is the dead-letter target as each incarnation sees it.
type deadLetters struct{ inc *incarnation }

func (d deadLetters) Send(ctx context.Context, doc *eswriter.Doc, reason string) error {
	w := d.inc.w
	if d.inc.dead.Load() {
		return errors.New("crashed")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dlqFails {
		return errors.New("the dead-letter topic is unreachable")
	}
	r := doc.Origin.Record()
	w.letters = append(w.letters, letter{part: r.Partition, offset: r.Offset, reason: reason})
	return nil
}

// transport is the fake Elasticsearch as an incarnation reaches it: not
// at all once it crashed.
type transport struct {
	inc  *incarnation
	next http.RoundTripper
}

func (t transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.inc.dead.Load() {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errors.New("crashed")
	}
	return t.next.RoundTrip(r)
}

// start runs a new transfer process and its first session.
func (w *world) start(t *testing.T) {
	w.incs++
	ctx, cancel := context.WithCancel(context.Background())
	inc := &incarnation{w: w, n: w.incs, ctx: ctx, cancel: cancel, wdone: make(chan struct{})}
	es, err := elastic.NewClient(elastic.SetURL(w.es.URL()), elastic.SetSniff(false), elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Transport: transport{inc: inc, next: w.es.Transport()}}))
	if err != nil {
		t.Fatalf("elastic client: %v", err)
	}
	inc.es = es
	inc.writer = eswriter.New(eswriter.Config{Workers: 2, BulkActions: 64, BulkBytes: 64 << 10, FlushInterval: 200 * time.Millisecond,
		RetryBackoffMax: 5 * time.Second, ShutdownTimeout: 2 * time.Second}, es, deadLetters{inc}, w.logger, nil)
	go func() {
		defer close(inc.wdone)
		_ = inc.writer.Run(ctx)
	}()
	inc.cons = transfer.NewConsumer(transfer.Options{Index: w.idx, Out: inc.writer, DrainTimeout: 2 * time.Second, Verify: verifier{w.key},
		MaxAge: simMaxAge, MaxFuture: time.Hour}, w.logger, nil)
	w.inc = inc
	w.session()
}

// session starts a generation of the group for the running process.
func (w *world) session() {
	inc := w.inc
	ctx, cancel := context.WithCancel(inc.ctx)
	s := &session{inc: inc, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	if inc.sess != nil {
		s.gen = inc.sess.gen + 1
	}
	w.mu.Lock()
	for p := range s.marks {
		s.marks[p] = w.committed[p]
	}
	w.mu.Unlock()
	inc.sess = s
	_ = inc.cons.Setup(s)
	var wg sync.WaitGroup
	for p := range partitions {
		cl := &claim{w: w, part: int32(p), initial: s.marks[p], msgs: make(chan *sarama.ConsumerMessage, 16)}
		wg.Add(2)
		go func() { defer wg.Done(); cl.feed(ctx) }()
		go func() {
			defer wg.Done()
			if err := inc.cons.ConsumeClaim(s, cl); err != nil {
				w.failf("ConsumeClaim: %v", err)
			}
		}()
	}
	// sarama commits what was marked every second (Consumer.Offsets.AutoCommit)
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				s.Commit()
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		<-tickDone
		_ = inc.cons.Cleanup(s) // commits
		close(s.done)
	}()
}

// rebalance ends the session (its claims drain and commit) and starts the
// next.
func (w *world) rebalance() {
	s := w.inc.sess
	s.cancel()
	<-s.done
	w.session()
}

// crash kills the process at this instant: from now on nothing it does
// reaches Kafka, Elasticsearch or the dead-letter topic; then it is let
// wind down, and a new one starts from the committed offsets.
func (w *world) crash(t *testing.T) {
	inc := w.inc
	inc.dead.Store(true)
	inc.cancel()
	<-inc.sess.done
	<-inc.wdone
	inc.es.Stop()
	w.start(t)
}

// stop ends the last process cleanly.
func (w *world) stop() {
	inc := w.inc
	inc.sess.cancel()
	<-inc.sess.done
	inc.cancel()
	<-inc.wdone
	inc.es.Stop()
}

// produce appends o.n records to partition o.part, the o.status-th (if
// any) one Elasticsearch refuses for good. An agent's records carry its
// host and event ids (the _id comes from them) and are signed in chunks of
// up to o.chunk; a foreign producer's carry nothing (topic-partition-offset
// _id); a forger's claim the agent's host and the event ids of the agent's
// own records, unsigned.
func (w *world) produce(o op) {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := o.part
	var chunk []*sarama.ConsumerMessage
	for i := 0; i < o.n; i++ {
		off := int64(len(w.log[p]))
		value := fmt.Sprintf("p%d-%d %s", p, off, o.source)
		r := &rec{poison: i == o.status && o.source != "forger", forged: o.source == "forger", place: day}
		if r.poison {
			value = "poison " + value
		}
		msg := &sarama.ConsumerMessage{Topic: topic, Partition: int32(p), Offset: off, Timestamp: day, Value: []byte(value)}
		switch o.source {
		case "foreign":
			r.id = topic + "-" + strconv.Itoa(p) + "-" + strconv.FormatInt(off, 10)
			if o.late { // unsigned, too old to be taken: placed by its Kafka timestamp
				stamp := day.Add(-12 * time.Hour)
				msg.Headers = []*sarama.RecordHeader{{Key: []byte(record.HeaderIndexTime), Value: strconv.AppendInt(nil, stamp.UnixMilli(), 10)}}
			}
		default:
			ev := fmt.Sprintf("inst%d-%d", p, off*100)
			if r.forged {
				// The event id of an agent's record, before or to come.
				ev = fmt.Sprintf("inst%d-%d", p, (off+int64(i%3)-1)*100)
			}
			msg.Headers = []*sarama.RecordHeader{{Key: []byte(record.HeaderHostName), Value: []byte(agentHost)},
				{Key: []byte(record.HeaderHostIP), Value: []byte(agentIP)}, {Key: []byte(record.HeaderEventID), Value: []byte(ev)}}
			if o.late {
				stamp := day.Add(-12*time.Hour - time.Duration(i)*time.Millisecond) // 23:59:59.9… the day before
				msg.Headers = append(msg.Headers, &sarama.RecordHeader{Key: []byte(record.HeaderIndexTime), Value: strconv.AppendInt(nil, stamp.UnixMilli(), 10)})
				if o.source == "agent" {
					r.place = stamp
				}
			}
			r.id = record.DocID([]byte(agentHost), []byte(agentIP), []byte(ev))
		}
		r.msg = msg
		w.log[p] = append(w.log[p], r)
		if o.source == "agent" {
			chunk = append(chunk, msg)
			if len(chunk) == o.chunk || i == o.n-1 {
				testutil.SignChunk(w.key, 2, chunk)
				chunk = chunk[:0]
			}
		}
	}
	close(w.grew)
	w.grew = make(chan struct{})
}

// simMaxAge is how far before its Kafka timestamp an unsigned record's
// stamp is taken; the late stamps are older (a signed one is taken
// whatever its age).
const simMaxAge = 6 * time.Hour

const (
	agentHost = "web-1"
	agentIP   = "10.0.0.1"
)

// verifier knows the agent's key (the keyring's part, which reads etcd, is
// tested in keyring): a chunk whose signature verifies is the agent's;
// an unsigned record is indexed only if it claims no host (a foreign
// producer's, accept_unsigned); anything else is quarantined.
type verifier struct{ k *record.SigningKey }

func (v verifier) Check(_ context.Context, msgs []*sarama.ConsumerMessage, views []record.View, _ time.Time, ch *record.Chunk, out []record.Verdict) bool {
	last := len(msgs) - 1
	signed := false
	if views[last].Sigs == 1 {
		if _, n, cx, _, err := record.ParseSig(views[last].Sig); err == nil && n == len(msgs) {
			ch.Reset(v.k, msgs[0].Topic, cx)
			for _, m := range msgs {
				ch.Add(m.Key, m.Value, kafka.Headers(m.Headers))
			}
			signed = ch.Verify(views[last].Sig) == nil
		}
	}
	for i := range out {
		switch {
		case signed:
			out[i] = record.Verdict{Signed: true, HostName: []byte(agentHost), HostIP: []byte(agentIP)}
		case views[last].Sigs == 0 && len(views[i].HostIP) == 0:
			out[i] = record.Verdict{}
		default:
			out[i] = record.Verdict{Quarantine: "not the agent's"}
		}
	}
	return true
}

// itemFault is the fake Elasticsearch's answer to one item: poison
// records fail for good; while an item fault is on, about a third of the
// items fail with it.
func (w *world) itemFault(_, id string, source []byte) *fakees.Fault {
	var doc struct{ Message string }
	if json.Unmarshal(source, &doc) == nil && len(doc.Message) > 6 && doc.Message[:6] == "poison" {
		return &fakees.Fault{Status: 400}
	}
	w.mu.Lock()
	code, gen := w.itemCode, w.faultGen
	w.mu.Unlock()
	if code == 0 {
		return nil
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", id, gen)
	if h.Sum32()%3 == 0 {
		return &fakees.Fault{Status: code}
	}
	return nil
}

func (w *world) apply(t *testing.T, o op) {
	switch o.kind {
	case "produce":
		w.produce(o)
	case "sleep":
		time.Sleep(o.d)
	case "items":
		w.mu.Lock()
		w.itemCode, w.faultGen = o.status, w.faultGen+1
		w.mu.Unlock()
	case "request":
		switch o.status {
		case 413:
			w.es.SetMaxContentLength(2000)
		default:
			code := o.status
			w.es.SetRequestFault(func(method, path string) int {
				if method == http.MethodPost {
					return code
				}
				return 0
			})
		}
	case "es down":
		w.es.SetUnavailable(true)
	case "es drops answers": // applied, the answer lost: a timeout
		w.es.SetDropResponses(true)
	case "es drops requests":
		w.es.SetDropConnections(true)
	case "es ok":
		w.heal(false)
	case "latency":
		w.es.SetLatency(o.d)
	case "dlq fails", "dlq ok":
		w.mu.Lock()
		w.dlqFails = o.kind == "dlq fails"
		w.mu.Unlock()
	case "rebalance":
		w.rebalanced = true
		w.rebalance()
	case "crash":
		w.crashed = true
		w.crash(t)
	}
}

// heal takes every fault away (the poison records stay refused).
func (w *world) heal(dlq bool) {
	w.es.SetUnavailable(false)
	w.es.SetRequestFault(nil)
	w.es.SetMaxContentLength(0)
	w.es.SetLatency(0)
	w.es.SetDropResponses(false)
	w.es.SetDropConnections(false)
	w.mu.Lock()
	w.itemCode = 0
	if dlq {
		w.dlqFails = false
	}
	w.mu.Unlock()
}

// run plays ops, heals the world, lets the transfer finish, and checks.
func run(t *testing.T, ops []op) *world {
	l := logrus.New()
	l.SetOutput(io.Discard)
	if os.Getenv("SIMLOG") != "" {
		l.SetOutput(os.Stderr)
		l.SetLevel(logrus.DebugLevel)
	}
	idx, err := index.Parse(config.DefaultIndex)
	if err != nil {
		t.Fatal(err)
	}
	key, err := record.NewSigningKey(record.KeyID{1, 2, 3, 4}, bytes.Repeat([]byte{7}, record.SecretLen))
	if err != nil {
		t.Fatal(err)
	}
	w := &world{grew: make(chan struct{}), es: fakees.NewInProcess(), idx: idx, logger: logrus.NewEntry(l), key: key}
	defer w.es.Close()
	w.es.SetItemFaultDetail(w.itemFault)
	w.start(t)
	for _, o := range ops {
		w.apply(t, o)
		synctest.Wait()
	}
	w.heal(true)
	// Everything settles and is committed within a bounded time once the
	// world is healed.
	deadline := time.Now().Add(10 * time.Minute)
	for !w.allCommitted() {
		if time.Now().After(deadline) {
			w.failf("not everything committed 10 minutes after the faults ended: committed %v of %v", w.committedNow(), w.lens())
			break
		}
		time.Sleep(time.Second)
	}
	w.stop()
	w.check()
	return w
}

func (w *world) allCommitted() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for p := range w.log {
		if w.committed[p] < int64(len(w.log[p])) {
			return false
		}
	}
	return true
}

func (w *world) committedNow() [partitions]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed
}

func (w *world) lens() [partitions]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n [partitions]int
	for p := range w.log {
		n[p] = len(w.log[p])
	}
	return n
}

// check holds the guarantees over the whole run:
//   - every record ends as its document (by index and _id, showing the
//     record) or a dead letter with a reason; a poison record never as a
//     document, and no other as a dead letter (what passes, a whole
//     request refused as unauthorized included, is retried);
//   - nothing is stored that is no record's, each document in the daily
//     index of its record's signed index-time stamp (or of its Kafka
//     timestamp: unsigned, a stamp older than MaxAge is not taken);
//   - a stored document is never overwritten;
//   - without a crash or a rebalance (nothing comes again), every record
//     ends exactly once: one document or one dead letter, never both;
//   - (at every commit, see session.Commit) a commit passes no record
//     without its outcome.
func (w *world) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	docs := w.es.Docs()
	letters := map[[2]int64]int{}
	for _, l := range w.letters {
		if l.reason == "" {
			w.errs = append(w.errs, fmt.Sprintf("dead letter of %d/%d without a reason", l.part, l.offset))
		}
		if l.part < 0 || l.part >= partitions || l.offset < 0 || l.offset >= int64(len(w.log[l.part])) {
			w.errs = append(w.errs, fmt.Sprintf("dead letter of %d/%d, no such record", l.part, l.offset))
			continue
		}
		letters[[2]int64{int64(l.part), l.offset}]++
	}
	ids := map[string]string{} // _id -> its index
	again := w.crashed || w.rebalanced
	for p := range w.log {
		for _, r := range w.log[p] {
			name := w.idx.Name(topic, r.place)
			if _, ok := ids[r.id]; !ok || !r.forged { // a forger's _id is an agent record's
				ids[r.id] = name
			}
			raw, indexed := docs[name][r.id]
			dead := letters[[2]int64{int64(p), r.msg.Offset}]
			where := fmt.Sprintf("partition %d offset %d (%s)", p, r.msg.Offset, r.msg.Value)
			if r.forged {
				// Its _id is an agent's record's: what matters is that it
				// is quarantined, and that no document shows it.
				if dead == 0 {
					w.errs = append(w.errs, where+": a forged record was not quarantined")
				}
				if indexed && showsRecord(raw, r) {
					w.errs = append(w.errs, where+": a forged record was indexed")
				}
				continue
			}
			switch {
			case !indexed && dead == 0:
				w.errs = append(w.errs, where+": lost, neither indexed nor dead-lettered")
			case indexed && r.poison:
				w.errs = append(w.errs, where+": a record Elasticsearch refuses was indexed")
			case dead > 0 && !r.poison:
				w.errs = append(w.errs, where+": dead-lettered, though Elasticsearch refused it only for a while")
			case !again && indexed && dead > 0:
				w.errs = append(w.errs, where+": indexed and dead-lettered, with nothing delivered again")
			case !again && dead > 1:
				w.errs = append(w.errs, fmt.Sprintf("%s: %d dead letters, with nothing delivered again", where, dead))
			}
			if indexed && !showsRecord(raw, r) {
				w.errs = append(w.errs, fmt.Sprintf("%s: its document does not show it: %s", where, raw))
			}
		}
	}
	if n := w.es.Stats().Updated; n > 0 {
		w.errs = append(w.errs, fmt.Sprintf("%d stored documents were overwritten (a stored _id is only ever created)", n))
	}
	for ix, byID := range docs {
		for id := range byID {
			if want, ok := ids[id]; !ok || ix != want {
				w.errs = append(w.errs, fmt.Sprintf("document %s/%s is no record's", ix, id))
			}
		}
	}
}

// TestTransferPath draws schedules (-rapid.checks=N, default 100;
// -rapid.seed=N replays one). make test runs it with the race detector,
// and then as many as fit in its share of time (TestTransferPathSoak).
func TestTransferPath(t *testing.T) {
	rapid.Check(t, schedules(t, nil))
}

// TestTransferPathSoak runs schedules for LOGPIPE_SOAK (a duration: make soak,
// make test-sim and make test), -rapid.checks seeds at a time, and says
// how many ran.
func TestTransferPathSoak(t *testing.T) {
	testutil.Soak(t, "transfersim", func(n *int) func(*rapid.T) { return schedules(t, n) })
}

// schedules is the property: a drawn schedule, played, keeps the
// guarantees. n, if set, counts the schedules played.
func schedules(t *testing.T, n *int) func(*rapid.T) {
	return testutil.Schedules(t, drawSchedule, 30, func(t *testing.T, ops []op) []string { return run(t, ops).errs }, n)
}
