package transfer

import (
	"context"
	"encoding/json"
	"strconv"
	"time"
	"unsafe"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/kafka"
	"github.com/logpipe/logpipe/internal/transfer/document"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// docID is the Elasticsearch _id of a record: the producing host and the
// agent's event id (record.DocID), so a re-delivered line lands on its
// earlier copy, or topic-partition-offset for records from other
// producers (equally stable across re-delivery).
func docID(msg *sarama.ConsumerMessage, meta *record.View, st *claimState) string {
	if len(meta.EventID) > 0 {
		return st.ids.docID(meta)
	}
	return msg.Topic + "-" + strconv.Itoa(int(msg.Partition)) + "-" + strconv.FormatInt(msg.Offset, 10)
}

// idArena holds a claim's document ids, many to an allocation. Each id is
// a string over bytes written once and never again (a full arena is
// replaced, not reused), so handing them out without copying is safe.
type idArena struct{ buf []byte }

const idArenaSize = 4096

func (a *idArena) docID(meta *record.View) string {
	n := 9 + len(meta.EventID)
	if n > idArenaSize/4 {
		return record.DocID(meta.HostName, meta.HostIP, meta.EventID)
	}
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, idArenaSize)
	}
	start := len(a.buf)
	a.buf = record.AppendDocID(a.buf, meta.HostName, meta.HostIP, meta.EventID)
	return unsafe.String(&a.buf[start], len(a.buf)-start)
}

// recordTime is the record's Kafka timestamp (for the agent's records,
// when it read the line), or its batch's; false when it has none.
func recordTime(msg *sarama.ConsumerMessage) (time.Time, bool) {
	if !msg.Timestamp.IsZero() && msg.Timestamp.Unix() > 0 {
		return msg.Timestamp, true
	}
	if !msg.BlockTimestamp.IsZero() && msg.BlockTimestamp.Unix() > 0 {
		return msg.BlockTimestamp, true
	}
	return time.Time{}, false
}

// eventTime is the record timestamp (when the agent read the line), or
// now for a record that has none: it is the document's @timestamp when no
// pipeline parsed one, never what places it.
func eventTime(msg *sarama.ConsumerMessage) time.Time {
	if t, ok := recordTime(msg); ok {
		return t
	}
	return time.Now()
}

// fieldsCache renders a "fields" header (a JSON object of the collect
// entry's static fields) into the document fragment it becomes
// (document.FieldsFragment), once per distinct header value: every record
// of one file carries the same one. Not safe for concurrent use; each
// claim has its own.
type fieldsCache struct {
	m     map[string][]byte
	bytes int
}

// maxFieldsCacheBytes bounds one claim's fields cache.
const maxFieldsCacheBytes = 1 << 20

func (c *fieldsCache) fragment(raw []byte, root bool) []byte {
	if len(raw) == 0 {
		return nil
	}
	// The two placements are cached apart: a byte that cannot start a
	// JSON object marks the root's.
	key := string(raw)
	if root {
		key = "\x00" + key
	}
	if f, ok := c.m[key]; ok {
		return f
	}
	var fields map[string]string
	var frag []byte
	if json.Unmarshal(raw, &fields) == nil {
		frag = document.FieldsFragment(fields, root)
	}
	// Bounded in entries and bytes: a producer sending a different large
	// header on every record must not grow it without end.
	if c.m == nil || len(c.m) >= 1024 || c.bytes+len(key)+len(frag) > maxFieldsCacheBytes {
		c.m, c.bytes = map[string][]byte{}, 0
	}
	if len(key)+len(frag) <= maxFieldsCacheBytes/4 {
		c.m[key] = frag
		c.bytes += len(key) + len(frag)
	}
	return frag
}

type pipeCounters struct{ parsed, failed, dropped, overBudget prometheus.Counter }

