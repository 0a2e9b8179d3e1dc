// Package record is the contract between logagent and logtransfer: what a
// Kafka record carries besides the raw line. The value is the line itself
// (or a joined multiline event), so `kcat -C` shows the real log; the
// metadata travels in headers named here, and the event id that the
// transfer uses as the Elasticsearch _id is computed here. Both daemons
// import this package, so they cannot disagree about it.
package record

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// Header names. They follow ECS field names, so the document the transfer
// builds is a direct mapping.
const (
	HeaderHostName = "host.name"
	HeaderHostIP   = "host.ip"
	// HeaderPath and HeaderOffset are what earlier agents sent; logagent
	// now leaves them out (the path is the record key, the offset the end
	// of the event id), and ParseRecord derives them. Other producers may
	// still send them.
	HeaderPath    = "log.file.path"
	HeaderOffset  = "log.offset"
	HeaderEventID = "event.id"
	// HeaderFlags is a comma separated list of FlagMultiline, FlagSplit.
	HeaderFlags = "log.flags"
	// HeaderFields is the collect entry's static fields as a JSON object.
	HeaderFields = "fields"
	// HeaderIndexTime is the time (Unix milliseconds) that picks the
	// record's index: the same for every copy of a line the agent sends,
	// re-sends after a crash included, unlike the read time. It is not
	// stored in the document.
	HeaderIndexTime = "index.time"
	// HeaderPipeline names the transfer pipeline for the record (the
	// collect entry's "pipeline"); absent for none.
	HeaderPipeline = "pipeline"
)

// Flag values carried in HeaderFlags.
const (
	// FlagMultiline marks an event joined from several lines.
	FlagMultiline = "multiline"
	// FlagSplit marks a piece of a line longer than max_line_bytes.
	FlagSplit = "split"
)

// Flags is a bit set of per-event flags.
type Flags uint8

// Flag bits.
const (
	Multiline Flags = 1 << iota
	Split
)

// String renders flags as the HeaderFlags value.
func (f Flags) String() string {
	switch f {
	case 0:
		return ""
	case Multiline:
		return FlagMultiline
	case Split:
		return FlagSplit
	}
	return FlagMultiline + "," + FlagSplit
}

// Instance identifies one generation of one file: it is drawn at random
// when the agent first sees a file (device+inode) and drawn again when the
// file is truncated, and it is persisted in the agent's registry before any
// event of it is sent. Event ids are derived from it, so the same line
// keeps its id across agent restarts while a truncated or re-created file
// (even one that reuses an inode) never reuses an old id.
type Instance [16]byte

// NewInstance draws a fresh instance.
func NewInstance() Instance {
	var i Instance
	if _, err := rand.Read(i[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return i
}

// String is the 32-digit hex form.
func (i Instance) String() string { return hex.EncodeToString(i[:]) }

// IsZero reports whether i is unset.
func (i Instance) IsZero() bool { return i == Instance{} }

// ParseInstance parses the hex form.
func ParseInstance(s string) (Instance, error) {
	var i Instance
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(i) {
		return i, errors.New("instance must be 32 hex digits")
	}
	copy(i[:], b)
	return i, nil
}

// AppendEventID appends the event id of the event starting at offset in
// instance: "<instance hex>-<offset>". It is a pure function of the file
// generation and the byte offset, so re-sending a line yields the same id.
func AppendEventID(dst []byte, inst Instance, offset int64) []byte {
	dst = hex.AppendEncode(dst, inst[:])
	dst = append(dst, '-')
	return strconv.AppendInt(dst, offset, 10)
}

// DocID is the Elasticsearch _id of an event: the producing host's
// identity (a hash of its name and IP) and the event id. Event ids are
// unique per file generation, but a host cloned with its data_dir (same
// registry, same inodes) would produce the same ones; with the host in
// the _id the clone's lines do not overwrite the original's.
func DocID(hostName, hostIP, eventID []byte) string {
	var buf [128]byte
	return string(AppendDocID(buf[:0], hostName, hostIP, eventID))
}

// AppendDocID appends DocID's bytes to dst.
func AppendDocID(dst, hostName, hostIP, eventID []byte) []byte {
	// FNV-1a (32 bits) of name, NUL, IP: hash/fnv's, without its
	// allocations.
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range hostName {
		h = (h ^ uint32(c)) * prime32
	}
	h *= prime32 // the NUL separator: h ^ 0 == h
	for _, c := range hostIP {
		h = (h ^ uint32(c)) * prime32
	}
	const hexDigits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[h>>uint(shift)&0xf])
	}
	dst = append(dst, '-')
	return append(dst, eventID...)
}

