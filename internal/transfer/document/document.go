// Package document writes a record's Elasticsearch document: the one
// render path, shared by the transfer that builds a document's parts and
// the bulk writer that renders them straight into a request. It is plain
// Go: it knows nothing of Kafka clients or HTTP.
package document

import (
	"bytes"
	"strconv"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/jsonenc"
)

// Head is what of a record's headers its document shows.
type Head struct {
	HostName, HostIP, Path, Flags []byte
	Offset                        int64
	HasOffset                     bool
}

// HeadOf is the part of v a document shows.
func HeadOf(v *record.View) Head {
	return Head{HostName: v.HostName, HostIP: v.HostIP, Path: v.Path, Flags: v.Flags, Offset: v.Offset, HasOffset: v.HasOffset}
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
	// Fields is the static fields as a JSON fragment: each field
	// preceded by a comma, no braces.
	Fields []byte
	More   *More // nil for most documents
}

// More is what a pipeline made of a line, and the bound its index-time
// stamp crossed: parts most documents do without, kept apart so that the
// others stay small while they wait.
type More struct {
	Message    []byte // the message, if the pipeline set it (HasMessage)
	HasMessage bool
	Parsed     []byte // the pipeline's fields, a fragment as Fields
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
//	 "log":{"file":{"path":…},"offset":…,"flags":[…]},
//	 "kafka":{"topic":…,"partition":…,"offset":…}, <fields>…, <parsed>…,
//	 "event":{"created":…,"timestamp_out_of_range":…},"error":{"message":…}}
//
// Absent headers and parts leave their fields out. Strings have invalid
// UTF-8 replaced by U+FFFD, so the body is always valid JSON.
func (p *Parts) Render(dst []byte) []byte {
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
			// Comma-separated, each item shown (as strings.Split).
			for rest := meta.Flags; ; {
				j := bytes.IndexByte(rest, ',')
				if j < 0 {
					dst = jsonenc.AppendString(dst, rest)
					break
				}
				dst = jsonenc.AppendString(dst, rest[:j])
				dst = append(dst, ',')
				rest = rest[j+1:]
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"kafka":{"topic":`...)
	dst = jsonenc.AppendString(dst, p.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(p.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, p.Offset, 10)
	dst = append(dst, '}')
	dst = append(dst, p.Fields...)
	if more == nil {
		return append(dst, '}')
	}
	dst = append(dst, more.Parsed...)
	if !more.Created.IsZero() || more.OutOfRange != "" {
		dst = append(dst, `,"event":{`...)
		if !more.Created.IsZero() {
			dst = append(dst, `"created":"`...)
			dst = jsonenc.AppendTime(dst, more.Created)
			dst = append(dst, '"')
		}
		if more.OutOfRange != "" {
			if !more.Created.IsZero() {
				dst = append(dst, ',')
			}
			dst = append(dst, `"timestamp_out_of_range":`...)
			dst = jsonenc.AppendString(dst, more.OutOfRange)
		}
		dst = append(dst, '}')
	}
	if more.ErrMsg != "" {
		dst = append(dst, `,"error":{"message":`...)
		dst = jsonenc.AppendString(dst, more.ErrMsg)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}
