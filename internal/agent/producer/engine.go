package producer

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/backoff"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// The send path. Every event of a batch comes from one file, so a batch
// goes to one partition (the file's path picks it) as one run of records.
// One goroutine (route) turns batches into sarama records and groups them,
// per partition leader, into produce requests; one goroutine per broker
// (send) encodes and writes the requests, several in flight; sarama's
// reader goroutine per broker hands every response to a queue that one
// goroutine (settle) works through: acknowledgements to the trackers and
// the bounds, failures to a queue that gives them back to route after a
// backoff. Channels carry batches and requests, never single lines: that
// is what sarama's AsyncProducer costs per line, and what this avoids.

// tp is a topic partition.
type tp struct {
	topic string
	part  int32
}

// batchState is one batch from its first send to its last ack.
type batchState struct {
	left   int // events not yet acknowledged; settle's
	bytes  int64
	events int64
	// share and what the batch holds of it (see Producer.shareOf).
	share              *share
	shareEv, shareByte int64
	slab               *slab
	batch              *event.Batch
	one                chunk    // the first (usually only) chunk
	more               []*chunk // the others, if the batch is larger than a record batch may be
}

// chunk is events [from, to) of one batch, sent in one record batch.
type chunk struct {
	st       *batchState
	from, to int
	size     int // encoded size, at most
	attempts int
	stale    bool // the last attempt failed: look the leader up again
}

// partSet is what one request carries for one partition.
type partSet struct {
	tp     tp
	chunks []*chunk
	size   int
}

// reqSet is one produce request being filled for, or on its way to, a
// broker.
type reqSet struct {
	c     conn
	parts []*partSet
	size  int
	n     int // events
}

func (s *reqSet) part(t tp) *partSet {
	for _, ps := range s.parts {
		if ps.tp == t {
			return ps
		}
	}
	ps := &partSet{tp: t}
	s.parts = append(s.parts, ps)
	return ps
}

func (s *reqSet) events() int {
	n := 0
	for _, ps := range s.parts {
		for _, c := range ps.chunks {
			n += c.to - c.from
		}
	}
	return n
}

// activity is how many of the set's events are not Background.
func (s *reqSet) activity() int {
	n := 0
	for _, ps := range s.parts {
		for _, c := range ps.chunks {
			if !c.st.batch.Background {
				n += c.to - c.from
			}
		}
	}
	return n
}

// result is what became of a request: a response, an error, or (without
// acks) nothing to wait for. A conn of a closed connection comes back as
// closed.
type result struct {
	set    *reqSet
	resp   *sarama.ProduceResponse
	err    error
	noAcks bool
	route  bool // failed before it reached a broker
	closed conn
}

// resultQueue never blocks its producer: sarama's reader goroutines push
// to it, and must not wait for anyone (see sarama's AsyncProduce).
type resultQueue struct {
	mu    sync.Mutex
	q     []result
	ready chan struct{}
}

func (r *resultQueue) push(x result) {
	r.mu.Lock()
	r.q = append(r.q, x)
	r.mu.Unlock()
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

func (r *resultQueue) swap(spare []result) []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.q
	r.q = spare[:0]
	return out
}

type sender struct {
	in   chan *reqSet
	ptrs []*sarama.Record // request scratch: the records of one request
}

// engine is one connection's worth of send path (one Run).
type engine struct {
	p        *Producer
	cl       cluster
	acks     sarama.RequiredAcks
	timeout  int32
	version  int16
	codec    sarama.CompressionCodec
	level    int
	maxBatch int // bytes of one record batch, before compression
	flushAt  int // bytes of one request
	flushN   int // events of one request
	interval time.Duration
	log      *logrus.Entry

	// route's
	pending  map[conn]*reqSet
	senders  map[conn]*sender
	leaders  map[tp]conn
	parts    map[string][]int32
	timer    *time.Timer
	timerOn  bool
	retries  chan *chunk
	refresh  chan string
	sendWG   sync.WaitGroup
	res      resultQueue
	seqs     []uint64 // settle's
	closing  map[conn]bool
	ackCount int
}