// EventID is AppendEventID as a string.
func EventID(inst Instance, offset int64) string {
	return string(AppendEventID(make([]byte, 0, 48), inst, offset))
}

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
	keyEnc sarama.Encoder
	hash   uint32
	static []sarama.RecordHeader
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
		idKey: []byte(HeaderEventID), flagKey: []byte(HeaderFlags), stampKey: []byte(HeaderIndexTime)}
	s.keyEnc = sarama.ByteEncoder(s.key)
	h := fnv.New32a()
	h.Write(s.key)
	s.hash = h.Sum32()
	s.static = []sarama.RecordHeader{
		{Key: []byte(HeaderHostName), Value: []byte(host)},
		{Key: []byte(HeaderHostIP), Value: []byte(ip)},
	}
	if len(fields) > 0 {
		b, _ := json.Marshal(fields) // map[string]string always marshals
		s.static = append(s.static, sarama.RecordHeader{Key: []byte(HeaderFields), Value: b})
	}
	return s
}

// WithPipeline adds the pipeline header (none for ""), and returns s.
// Call before the source is used.
func (s *Source) WithPipeline(name string) *Source {
	if name != "" {
		s.Pipeline = name
		s.static = append(s.static, sarama.RecordHeader{Key: []byte(HeaderPipeline), Value: []byte(name)})
	}
	return s
}

// Key is the record key: the file path, so one file's lines stay in order
// in one partition.
func (s *Source) Key() []byte { return s.key }

// KeyHash is the FNV-1a hash of Key, as sarama's hash partitioner uses
// it, computed once.
func (s *Source) KeyHash() uint32 { return s.hash }

// KeyEncoder is Key as a sarama.Encoder, built once.
func (s *Source) KeyEncoder() sarama.Encoder { return s.keyEnc }

// Acker is told when the event with a given sequence number is durably in
// Kafka. The agent's registry implements it.
type Acker interface {
	Ack(seq uint64)
}

// Event is one line (or joined multiline event, or piece of a long line)
// on its way from a file to Kafka.
type Event struct {
	Source *Source
	Value  []byte
	// Offset is the byte offset of the event's first byte in its file.
	Offset   int64
	Instance Instance
	Flags    Flags
	// Time is when the line was read; it becomes the record timestamp.
	Time time.Time
	// Stamp is the index time (HeaderIndexTime), from the registry; zero
	// for none.
	Stamp time.Time

	Acker Acker
	Seq   uint64
}

// Headers encodes the record headers of e.
func (e *Event) Headers() []sarama.RecordHeader {
	h, _ := e.AppendHeaders(nil, nil)
	return h
}

