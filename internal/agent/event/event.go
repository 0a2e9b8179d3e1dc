// Package event is what the agent moves from a file to Kafka: a Source
// (what every line of one file into one topic shares, its headers encoded
// once), the Events read from it, and the Batches the readers hand to the
// producer. What the records carry is the contract's (package record).
package event

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/contract/record"
)

// Source is what all events of one tailed file into one topic share. Its
// headers are encoded once.
type Source struct {
	Topic  string
	Path   string
	Host   string
	IP     string
	Fields map[string]string
	// Pipeline is the transfer pipeline named in every record ("": none).
	Pipeline string

	key    []byte
	hash   uint32
	static []record.Header
	// names of the per-event headers, allocated once per source
	idKey, flagKey, stampKey []byte
}

// ContextHeaders is how many headers every record of s starts with that
// are the same for all of them (host, fields, pipeline): a signed chunk's
// context.
func (s *Source) ContextHeaders() int { return len(s.static) }

// NewSource builds a Source and pre-encodes its constant headers.
func NewSource(topic, path, host, ip string, fields map[string]string) *Source {
	s := &Source{Topic: topic, Path: path, Host: host, IP: ip, Fields: fields, key: []byte(path),
		idKey: []byte(record.HeaderEventID), flagKey: []byte(record.HeaderFlags), stampKey: []byte(record.HeaderIndexTime)}
	s.hash = record.KeyHash(s.key)
	s.static = []record.Header{
		{Key: []byte(record.HeaderHostName), Value: []byte(host)},
		{Key: []byte(record.HeaderHostIP), Value: []byte(ip)},
	}
	if len(fields) > 0 {
		b, _ := json.Marshal(fields) // map[string]string always marshals
		s.static = append(s.static, record.Header{Key: []byte(record.HeaderFields), Value: b})
	}
	return s
}

// WithAgent adds the agent's id and version headers (none for an empty
// id), and returns s. Call before the source is used.
func (s *Source) WithAgent(id, version string) *Source {
	if id != "" {
		s.static = append(s.static, record.Header{Key: []byte(record.HeaderAgentID), Value: []byte(id)},
			record.Header{Key: []byte(record.HeaderAgentVersion), Value: []byte(version)})
	}
	return s
}

// FieldsUnderRoot has the transfer put s's fields at the document's root
// rather than under "fields" (the entry's fields_under_root), and
// returns s. Call before the source is used.
func (s *Source) FieldsUnderRoot(root bool) *Source {
	if !root {
		return s
	}
	for i := range s.static {
		if string(s.static[i].Key) == record.HeaderFields {
			s.static[i].Key = []byte(record.HeaderRootFields)
		}
	}
	return s
}

// WithPipeline adds the pipeline header (none for ""), and returns s.
// Call before the source is used.
func (s *Source) WithPipeline(name string) *Source {
	if name != "" {
		s.Pipeline = name
		s.static = append(s.static, record.Header{Key: []byte(record.HeaderPipeline), Value: []byte(name)})
	}
	return s
}

// WithKind adds the event kind header (record.HeaderEventKind; none for
// ""), and returns s. Call before the source is used.
func (s *Source) WithKind(kind string) *Source {
	if kind != "" {
		s.static = append(s.static, record.Header{Key: []byte(record.HeaderEventKind), Value: []byte(kind)})
	}
	return s
}

// Key is the record key: the file path, so one file's lines stay in order
// in one partition.
func (s *Source) Key() []byte { return s.key }

// KeyHash is the FNV-1a hash of Key, as sarama's hash partitioner uses
// it, computed once.
func (s *Source) KeyHash() uint32 { return s.hash }

// Event is one line (or joined multiline event, or piece of a long line)
// on its way from a file to Kafka.
type Event struct {
	Source *Source
	Value  []byte
	// Offset is the byte offset of the event's first byte in its file.
	Offset   int64
	Instance record.Instance
	Flags    record.Flags
	// Time is when the line was read; it becomes the record timestamp.
	Time time.Time
	// Stamp is the index time (record.HeaderIndexTime), from the registry; zero
	// for none.
	Stamp time.Time

	Acker acktrack.Acker
	Seq   uint64
}

// Headers encodes the record headers of e.
func (e *Event) Headers() []record.Header {
	h, _ := e.AppendHeaders(nil, nil)
	return h
}

// MaxHeaders is the most headers a record of the agent carries:
// AppendHeaders' (host name and ip, fields, pipeline or kind, agent id
// and version, event id, flags, index time) and the signature.
const MaxHeaders = 10

// HeaderCount is how many headers AppendHeaders adds for e.
func (e *Event) HeaderCount() int {
	n := len(e.Source.static) + 1
	if e.Flags != 0 {
		n++
	}
	if !e.Stamp.IsZero() {
		n++
	}
	return n
}

// AppendHeaders appends e's record headers to dst, their variable values
// to buf, and returns both, so a batch of events can share two
// allocations. Earlier headers stay valid if buf grows.
func (e *Event) AppendHeaders(dst []record.Header, buf []byte) ([]record.Header, []byte) {
	s := e.Source
	dst = append(dst, s.static...)
	start := len(buf)
	buf = record.AppendEventID(buf, e.Instance, e.Offset)
	end := len(buf)
	dst = append(dst, record.Header{Key: s.idKey, Value: buf[start:end:end]})
	if e.Flags != 0 {
		dst = append(dst, record.Header{Key: s.flagKey, Value: []byte(e.Flags.String())})
	}
	if !e.Stamp.IsZero() {
		start := len(buf)
		buf = strconv.AppendInt(buf, e.Stamp.UnixMilli(), 10)
		dst = append(dst, record.Header{Key: s.stampKey, Value: buf[start:len(buf):len(buf)]})
	}
	return dst, buf
}

// Batch is events read together from one file, handed to the producer in
// one go. Its slices belong to the producer once sent.
type Batch struct {
	Events []Event
	// Bytes is the memory the values hold: the read buffers they point
	// into (or their own, for joined multiline events), which may be more
	// than the sum of their lengths. The producer counts it, with a fixed
	// cost per event, against buffer_bytes.
	Bytes int
	// Done, if set, is called by the producer once every event of the
	// batch is acknowledged: from then on nothing refers to the batch or
	// its events, and whoever made it may reuse their memory.
	Done func(*Batch)
	// Background marks a batch sent on a schedule of the agent's own
	// (host metrics): its events are not activity (Producer.Sent), so an
	// agent whose only traffic is its host metrics stays idle to its
	// memory governor.
	Background bool
}