// recordOverhead is the most a record's framing takes besides its key,
// value and headers (sarama's own estimate).
const (
	recordOverhead      = 5*binary.MaxVarintLen32 + binary.MaxVarintLen64 + 1
	recordBatchOverhead = 61
	headerOverhead      = 2 * binary.MaxVarintLen32
)

func (p *Producer) newEngine(cl cluster, scfg *sarama.Config) *engine {
	e := &engine{
		p: p, cl: cl, log: p.log,
		acks:     scfg.Producer.RequiredAcks,
		timeout:  int32(scfg.Producer.Timeout / time.Millisecond),
		version:  produceVersion(scfg.Version),
		codec:    scfg.Producer.Compression,
		level:    scfg.Producer.CompressionLevel,
		maxBatch: scfg.Producer.MaxMessageBytes - recordBatchOverhead,
		// A request holds at most a quarter of what may be between read and
		// ack, so that several are in flight while the next one fills.
		flushAt:  max(min(p.cfg.Kafka.FlushBytes, p.cfg.Kafka.BufferBytes/4), 1),
		flushN:   max(p.cfg.Kafka.ChanMaxSize/4, 1),
		interval: p.cfg.Kafka.FlushInterval,
		pending:  map[conn]*reqSet{},
		senders:  map[conn]*sender{},
		leaders:  map[tp]conn{},
		parts:    map[string][]int32{},
		timer:    time.NewTimer(time.Hour),
		retries:  make(chan *chunk, 1024),
		refresh:  make(chan string, 64),
		res:      resultQueue{ready: make(chan struct{}, 1)},
		closing:  map[conn]bool{},
	}
	e.timer.Stop()
	return e
}

// produceVersion is the newest Produce request version the configured
// Kafka version speaks, as sarama's own producer picks it (0.11 and newer:
// record batches, which carry headers).
func produceVersion(v sarama.KafkaVersion) int16 {
	switch {
	case v.IsAtLeast(sarama.V3_7_0_0):
		return 10
	case v.IsAtLeast(sarama.V2_8_0_0):
		return 9
	case v.IsAtLeast(sarama.V2_4_0_0):
		return 8
	case v.IsAtLeast(sarama.V2_1_0_0):
		return 7
	case v.IsAtLeast(sarama.V2_0_0_0):
		return 6
	case v.IsAtLeast(sarama.V1_0_0_0):
		return 5
	}
	return 3
}

// route places batches and retries into requests until ctx ends.
func (e *engine) route(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-e.retries:
			e.p.m.retried.Add(float64(c.to - c.from))
			e.place(c, ctx.Done())
		case b := <-e.p.ch:
			e.p.m.queued.Add(-int64(len(b.Events)))
			st := e.p.prepare(b, e.maxBatch)
			e.p.inflight.Add(int64(len(b.Events)))
			e.place(&st.one, ctx.Done())
			for _, c := range st.more {
				e.place(c, ctx.Done())
			}
		case <-e.timer.C:
			e.timerOn = false
			e.flushAll(ctx.Done())
		case <-e.p.starved:
			e.flushAll(ctx.Done())
		}
		if e.interval == 0 && len(e.p.ch) == 0 && len(e.retries) == 0 {
			e.flushAll(ctx.Done())
		}
	}
}

// place adds c to the request for its partition's leader.
func (e *engine) place(c *chunk, stop <-chan struct{}) {
	src := c.st.batch.Events[c.from].Source
	if c.stale {
		c.stale = false
		e.forget(src.Topic)
	}
	parts, err := e.partitions(src.Topic)
	var (
		t  tp
		cn conn
	)
	if err == nil {
		t = tp{src.Topic, parts[src.KeyHash()%uint32(len(parts))]}
		cn, err = e.leader(t)
	}
	if err != nil {
		e.res.push(result{set: &reqSet{parts: []*partSet{{tp: t, chunks: []*chunk{c}}}}, err: err, route: true})
		return
	}
	set := e.pending[cn]
	if set == nil {
		set = &reqSet{c: cn}
		e.pending[cn] = set
	}
	ps := set.part(t)
	if len(ps.chunks) > 0 && ps.size+c.size > e.maxBatch {
		e.flush(cn, stop)
		set = &reqSet{c: cn}
		e.pending[cn] = set
		ps = set.part(t)
	}
	ps.chunks = append(ps.chunks, c)
	ps.size += c.size
	set.size += c.size
	set.n += c.to - c.from
	switch {
	case set.size >= e.flushAt || set.n >= e.flushN:
		e.flush(cn, stop)
	case !e.timerOn && e.interval > 0:
		e.timer.Reset(e.interval)
		e.timerOn = true
	}
}

