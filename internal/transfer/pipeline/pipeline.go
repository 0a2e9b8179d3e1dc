// Package pipeline turns a raw log line into document fields and the time
// written in the line. It runs in logtransfer (agents stay lean, and Kafka
// keeps the raw line, so a fixed pipeline can be run again); the agent only
// names the pipeline in each record's "pipeline" header.
//
// A pipeline writes into a Result: fields as a JSON fragment of dotted ECS
// names (`,"http.response.status_code":200,…`), which Elasticsearch expands
// into objects, the event time, and on failure an error that is indexed
// with the raw line (nothing is dropped for a line that does not parse).
package pipeline

import (
	"slices"
	"strconv"
	"time"

	"github.com/logpipe/logpipe/internal/platform/jsonenc"
)

// Func is a pipeline: it reads line and fills r (reset by the caller).
// read is when the agent read the line, for formats that leave out the
// year.
type Func func(line []byte, read time.Time, r *Result)

// Builtin returns the built-in pipeline named name.
func Builtin(name string) (Func, bool) {
	switch name {
	case "nginx", "apache":
		return AccessLog, true
	case "json":
		return JSON, true
	case "syslog":
		return Syslog, true
	}
	return nil, false
}

// Dataset is event.dataset for records of topic run through the pipeline
// named name: the built-ins' own (as Filebeat's modules name them), else
// the topic.
func Dataset(name, topic string) string {
	switch name {
	case "nginx":
		return "nginx.access"
	case "apache":
		return "apache.access"
	case "syslog":
		return "system.syslog"
	}
	return topic
}

// Builtins lists the built-in pipelines' names.
func Builtins() []string { return []string{"apache", "json", "nginx", "syslog"} }

// Result is what a pipeline made of one line. Its buffers are reused
// across Reset.
type Result struct {
	frag []byte
	// Time is the event time found in the line (zero: none).
	Time time.Time
	// Err says why the line could not be parsed ("": it was).
	Err string
	// Message replaces the document's message when set (a JSON line's
	// own "message").
	Message []byte
	// HasMessage reports whether Message was set.
	HasMessage bool
	// Drop says the line is not to be indexed (a drop processor).
	Drop bool
	// OverBudget says the line would cost more than a document may (see
	// MaxDocWork): it is not indexed but dead-lettered, with Err saying
	// why.
	OverBudget bool
}

// Reset empties r for the next line.
func (r *Result) Reset() {
	r.frag = r.frag[:0]
	r.Time, r.Err, r.Message, r.HasMessage, r.Drop, r.OverBudget = time.Time{}, "", r.Message[:0], false, false, false
}

// Fragment is the fields as a JSON object fragment: `,"k":v,…` (empty if
// none).
func (r *Result) Fragment() []byte { return r.frag }

// key appends `,"k":`, escaped: custom pipelines take names from the line
// (a JSON object's keys).
func (r *Result) key(k string) {
	r.frag = append(r.frag, ',')
	r.frag = jsonenc.AppendString(r.frag, k)
	r.frag = append(r.frag, ':')
}

// lit appends `,"k":` for a name known to need no escaping (the
// built-ins' own field names).
func (r *Result) lit(k string) {
	r.frag = append(r.frag, ',', '"')
	r.frag = append(r.frag, k...)
	r.frag = append(r.frag, '"', ':')
}

// str and num are Str and Int for the built-ins' own field names.
func (r *Result) str(k string, v []byte) {
	r.lit(k)
	r.frag = jsonenc.AppendString(r.frag, v)
}

func (r *Result) num(k string, v int64) {
	r.lit(k)
	r.frag = strconv.AppendInt(r.frag, v, 10)
}

// sortedKeys returns obj's keys in order, so documents are deterministic.
func sortedKeys[V any](obj map[string]V) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Str sets field k to the string v.
func (r *Result) Str(k string, v []byte) {
	r.key(k)
	r.frag = jsonenc.AppendString(r.frag, v)
}

// Int sets field k to the number v.
func (r *Result) Int(k string, v int64) {
	r.key(k)
	r.frag = strconv.AppendInt(r.frag, v, 10)
}

// Raw sets field k to v, a JSON value.
func (r *Result) Raw(k string, v []byte) {
	r.key(k)
	r.frag = append(r.frag, v...)
}

// Fail records why the line could not be parsed; fields set so far are
// dropped (a half-parsed line is indexed raw).
func (r *Result) Fail(why string) {
	r.frag = r.frag[:0]
	r.Time = time.Time{}
	r.Err = why
}
