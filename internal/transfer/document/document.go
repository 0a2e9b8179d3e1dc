// Package document writes a record's Elasticsearch document: the one
// render path, shared by the transfer that builds a document's parts and
// the bulk writer that renders them straight into a request. It is plain
// Go: it knows nothing of Kafka clients or HTTP.
package document

import (
	"strconv"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
)

// ECSVersion is the version of the Elastic Common Schema the documents
// follow (ecs.version): every field they hold is ECS's under its name and
// type (TestDocumentsFollowECS), but for kafka.*, log.flags,
// event.timestamp_out_of_range and what fields.* and a pipeline add.
const ECSVersion = "8.17.0"

// AgentType is agent.type: what made the documents' records.
const AgentType = "logagent"

// Head is what of a record's headers its document shows.
type Head struct {
	HostName, HostIP, Path, Flags []byte
	AgentID, AgentVersion         []byte
	Offset                        int64
	HasOffset                     bool
}

// HeadOf is the part of v a document shows.
func HeadOf(v *record.View) Head {
	return Head{HostName: v.HostName, HostIP: v.HostIP, Path: v.Path, Flags: v.Flags, Offset: v.Offset, HasOffset: v.HasOffset,
		AgentID: v.AgentID, AgentVersion: v.AgentVersion}
}

// Parts is everything a document is made of, kept until its bulk request
// is built; Render, the one place that writes a document, appends its
// JSON then, straight into the request (no body per document is
// allocated, copied or held while it waits). Its slices never change once
// built, so a retried request renders the same bytes.
type Parts struct {
	// Where the record was read: its topic, partition and offset.
	Topic     string
	Partition int32
	Offset    int64
	// Value is the record's value: the message, unless a pipeline set
	// one (More.Message).
	Value []byte
	Head  Head
	// Time is @timestamp: the line's own if a pipeline parsed it, else
	// when it was read.
	Time time.Time
	// Ingested is event.ingested: when the transfer built the document.
	Ingested time.Time
	// Dataset is event.dataset: the pipeline's (nginx.access), else the
	// topic.
	Dataset string
	// Fields is the collect entry's fields as a JSON fragment, each member
	// preceded by a comma, no braces: `,"fields":{…}` (nested), or, when
	// RootFields, the fields themselves (`,"service.name":"shop"`), to be
	// nested at the document's root.
	Fields     []byte
	RootFields bool
	More       *More // nil for most documents
}

// More is what a pipeline made of a line, and the bound its index-time
// stamp crossed: parts most documents do without, kept apart so that the
// others stay small while they wait.
type More struct {
	Message    []byte // the message, if the pipeline set it (HasMessage)
	HasMessage bool
	// Parsed is the pipeline's fields, a fragment as Fields: its names
	// dotted paths (http.request.method), nested when rendered.
	Parsed []byte
	// Created is when the line was read, shown when a pipeline parsed its
	// @timestamp; OutOfRange is the bound the index-time stamp crossed;
	// ErrMsg is why the pipeline failed.
	Created    time.Time
	OutOfRange string
	ErrMsg     string
}

// Size is about how many bytes Render appends, for the writer's
// bulk_bytes.
func (p *Parts) Size() int {
	n := len(p.Value) + 320 + len(p.Fields)
	if m := p.More; m != nil {
		n += len(m.Message) + len(m.Parsed) + len(m.ErrMsg)
	}
	return n
}