func (e *engine) partitions(topic string) ([]int32, error) {
	if ps := e.parts[topic]; len(ps) > 0 {
		return ps, nil
	}
	ps, err := e.cl.Partitions(topic)
	if err == nil && len(ps) == 0 {
		err = sarama.ErrLeaderNotAvailable
	}
	if err != nil {
		return nil, err
	}
	e.parts[topic] = ps
	return ps, nil
}

func (e *engine) leader(t tp) (conn, error) {
	if cn := e.leaders[t]; cn != nil {
		return cn, nil
	}
	cn, err := e.cl.Leader(t.topic, t.part)
	if err != nil {
		return nil, err
	}
	e.leaders[t] = cn
	return cn, nil
}

// forget drops what route knows of topic's partitions and leaders, and
// asks for fresh metadata (in the background: Kafka may be down).
func (e *engine) forget(topic string) {
	delete(e.parts, topic)
	for t := range e.leaders {
		if t.topic == topic {
			delete(e.leaders, t)
		}
	}
	select {
	case e.refresh <- topic:
	default: // one is due anyway
	}
}

// refresher refreshes the metadata of topics whose sends failed, at most
// every 250 ms.
func (e *engine) refresher(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case topic := <-e.refresh:
			topics := []string{topic}
		more:
			for {
				select {
				case t := <-e.refresh:
					topics = append(topics, t)
				default:
					break more
				}
			}
			_ = e.cl.RefreshMetadata(topics...) // failures show on the next send
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
}

func (e *engine) flushAll(stop <-chan struct{}) {
	for cn := range e.pending {
		e.flush(cn, stop)
	}
	if e.timerOn {
		e.timer.Stop()
		e.timerOn = false
	}
}

// flush hands cn's request to its sender. Once stop is closed a request
// that cannot be handed over is left: never sent, never acknowledged, it
// is read again after the restart.
func (e *engine) flush(cn conn, stop <-chan struct{}) {
	set := e.pending[cn]
	delete(e.pending, cn)
	if set == nil || len(set.parts) == 0 {
		return
	}
	s := e.senders[cn]
	if s == nil {
		s = &sender{in: make(chan *reqSet, 1)}
		e.senders[cn] = s
		e.sendWG.Add(1)
		go func() { defer e.sendWG.Done(); e.send(s, cn) }()
	}
	select {
	case s.in <- set:
	default:
		select {
		case s.in <- set:
		case <-stop:
		}
	}
}

// send encodes and writes cn's requests; sarama keeps up to
// MaxOpenRequests of them in flight and blocks here beyond that.
func (e *engine) send(s *sender, cn conn) {
	for set := range s.in {
		req := e.request(set, s)
		n := set.events()
		e.p.m.sent.Add(float64(n))
		e.p.m.sentN.Add(uint64(set.activity()))
		err := cn.produce(req, set, func(resp *sarama.ProduceResponse, err error) {
			e.res.push(result{set: set, resp: resp, err: err})
		})
		switch {
		case err != nil:
			e.res.push(result{set: set, err: err})
		case e.acks == sarama.NoResponse:
			e.res.push(result{set: set, noAcks: true})
		}
	}
}