// document builds msg's document (nil: none, dropped by its pipeline);
// false if ctx ended while the record waited for its pipeline.
func (c *Consumer) document(ctx context.Context, r *gated, st *claimState) (*eswriter.Doc, bool) {
	msg, meta := r.msg, r.view
	ts := eventTime(msg) // read time
	origin := (*origin)(msg)
	signed := false
	if c.opt.Verify != nil {
		v := r.verdict
		if reason := v.Quarantine; reason != "" {
			// Not indexed, and before its pipeline (which could take it
			// as its own): kept apart with the reason.
			return &eswriter.Doc{ID: docID(msg, &meta, st), Body: []byte{}, Time: ts, Origin: origin, Topic: msg.Topic, Reject: reason, Quarantine: true}, true
		}
		signed = v.Signed
		if signed {
			// The host is the key's (the agent leaves it out of its
			// records; one that names it was checked to name the key's).
			meta.HostName, meta.HostIP = v.HostName, v.HostIP
		}
	}
	// A host metrics document: from an agent whose records are checked,
	// only if signed (an unsigned producer's records are lines).
	if string(meta.Kind) == record.KindMetric && (signed || c.opt.Verify == nil) {
		return c.metricDoc(msg, &meta, st, ts, signed), true
	}
	if len(meta.Pipeline) > 0 && !c.knowsPipeline(ctx, meta.Pipeline) {
		return nil, false
	}
	parts := partsOf(msg, &meta, st.fields.fragment(meta.Fields, meta.RootFields), ts)
	parts.Ingested = time.Now()
	reject := ""
	if len(meta.Pipeline) > 0 {
		parts.Dataset = pipeline.Dataset(string(meta.Pipeline), msg.Topic)
		res := &st.res
		res.Reset()
		c.runPipeline(meta.Pipeline, msg.Value, ts, res, st)
		if res.Drop {
			return nil, true // a drop processor: not indexed
		}
		// What the pipeline made is the claim's scratch: the document
		// keeps its own copy.
		frag := res.Fragment()
		m := &document.More{ErrMsg: res.Err}
		own := make([]byte, 0, len(frag)+len(res.Message))
		own = append(own, frag...)
		m.Parsed = own[:len(frag):len(frag)]
		if res.HasMessage {
			own = append(own, res.Message...)
			m.Message, m.HasMessage = own[len(frag):], true
		}
		if !res.Time.IsZero() { // @timestamp is the line's; keep when it was read
			parts.Time, m.Created = res.Time, ts
		}
		if res.OverBudget {
			// Not matched at all (that would hold up the records behind
			// it): dead-lettered with the reason, never indexed.
			reject = "pipeline " + strconv.Quote(string(meta.Pipeline)) + ": " + res.Err
		}
		parts.More = m
	}
	// The index is a function of the record alone (see placeTime): never
	// of the pipeline in force, whether pipelines are loaded, the clock or
	// when the record is consumed, so every delivery of a record, and every
	// copy of a line the agent re-sent, meets its _id in one index.
	idxTime, out := c.placeTime(msg, meta.IndexTime, signed)
	if key := c.opt.Index.Period(idxTime); key != st.indexKey || st.indexName == "" {
		st.indexKey, st.indexName = key, c.opt.Index.Name(msg.Topic, idxTime)
	}
	if out != "" {
		if parts.More == nil {
			parts.More = &document.More{}
		}
		parts.More.OutOfRange = out
	}
	// Documents come from a per-claim slab, so most cost no allocation
	// of their own.
	if len(st.slab) == 0 {
		st.slab = make([]eswriter.Doc, docSlab)
	}
	d := &st.slab[0]
	st.slab = st.slab[1:]
	*d = eswriter.Doc{Index: st.indexName, ID: docID(msg, &meta, st), Parts: parts, Time: ts, Origin: origin, Topic: msg.Topic, Reject: reject}
	return d, true
}

