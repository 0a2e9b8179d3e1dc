package transfer

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
)

// reservedField reports whether a static field would collide with a
// document field the pipeline sets itself (an agent validates this; other
// producers might not).
func reservedField(k string) bool {
	for _, r := range []string{"@timestamp", "message", "host", "log", "kafka", "event"} {
		if k == r || strings.HasPrefix(k, r+".") {
			return true
		}
	}
	return k == ""
}

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
// (`,"k":"v",…`, reserved names dropped), once per distinct header value:
// every record of one file carries the same one. Not safe for concurrent
// use; each claim has its own.
type fieldsCache struct {
	m     map[string][]byte
	bytes int
}

// maxFieldsCacheBytes bounds one claim's fields cache.
const maxFieldsCacheBytes = 1 << 20

func (c *fieldsCache) fragment(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	if f, ok := c.m[string(raw)]; ok {
		return f
	}
	var fields map[string]string
	var frag []byte
	if json.Unmarshal(raw, &fields) == nil {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			if !reservedField(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			frag = append(frag, ',')
			frag = jsonenc.AppendString(frag, k)
			frag = append(frag, ':')
			frag = jsonenc.AppendString(frag, fields[k])
		}
	}
	// Bounded in entries and bytes: a producer sending a different large
	// header on every record must not grow it without end.
	if c.m == nil || len(c.m) >= 1024 || c.bytes+len(raw)+len(frag) > maxFieldsCacheBytes {
		c.m, c.bytes = map[string][]byte{}, 0
	}
	if len(raw)+len(frag) <= maxFieldsCacheBytes/4 {
		c.m[string(raw)] = frag
		c.bytes += len(raw) + len(frag)
	}
	return frag
}

// head is what of a record's headers its document shows.
type head struct {
	HostName, HostIP, Path, Flags []byte
	Offset                        int64
	HasOffset                     bool
}

func headOf(v *record.View) head {
	return head{HostName: v.HostName, HostIP: v.HostIP, Path: v.Path, Flags: v.Flags, Offset: v.Offset, HasOffset: v.HasOffset}
}

// source is a document kept as its parts until its bulk request is built
// (eswriter.Source): the record, what its headers said and the static
// fields' fragment, all immutable, so a retry renders the same bytes.
// The bytes then go straight into the request: no body per document is
// allocated, copied or held while it waits.
type source struct {
	eswriter.Doc
	msg   *sarama.ConsumerMessage
	head  head
	extra []byte
}

// AppendSource implements eswriter.Source.
func (s *source) AppendSource(dst []byte) []byte {
	return appendDoc(dst, s.msg, s.msg.Value, &s.head, s.Time, s.extra)
}

// appendDoc appends the ECS-shaped JSON document of msg to dst:
//
//	{"@timestamp":…,"message":…,"host":{"name":…,"ip":…},
//	 "log":{"file":{"path":…},"offset":…,"flags":[…]},
//	 "kafka":{"topic":…,"partition":…,"offset":…}, <fields>…}
//
// Absent headers leave their fields out. The message has invalid UTF-8
// replaced by U+FFFD, so the body is always valid JSON. fields is the
// fragment from fieldsCache.
func appendDoc(dst []byte, msg *sarama.ConsumerMessage, message []byte, meta *head, ts time.Time, fields []byte) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	dst = jsonenc.AppendTime(dst, ts)
	dst = append(dst, `","message":`...)
	dst = jsonenc.AppendString(dst, message)
	if len(meta.HostName) > 0 || len(meta.HostIP) > 0 {
		dst = append(dst, `,"host":{`...)
		sep := false
		if len(meta.HostName) > 0 {
			dst = append(dst, `"name":`...)
			dst = jsonenc.AppendString(dst, meta.HostName)
			sep = true
		}
		if len(meta.HostIP) > 0 {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"ip":`...)
			dst = jsonenc.AppendString(dst, meta.HostIP)
		}
		dst = append(dst, '}')
	}
	if len(meta.Path) > 0 || meta.HasOffset || len(meta.Flags) > 0 {
		dst = append(dst, `,"log":{`...)
		sep := false
		if len(meta.Path) > 0 {
			dst = append(dst, `"file":{"path":`...)
			dst = jsonenc.AppendString(dst, meta.Path)
			dst = append(dst, '}')
			sep = true
		}
		if meta.HasOffset {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"offset":`...)
			dst = strconv.AppendInt(dst, meta.Offset, 10)
			sep = true
		}
		if len(meta.Flags) > 0 {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"flags":[`...)
			rest := meta.Flags
			for i := 0; len(rest) > 0 || i == 0; i++ {
				f := rest
				if j := indexByte(rest, ','); j >= 0 {
					f, rest = rest[:j], rest[j+1:]
				} else {
					rest = nil
				}
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = jsonenc.AppendString(dst, f)
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"kafka":{"topic":`...)
	dst = jsonenc.AppendString(dst, msg.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(msg.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, msg.Offset, 10)
	dst = append(dst, '}')
	dst = append(dst, fields...)
	return append(dst, '}')
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