// request builds the produce request of set: one record batch per
// partition, its records numbered and timed relative to its first.
func (e *engine) request(set *reqSet, s *sender) *sarama.ProduceRequest {
	req := &sarama.ProduceRequest{RequiredAcks: e.acks, Timeout: e.timeout, Version: e.version}
	if n := set.events(); cap(s.ptrs) < n {
		s.ptrs = make([]*sarama.Record, 0, n)
	}
	ptrs := s.ptrs[:0]
	for _, ps := range set.parts {
		start := len(ptrs)
		c0 := ps.chunks[0]
		first := stamp(c0.st.batch.Events[c0.from].Time)
		var maxDelta time.Duration
		for _, c := range ps.chunks {
			evs, recs := c.st.batch.Events, c.st.slab.recs
			for i := c.from; i < c.to; i++ {
				r := &recs[i]
				r.OffsetDelta = int64(len(ptrs) - start)
				r.TimestampDelta = stamp(evs[i].Time).Sub(first)
				maxDelta = max(maxDelta, r.TimestampDelta)
				ptrs = append(ptrs, r)
			}
		}
		rb := &sarama.RecordBatch{
			Version: 2, Codec: e.codec, CompressionLevel: e.level,
			ProducerID: -1, ProducerEpoch: -1,
			FirstTimestamp: first, MaxTimestamp: first.Add(maxDelta),
			Records:         ptrs[start:len(ptrs):len(ptrs)],
			LastOffsetDelta: int32(len(ptrs) - start - 1),
		}
		req.AddBatch(ps.tp.topic, ps.tp.part, rb)
	}
	// The request is encoded and written before AsyncProduce returns: the
	// scratch is free again then.
	s.ptrs = ptrs[:0]
	return req
}

func stamp(t time.Time) time.Time {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Truncate(time.Millisecond)
}

// settle works through results until stop is closed, and re-queues failed
// chunks when their backoff is over.
func (e *engine) settle(stop <-chan struct{}) {
	var (
		q     dueQueue
		spare []result
	)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	arm := func() {
		if len(q) > 0 {
			timer.Reset(max(time.Until(q[0].due), 0))
		}
	}
	for {
		select {
		case <-stop:
			return
		case <-e.res.ready:
			rs := e.res.swap(spare)
			for i := range rs {
				e.handle(&rs[i], &q)
			}
			clear(rs)
			spare = rs
			arm()
		case <-timer.C:
			now := time.Now()
		move:
			for len(q) > 0 && !q[0].due.After(now) {
				select {
				case e.retries <- q[0].c:
					q.pop()
				default: // route is busy: try again shortly
					timer.Reset(10 * time.Millisecond)
					break move
				}
			}
			if len(q) > 0 && q[0].due.After(now) {
				arm()
			}
		}
	}
}

func (e *engine) handle(r *result, q *dueQueue) {
	switch {
	case r.closed != nil:
		delete(e.closing, r.closed)
		return
	case r.noAcks:
		for _, ps := range r.set.parts {
			for _, c := range ps.chunks {
				e.ack(c)
			}
		}
		return
	case r.err != nil:
		if !r.route {
			e.closeConn(r.set.c, r.err)
		}
		for _, ps := range r.set.parts {
			for _, c := range ps.chunks {
				e.retry(c, r.err, q)
			}
		}
		return
	}
	for _, ps := range r.set.parts {
		var err error
		switch blk := r.resp.GetBlock(ps.tp.topic, ps.tp.part); {
		case blk == nil:
			err = sarama.ErrIncompleteResponse
		case !errors.Is(blk.Err, sarama.ErrNoError):
			err = blk.Err
		}
		for _, c := range ps.chunks {
			if err != nil {
				e.retry(c, err, q)
			} else {
				e.ack(c)
			}
		}
	}
}

// closeConn closes a connection whose request failed, so that the next
// send to it reconnects; in the background, since closing waits for the
// requests still in flight on it.
func (e *engine) closeConn(cn conn, err error) {
	if cn == nil || e.closing[cn] {
		return
	}
	e.closing[cn] = true
	e.thr("conn", err)
	go func() {
		_ = cn.Close()
		e.res.push(result{closed: cn})
	}()
}

func (e *engine) thr(key string, err error) {
	e.p.thr.Log(key, e.log.WithError(err), logrus.WarnLevel, "sending to Kafka failed; retrying with backoff (nothing is dropped)")
}

// retry schedules c for a re-send after a backoff that grows with its
// attempts.
func (e *engine) retry(c *chunk, err error, q *dueQueue) {
	c.attempts++
	c.stale = true
	topic := c.st.batch.Events[c.from].Source.Topic
	e.p.m.failed.Add(float64(c.to - c.from))
	if topicError(err) {
		e.p.gates.block(topic, err)
	}
	e.p.ready.Store(false)
	e.p.thr.Log("send", e.log.WithError(err).WithField("topic", topic), logrus.WarnLevel, "sending to Kafka failed; retrying with backoff (nothing is dropped)")
	b := backoff.Backoff{Min: 200 * time.Millisecond, Max: e.p.cfg.Kafka.RetryBackoffMax}
	for i := 1; i < c.attempts; i++ {
		b.Next()
	}
	q.push(dueMsg{due: time.Now().Add(b.Next()), c: c})
}