// partsOf is the document of msg, with meta its headers, fields its
// static fields' fragment (fieldsCache) and at its @timestamp; a
// pipeline adds what it made.
func partsOf(msg *sarama.ConsumerMessage, meta *record.View, fields []byte, at time.Time) document.Parts {
	return document.Parts{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset, Value: msg.Value,
		Head: document.HeadOf(meta), Time: at, Fields: fields, RootFields: meta.RootFields, Dataset: msg.Topic}
}

// origin is a consumed record as the dead-letter target sees it
// (eswriter.Origin).
type origin sarama.ConsumerMessage

// Record implements eswriter.Origin.
func (o *origin) Record() eswriter.Record {
	return eswriter.Record{Topic: o.Topic, Partition: o.Partition, Offset: o.Offset, Key: o.Key, Value: o.Value,
		Headers: kafka.Headers(o.Headers), Timestamp: o.Timestamp}
}

// docSlab is how many documents a claim allocates at once: a slab lives
// while any of its documents waits, so it is kept small.
const docSlab = 64

// runPipeline runs the pipeline named name over line into res, and counts
// the outcome. A name that is not a pipeline leaves the line raw, with an
// error saying so.
func (c *Consumer) runPipeline(name, line []byte, read time.Time, res *pipeline.Result, st *claimState) {
	var f pipeline.Func
	var ok bool
	if c.opt.Pipelines != nil {
		f, ok = c.opt.Pipelines.Lookup(name)
	} else {
		f, ok = pipeline.Builtin(string(name))
	}
	if !ok {
		res.Fail("unknown pipeline " + strconv.Quote(string(name)))
		c.piped.WithLabelValues("unknown", "unknown").Inc()
		return
	}
	f(line, read, res)
	pc := st.piped[string(name)]
	if pc == nil {
		n := string(name)
		pc = &pipeCounters{parsed: c.piped.WithLabelValues(n, "parsed"), failed: c.piped.WithLabelValues(n, "failed"), dropped: c.piped.WithLabelValues(n, "dropped"),
			overBudget: c.piped.WithLabelValues(n, "over_budget")}
		if st.piped == nil {
			st.piped = map[string]*pipeCounters{}
		}
		st.piped[n] = pc
	}
	switch {
	case res.OverBudget:
		pc.overBudget.Inc()
	case res.Err != "":
		pc.failed.Inc()
	case res.Drop:
		pc.dropped.Inc()
	default:
		pc.parsed.Inc()
	}
}

// undated places records that carry no time at all (no Kafka timestamp):
// the Unix epoch's day, the same on every delivery.
var undated = time.Unix(0, 0).UTC()

// placeTime is the time that picks a record's daily index, from the record
// alone. A signed record (verified: its agent wrote the stamp, and nobody
// can change it) is placed by its index-time stamp, the same for every
// copy of a line: its Kafka timestamp is not signed, and a copy of the
// record produced again with another one must still meet its _id in one
// index, and create no index of its own. Other records are placed by their
// stamp when it lies within MaxAge before and MaxFuture after the record's
// Kafka timestamp, else by the Kafka timestamp (with the bound it crossed),
// else on the epoch's day ("undated"); what bounds the indices they can
// make is the Kafka timestamp, when the broker gives it (topics with
// message.timestamp.type=LogAppendTime). A line's own time, parsed by a
// pipeline, goes to @timestamp and never picks the index.
func (c *Consumer) placeTime(msg *sarama.ConsumerMessage, stamp time.Time, signed bool) (time.Time, string) {
	if signed && !stamp.IsZero() {
		return stamp, ""
	}
	kts, ok := recordTime(msg)
	switch {
	case !ok:
		return undated, "undated"
	case stamp.IsZero():
		return kts, ""
	case c.opt.MaxFuture > 0 && stamp.After(kts.Add(c.opt.MaxFuture)):
		return kts, "future"
	case c.opt.MaxAge > 0 && stamp.Before(kts.Add(-c.opt.MaxAge)):
		return kts, "past"
	}
	return stamp, ""
}
