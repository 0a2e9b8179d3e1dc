// Package record is the contract between logagent and logtransfer: what a
// Kafka record carries besides the raw line. The value is the line itself
// (or a joined multiline event), so `kcat -C` shows the real log; the
// metadata travels in headers named here, and the event id that the
// transfer uses as the Elasticsearch _id is computed here. Both daemons
// import this package, so they cannot disagree about it. It is plain Go:
// no Kafka client (headers are Header; see platform/kafka for sarama's).
package record

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
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
	// HeaderFields is the collect entry's static fields as a JSON object,
	// shown under "fields" in the document (Filebeat's fields.*);
	// HeaderRootFields carries them instead when the entry puts them at
	// the document's root (fields_under_root). A record has one or the
	// other.
	HeaderFields     = "fields"
	HeaderRootFields = "fields.root"
	// HeaderAgentID is the producing agent's id (ECS agent.id): drawn
	// once and kept in its data directory, so it stays across restarts
	// and changes of address. HeaderAgentVersion is its version.
	HeaderAgentID      = "agent.id"
	HeaderAgentVersion = "agent.version"
	// HeaderIndexTime is the time (Unix milliseconds) that picks the
	// record's index: the same for every copy of a line the agent sends,
	// re-sends after a crash included, unlike the read time. It is not
	// stored in the document.
	HeaderIndexTime = "index.time"
	// HeaderPipeline names the transfer pipeline for the record (the
	// collect entry's "pipeline"); absent for none.
	HeaderPipeline = "pipeline"
	// HeaderEventKind says what the record is when it is not a line:
	// KindMetric for a host metrics document (its value a Metricbeat
	// document without host, which the transfer adds from the record's
	// headers). Absent for lines.
	HeaderEventKind = "event.kind"
)

// KindMetric is HeaderEventKind's value for host metrics (ECS event.kind).
const KindMetric = "metric"

// PipelineNameRule says what may name a pipeline (HeaderPipeline): a
// collect entry's "pipeline", a custom pipeline's etcd key.
const PipelineNameRule = "1-64 of a-z 0-9 _ - (starting with a letter or digit)"

// ValidPipelineName reports whether name follows PipelineNameRule.
func ValidPipelineName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

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

// Header is a record header as Kafka carries it: a name and a value.
// The Kafka clients' own header types are this one (a producer or a
// consumer passes theirs without copying; see platform/kafka).
type Header struct {
	Key, Value []byte
}

// View is a record's headers read without copying: the slices point into
// the headers. Absent headers (a producer other than logagent) are empty.
type View struct {
	HostName, HostIP, Path, EventID, Flags, Fields []byte
	// RootFields says Fields came as HeaderRootFields.
	RootFields            bool
	AgentID, AgentVersion []byte
	Offset                int64
	HasOffset             bool
	// IndexTime is HeaderIndexTime (zero if absent or malformed).
	IndexTime time.Time
	Pipeline  []byte
	Kind      []byte // HeaderEventKind
	// Sig is the HeaderSig value; Sigs counts HeaderSig headers (a record
	// with more than one is malformed).
	Sig  []byte
	Sigs int
}

// ParseRecord reads a View from a record's key and headers: Parse, and
// for a logagent record (one with an event id) without log.file.path or
// log.offset headers, the path from the key and the offset from the id.
func ParseRecord(key []byte, headers []*Header) View {
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
func Parse(headers []*Header) View {
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
			v.Fields, v.RootFields = h.Value, false
		case HeaderRootFields:
			v.Fields, v.RootFields = h.Value, true
		case HeaderAgentID:
			v.AgentID = h.Value
		case HeaderAgentVersion:
			v.AgentVersion = h.Value
		case HeaderPipeline:
			v.Pipeline = h.Value
		case HeaderEventKind:
			v.Kind = h.Value
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
func Decode(key []byte, headers []*Header) Meta {
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

// KeyHash is the hash that picks a record's partition: FNV-1a (32 bits)
// of its key (the file path), as sarama's hash partitioner computes it.
// logagent sends a file's records to partition KeyHash(key) mod the
// topic's partition count (of its partitions in ascending order), so
// logctl trace knows where to look.
func KeyHash(key []byte) uint32 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for _, c := range key {
		h = (h ^ uint32(c)) * prime32
	}
	return h
}