// ack reports c's events to their trackers and, with the batch's last
// ack, releases its bounds and its memory.
func (e *engine) ack(c *chunk) {
	p, st := e.p, c.st
	evs := st.batch.Events[c.from:c.to]
	seqs := e.seqs[:0]
	var cur acktrack.Acker
	flush := func() {
		switch a := cur.(type) {
		case nil:
		case batchAcker:
			a.AckBatch(seqs)
		default:
			for _, s := range seqs {
				a.Ack(s)
			}
		}
		seqs = seqs[:0]
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Acker != cur {
			flush()
			cur = ev.Acker
		}
		seqs = append(seqs, ev.Seq)
		if e.ackCount++; e.ackCount%latencySample == 0 {
			p.m.latency.Observe(time.Since(ev.Time).Seconds())
		}
	}
	flush()
	e.seqs = seqs
	n := len(evs)
	p.inflight.Add(-int64(n))
	p.m.acked.Add(float64(n))
	p.ready.Store(true)
	if st.left -= n; st.left == 0 {
		// The batch's last ack: nothing touches it, its slab or its events
		// again.
		p.bytes.Release(st.bytes)
		p.events.Release(st.events)
		if st.share != nil {
			st.share.release(st.shareEv, st.shareByte)
		}
		p.m.buffered.Add(-st.bytes)
		p.recycle(st.slab)
		if st.batch.Done != nil {
			st.batch.Done(st.batch)
		}
	}
}

// latencySample is how often an ack is timed for the latency histogram.
const latencySample = 8

// batchAcker is an Acker that takes several acknowledgements at once.
type batchAcker interface {
	AckBatch(seqs []uint64)
}

// slab is the memory of one batch's records: the records, their headers,
// pointers to the headers, and the header bytes. Slabs of full batches are
// reused once the batch is acknowledged: at full speed they are most of
// what the agent allocates, and every byte not allocated is a byte the
// garbage collector does not chase.
type slab struct {
	recs  []sarama.Record
	hdrs  []record.Header
	hptrs []*sarama.RecordHeader
	buf   []byte
}

// slabEvents is the capacity of a reused slab. Batches of fewer than
// three quarters as many events get a slab of their own: a trickle from
// many files must not pin full-size slabs, and buffer_bytes counts the
// slab per event (TestMessageMemoryIsCounted).
const slabEvents = 1024

func (p *Producer) slab(n, nh int) *slab {
	if n < slabEvents*3/4 || n > slabEvents {
		return &slab{
			recs:  make([]sarama.Record, n),
			hdrs:  make([]record.Header, 0, nh),
			hptrs: make([]*sarama.RecordHeader, nh),
			buf:   make([]byte, 0, n*headerBytes),
		}
	}
	sl, _ := p.slabs.Get().(*slab)
	if sl != nil {
		p.reused.Add(1)
	} else {
		sl = &slab{
			recs: make([]sarama.Record, slabEvents),
			buf:  make([]byte, 0, slabEvents*headerBytes),
		}
	}
	if cap(sl.hdrs) < nh {
		sl.hdrs = make([]record.Header, 0, max(nh, slabEvents*3))
		sl.hptrs = make([]*sarama.RecordHeader, cap(sl.hdrs))
	}
	sl.recs, sl.hdrs, sl.buf = sl.recs[:n], sl.hdrs[:0], sl.buf[:0]
	return sl
}

// recycle takes back the slab of an acknowledged batch. What it points to
// (values, keys, header bytes) is cleared so that the pool pins nothing
// else.
func (p *Producer) recycle(sl *slab) {
	if cap(sl.recs) != slabEvents {
		return
	}
	clear(sl.recs[:cap(sl.recs)])
	clear(sl.hdrs[:cap(sl.hdrs)])
	clear(sl.hptrs)
	p.slabs.Put(sl)
}