// Render appends the ECS-shaped JSON document to dst:
//
//	{"@timestamp":…,"message":…,"host":{"name":…,"ip":…},
//	 "agent":{"type":"logagent","id":…,"name":…,"version":…},
//	 "log":{"file":{"path":…},"offset":…,"flags":[…]},
//	 "kafka":{"topic":…,"partition":…,"offset":…},"ecs":{"version":…},
//	 "event":{"dataset":…,"ingested":…,"created":…,"timestamp_out_of_range":…},
//	 "error":{"message":…},"fields":{…}, <parsed>…}
//
// Absent headers and parts leave their fields out. A document with fields
// a pipeline parsed, or fields at its root, is nested as one tree (see
// nest.go); the others, most, are written straight, in the same shape.
// Strings have invalid UTF-8 replaced by U+FFFD, so the body is always
// valid JSON.
func (p *Parts) Render(dst []byte) []byte {
	if p.RootFields || (p.More != nil && len(p.More.Parsed) > 0) {
		return p.renderTree(dst)
	}
	meta, more := &p.Head, p.More
	message := p.Value
	if more != nil && more.HasMessage {
		message = more.Message
	}
	dst = append(dst, `{"@timestamp":"`...)
	dst = jsonenc.AppendTime(dst, p.Time)
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
	if len(meta.AgentID) > 0 {
		dst = append(dst, `,"agent":{"type":"`+AgentType+`","id":`...)
		dst = jsonenc.AppendString(dst, meta.AgentID)
		if len(meta.HostName) > 0 {
			dst = append(dst, `,"name":`...)
			dst = jsonenc.AppendString(dst, meta.HostName)
		}
		if len(meta.AgentVersion) > 0 {
			dst = append(dst, `,"version":`...)
			dst = jsonenc.AppendString(dst, meta.AgentVersion)
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
			dst = append(dst, `"flags":`...)
			dst = appendList(dst, meta.Flags)
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"kafka":{"topic":`...)
	dst = jsonenc.AppendString(dst, p.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(p.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, p.Offset, 10)
	dst = append(dst, `},"ecs":{"version":"`+ECSVersion+`"}`...)
	var created time.Time
	var out, errMsg string
	if more != nil {
		created, out, errMsg = more.Created, more.OutOfRange, more.ErrMsg
	}
	if p.Dataset != "" || !p.Ingested.IsZero() || !created.IsZero() || out != "" {
		dst = append(dst, `,"event":{`...)
		sep := false
		if p.Dataset != "" {
			dst = append(dst, `"dataset":`...)
			dst = jsonenc.AppendString(dst, p.Dataset)
			sep = true
		}
		for _, t := range [...]struct {
			name string
			t    time.Time
		}{{"ingested", p.Ingested}, {"created", created}} {
			if t.t.IsZero() {
				continue
			}
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, '"')
			dst = append(dst, t.name...)
			dst = append(dst, `":"`...)
			dst = jsonenc.AppendTime(dst, t.t)
			dst = append(dst, '"')
			sep = true
		}
		if out != "" {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"timestamp_out_of_range":`...)
			dst = jsonenc.AppendString(dst, out)
		}
		dst = append(dst, '}')
	}
	if errMsg != "" {
		dst = append(dst, `,"error":{"message":`...)
		dst = jsonenc.AppendString(dst, errMsg)
		dst = append(dst, '}')
	}
	dst = append(dst, p.Fields...)
	return append(dst, '}')
}

// renderTree is Render for a document whose parts must be nested together.
func (p *Parts) renderTree(dst []byte) []byte {
	meta, more := &p.Head, p.More
	message := p.Value
	if more != nil && more.HasMessage {
		message = more.Message
	}
	own := func(path string, kind uint8, b []byte) leaf {
		return leaf{path: []byte(path), kind: kind, b: b, rank: rankOwn}
	}
	leaves := make([]leaf, 0, 24)
	leaves = append(leaves, leaf{path: []byte("@timestamp"), kind: kindTime, t: p.Time, rank: rankOwn}, own("message", kindStr, message))
	if len(meta.HostName) > 0 {
		leaves = append(leaves, own("host.name", kindStr, meta.HostName))
	}
	if len(meta.HostIP) > 0 {
		leaves = append(leaves, own("host.ip", kindStr, meta.HostIP))
	}
	if len(meta.AgentID) > 0 {
		leaves = append(leaves, own("agent.type", kindRaw, []byte(`"`+AgentType+`"`)), own("agent.id", kindStr, meta.AgentID))
		if len(meta.HostName) > 0 {
			leaves = append(leaves, own("agent.name", kindStr, meta.HostName))
		}
		if len(meta.AgentVersion) > 0 {
			leaves = append(leaves, own("agent.version", kindStr, meta.AgentVersion))
		}
	}
	if len(meta.Path) > 0 {
		leaves = append(leaves, own("log.file.path", kindStr, meta.Path))
	}
	if meta.HasOffset {
		leaves = append(leaves, leaf{path: []byte("log.offset"), kind: kindInt, n: meta.Offset, rank: rankOwn})
	}
	if len(meta.Flags) > 0 {
		leaves = append(leaves, own("log.flags", kindList, meta.Flags))
	}
	leaves = append(leaves, own("kafka.topic", kindStr, []byte(p.Topic)),
		leaf{path: []byte("kafka.partition"), kind: kindInt, n: int64(p.Partition), rank: rankOwn},
		leaf{path: []byte("kafka.offset"), kind: kindInt, n: p.Offset, rank: rankOwn},
		own("ecs.version", kindRaw, []byte(`"`+ECSVersion+`"`)))
	if p.Dataset != "" {
		leaves = append(leaves, own("event.dataset", kindStr, []byte(p.Dataset)))
	}
	if !p.Ingested.IsZero() {
		leaves = append(leaves, leaf{path: []byte("event.ingested"), kind: kindTime, t: p.Ingested, rank: rankOwn})
	}
	if more != nil {
		if !more.Created.IsZero() {
			leaves = append(leaves, leaf{path: []byte("event.created"), kind: kindTime, t: more.Created, rank: rankOwn})
		}
		if more.OutOfRange != "" {
			leaves = append(leaves, own("event.timestamp_out_of_range", kindStr, []byte(more.OutOfRange)))
		}
		if more.ErrMsg != "" {
			leaves = append(leaves, own("error.message", kindStr, []byte(more.ErrMsg)))
		}
		leaves = fragmentLeaves(leaves, more.Parsed, "", rankParsed)
	}
	leaves = fragmentLeaves(leaves, p.Fields, "", rankFields)
	settle(leaves)
	return appendTree(dst, leaves)
}