// MaxHeaders is the most headers a record of the agent carries:
// AppendHeaders' and the signature.
const MaxHeaders = 8

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
func (e *Event) AppendHeaders(dst []sarama.RecordHeader, buf []byte) ([]sarama.RecordHeader, []byte) {
	s := e.Source
	dst = append(dst, s.static...)
	start := len(buf)
	buf = AppendEventID(buf, e.Instance, e.Offset)
	end := len(buf)
	dst = append(dst, sarama.RecordHeader{Key: s.idKey, Value: buf[start:end:end]})
	if e.Flags != 0 {
		dst = append(dst, sarama.RecordHeader{Key: s.flagKey, Value: []byte(e.Flags.String())})
	}
	if !e.Stamp.IsZero() {
		start := len(buf)
		buf = strconv.AppendInt(buf, e.Stamp.UnixMilli(), 10)
		dst = append(dst, sarama.RecordHeader{Key: s.stampKey, Value: buf[start:len(buf):len(buf)]})
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
}

// View is a record's headers read without copying: the slices point into
// the headers. Absent headers (a producer other than logagent) are empty.
type View struct {
	HostName, HostIP, Path, EventID, Flags, Fields []byte
	Offset                                         int64
	HasOffset                                      bool
	// IndexTime is HeaderIndexTime (zero if absent or malformed).
	IndexTime time.Time
	Pipeline  []byte
	// Sig is the HeaderSig value; Sigs counts HeaderSig headers (a record
	// with more than one is malformed).
	Sig  []byte
	Sigs int
}

// ParseRecord reads a View from a record's key and headers: Parse, and
// for a logagent record (one with an event id) without log.file.path or
// log.offset headers, the path from the key and the offset from the id.
func ParseRecord(key []byte, headers []*sarama.RecordHeader) View {
	v := Parse(headers)
	if len(v.EventID) > 0 {
		if len(v.Path) == 0 {
			v.Path = key
		}
		if !v.HasOffset {
			v.Offset, v.HasOffset = OffsetOf(v.EventID)
		}
	}
	return v
}

// OffsetOf is the file offset at the end of an event id
// (<instance>-<offset>).
func OffsetOf(eventID []byte) (int64, bool) {
	i := len(eventID)
	for i > 0 && eventID[i-1] >= '0' && eventID[i-1] <= '9' {
		i--
	}
	if i == 0 || i == len(eventID) || eventID[i-1] != '-' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(eventID[i:]), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Parse reads a View from record headers. Malformed values are ignored
// rather than failing the record: the line itself is what matters.
func Parse(headers []*sarama.RecordHeader) View {
	var v View
	for _, h := range headers {
		if h == nil {
			continue
		}
		switch string(h.Key) {
		case HeaderHostName:
			v.HostName = h.Value
		case HeaderHostIP:
			v.HostIP = h.Value
		case HeaderPath:
			v.Path = h.Value
		case HeaderOffset:
			if n, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil {
				v.Offset, v.HasOffset = n, true
			}
		case HeaderEventID:
			v.EventID = h.Value
		case HeaderFlags:
			v.Flags = h.Value
		case HeaderFields:
			v.Fields = h.Value
		case HeaderPipeline:
			v.Pipeline = h.Value
		case HeaderSig:
			v.Sig = h.Value
			v.Sigs++
		case HeaderIndexTime:
			if ms, err := strconv.ParseInt(string(h.Value), 10, 64); err == nil && ms > 0 {
				v.IndexTime = time.UnixMilli(ms).UTC()
			}
		}
	}
	return v
}

// Meta is View with owned strings, flags split and fields decoded.
type Meta struct {
	HostName  string
	HostIP    string
	Path      string
	Offset    int64
	HasOffset bool
	EventID   string
	Flags     []string
	Fields    map[string]string
}

// Decode reads Meta from a record's key and headers (see ParseRecord).
func Decode(key []byte, headers []*sarama.RecordHeader) Meta {
	v := ParseRecord(key, headers)
	m := Meta{HostName: string(v.HostName), HostIP: string(v.HostIP), Path: string(v.Path),
		Offset: v.Offset, HasOffset: v.HasOffset, EventID: string(v.EventID)}
	if len(v.Flags) > 0 {
		m.Flags = strings.Split(string(v.Flags), ",")
	}
	if len(v.Fields) > 0 {
		var f map[string]string
		if json.Unmarshal(v.Fields, &f) == nil {
			m.Fields = f
		}
	}
	return m
}