// prepare builds the records of a batch in a handful of allocations, or
// none when a slab is reused, and cuts it into chunks of at most maxBatch
// encoded bytes.
func (p *Producer) prepare(b *event.Batch, maxBatch int) *batchState {
	n := len(b.Events)
	var sk *record.SigningKey
	if p.cfg.Signer != nil {
		sk = p.cfg.Signer()
	}
	nh := 0
	for i := range b.Events {
		nh += b.Events[i].HeaderCount()
	}
	sl := p.slab(n, nh)
	st := &batchState{left: n, bytes: p.cost(b), events: p.eventCost(b), slab: sl, batch: b}
	st.share, st.shareEv, st.shareByte = p.shareOf(b)
	hdrs, hptrs, buf, recs := sl.hdrs, sl.hptrs, sl.buf, sl.recs
	c := &st.one
	*c = chunk{st: st}
	// A signed chunk's last record carries the signature of the chunk's
	// records (see record.HeaderSig); its room is counted in the chunk's
	// size from the start.
	sigSize, limit := 0, maxBatch
	if sk != nil {
		sigSize = len(p.sigKey) + record.SigLen + headerOverhead
		c.size = sigSize
		limit = min(maxBatch, record.MaxChunkBytes) // what the transfer holds
	}
	for i := range b.Events {
		ev := &b.Events[i]
		start := len(hdrs)
		hdrs, buf = ev.AppendHeaders(hdrs, buf)
		key := ev.Source.Key()
		size := recordOverhead + len(key) + len(ev.Value)
		hs := hptrs[start:len(hdrs):len(hdrs)]
		for j := range hs {
			h := kafka.Header(&hdrs[start+j])
			hs[j] = h
			size += len(h.Key) + len(h.Value) + headerOverhead
		}
		recs[i] = sarama.Record{Key: key, Value: ev.Value, Headers: hs}
		if i > c.from && (c.size+size > limit || sk != nil && i-c.from == record.MaxChunk) {
			c.to = i
			if sk != nil {
				buf = p.sign(sk, c, buf)
			}
			c = &chunk{st: st, from: i, size: sigSize}
			st.more = append(st.more, c)
		}
		c.size += size
	}
	c.to = n
	if sk != nil {
		buf = p.sign(sk, c, buf)
	}
	// If buf had to grow, the slab keeps the larger one for next time
	// (earlier headers still point into the old one, which stays valid).
	sl.hdrs, sl.buf = hdrs, buf
	return st
}

// sign appends the signature of c's records to buf and adds it to the
// headers of c's last record (two small allocations per chunk).
func (p *Producer) sign(sk *record.SigningKey, c *chunk, buf []byte) []byte {
	recs := c.st.slab.recs[c.from:c.to]
	src := c.st.batch.Events[c.from].Source
	p.chunk.Reset(sk, src.Topic, src.ContextHeaders())
	for i := range recs {
		p.chunk.Add(recs[i].Key, recs[i].Value, kafka.Headers(recs[i].Headers))
	}
	from := len(buf)
	buf, err := p.chunk.AppendSig(buf)
	if err != nil { // one source per batch, chunks cut at record.MaxChunk
		panic("signing a chunk: " + err.Error())
	}
	last := &recs[len(recs)-1]
	hs := make([]*sarama.RecordHeader, len(last.Headers)+1)
	copy(hs, last.Headers)
	hs[len(hs)-1] = &sarama.RecordHeader{Key: p.sigKey, Value: buf[from:len(buf):len(buf)]}
	last.Headers = hs
	return buf
}

type dueMsg struct {
	due time.Time
	c   *chunk
}

// dueQueue is a min-heap by due time.
type dueQueue []dueMsg

func (q *dueQueue) push(d dueMsg) {
	*q = append(*q, d)
	h := *q
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h[i].due.Before(h[parent].due) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (q *dueQueue) pop() {
	h := *q
	n := len(h) - 1
	h[0] = h[n]
	h[n] = dueMsg{}
	h = h[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && h[l].due.Before(h[m].due) {
			m = l
		}
		if r < n && h[r].due.Before(h[m].due) {
			m = r
		}
		if m == i {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
}
