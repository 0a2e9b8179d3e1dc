// Package collectconf is the schema of an agent's collect config, the JSON
// list an operator puts at /logagent/<ip>/collect_config, and its
// validation. The agent, the transfer's topic discovery and logctl all parse
// it here, so they accept and reject exactly the same documents.
package collectconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// Limits on one document, so a bad put cannot make an agent allocate
// without bound.
const (
	MaxEntries    = 10000
	MaxPathLen    = 4096
	MaxPatternLen = 1024
	// MaxPatternInsts bounds a multiline pattern's compiled program, so a
	// short pattern such as (a{0,1000}){0,1000} cannot make every line
	// expensive to match or the compile itself a memory bomb.
	MaxPatternInsts = 10000
	// MaxEntryInsts bounds an entry's patterns together (multiline,
	// include_lines, exclude_lines): every byte of every event is matched
	// against each of them, so their total program size is the work a byte
	// can cost (RE2's time grows with program size × input length).
	MaxEntryInsts = 10000
	// MaxConfigInsts bounds every pattern of a collect config together: a
	// compiled program holds about 140 bytes per instruction, so this keeps
	// a config's matchers within a few MB of an agent's memory_limit.
	MaxConfigInsts   = 40000
	MaxFields        = 64
	MaxFieldValueLen = 1024
	DefaultMaxLines  = 500
	DefaultTimeout   = time.Second
	maxTopicLen      = 249
)

// From values.
const (
	FromBeginning = "beginning"
	FromEnd       = "end"
)

// Entry is one file (or glob) to collect into one topic.
type Entry struct {
	// Path is an absolute file path or glob (*, ?, [...]).
	Path  string `json:"path"`
	Topic string `json:"topic"`
	// From says where to start in a file this agent has never read for
	// this entry: "beginning" (default) or "end". Files that appear while
	// the entry is active are always read from their start.
	From string `json:"from,omitempty"`
	// Multiline joins continuation lines to the line that starts an event.
	Multiline *Multiline `json:"multiline,omitempty"`
	// Fields are static key/values attached to every event: under
	// "fields" in the document (fields.service), or at its root when
	// FieldsUnderRoot is set (as Filebeat's fields_under_root). A dotted
	// name is a path of objects: "service.name" is {"service":{"name":…}}.
	Fields          map[string]string `json:"fields,omitempty"`
	FieldsUnderRoot bool              `json:"fields_under_root,omitempty"`
	// IncludeLines and ExcludeLines are RE2 patterns matched against each
	// whole event (after multiline joining): with IncludeLines only events
	// matching one of them are sent; then events matching one of
	// ExcludeLines are dropped. Dropped events are read past (the registry
	// moves over them) and counted, never sent.
	IncludeLines []string `json:"include_lines,omitempty"`
	ExcludeLines []string `json:"exclude_lines,omitempty"`
	// Pipeline names the transfer's processing pipeline for these events
	// (carried in the record's "pipeline" header).
	Pipeline string `json:"pipeline,omitempty"`

	include, exclude []*regexp.Regexp
}

// Filtered reports whether the entry has line filters.
func (e *Entry) Filtered() bool { return len(e.include) > 0 || len(e.exclude) > 0 }

// Keep reports whether an event passes the entry's line filters.
func (e *Entry) Keep(b []byte) bool {
	if len(e.include) > 0 {
		ok := false
		for _, re := range e.include {
			if re.Match(b) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range e.exclude {
		if re.Match(b) {
			return false
		}
	}
	return true
}

// Multiline configures event joining. In JSON it is either a pattern
// string or an object with the fields below.
type Multiline struct {
	// Pattern matches the first line of an event; lines that do not match
	// are appended to the current event.
	Pattern string `json:"pattern"`
	// MaxLines and MaxBytes bound one event; when reached the event is
	// sent and the next line starts a new one. MaxBytes 0 means the
	// agent's max_line_bytes.
	MaxLines int `json:"max_lines,omitempty"`
	MaxBytes int `json:"max_bytes,omitempty"`
	// Timeout sends a pending event when no line followed it in time.
	Timeout Duration `json:"timeout,omitempty"`

	re *regexp.Regexp
}

// Regexp returns the compiled pattern (set by Parse).
func (m *Multiline) Regexp() *regexp.Regexp { return m.re }

// UnmarshalJSON accepts "pattern" or {"pattern": ..., ...}.
func (m *Multiline) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &m.Pattern)
	}
	if len(b) == 0 || b[0] != '{' {
		return fmt.Errorf(`multiline must be a pattern string or an object such as {"pattern": "^\\S", "max_lines": 500}, got %.20s`, b)
	}
	type plain Multiline
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode((*plain)(m))
}

// Duration is a time.Duration written as a Go duration string ("2s").
type Duration time.Duration

// UnmarshalJSON parses "250ms"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`duration must be a string such as "2s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Key identifies an entry: one path into one topic.
func (e *Entry) Key() string { return e.Topic + "\x00" + e.Path }

// IsGlob reports whether Path has glob metacharacters.
func (e *Entry) IsGlob() bool { return strings.ContainsAny(e.Path, "*?[") }

// FromEnd reports whether unseen files start at their end.
func (e *Entry) FromEnd() bool { return e.From == FromEnd }

// Equal reports whether two entries collect the same way; an entry that
// changed in any field must be restarted.
func (e *Entry) Equal(o *Entry) bool {
	a, _ := json.Marshal(e)
	b, _ := json.Marshal(o)
	return bytes.Equal(a, b)
}

// Parse decodes and validates a whole collect config. It returns every
// problem found, each naming the entry, so an invalid document is rejected
// whole with a message that says what to fix.
func Parse(data []byte) ([]Entry, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("collect config is empty; want a JSON list such as [{\"path\":\"/var/log/app.log\",\"topic\":\"app_log\"}]")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw []json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("collect config is not a JSON list of entries: %w", JSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("collect config has trailing data after the JSON list")
	}
	if raw == nil {
		return nil, errors.New("collect config is null; want a JSON list (use [] for no files)")
	}
	if len(raw) > MaxEntries {
		return nil, fmt.Errorf("collect config has %d entries, more than the limit of %d", len(raw), MaxEntries)
	}
	entries := make([]Entry, len(raw))
	var errs []error
	seen := make(map[string]int, len(raw))
	left := MaxConfigInsts
	for i, r := range raw {
		e := &entries[i]
		d := json.NewDecoder(bytes.NewReader(r))
		d.DisallowUnknownFields()
		if err := d.Decode(e); err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i, JSONError(err)))
			continue
		}
		if err := e.validate(&left); err != nil {
			errs = append(errs, fmt.Errorf("entry %d (path %q, topic %q): %w", i, e.Path, e.Topic, err))
			continue
		}
		if j, dup := seen[e.Key()]; dup {
			errs = append(errs, fmt.Errorf("entry %d (path %q, topic %q): duplicates entry %d", i, e.Path, e.Topic, j))
			continue
		}
		seen[e.Key()] = i
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return entries, nil
}

// JSONError says where a JSON document went wrong, in an operator's
// words: the byte of a syntax error (json leaves it out of its message),
// the field of a type mismatch.
func JSONError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %w", se.Offset, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Errorf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
	}
	return err
}

// MaxLinePatterns bounds include_lines and exclude_lines each.
const MaxLinePatterns = 64

var (
	topicRE    = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)
	fieldKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,127}$`)
)

// reservedFields are the document's objects and fields the transfer sets
// itself: fields under the root may not name them.
var reservedFields = []string{"@timestamp", "message", "host", "log", "kafka", "event", "agent", "ecs", "error", "fields"}

// ValidTopic reports why name is not a legal Kafka topic name, or nil.
func ValidTopic(name string) error {
	switch {
	case name == "":
		return errors.New("topic is required")
	case name == "." || name == "..":
		return fmt.Errorf("topic %q is not a legal Kafka topic name", name)
	case len(name) > maxTopicLen:
		return fmt.Errorf("topic is %d characters, Kafka allows at most %d", len(name), maxTopicLen)
	case !topicRE.MatchString(name):
		return fmt.Errorf("topic %q is not a legal Kafka topic name (letters, digits, '.', '_', '-')", name)
	}
	return nil
}

// validate checks e and compiles its patterns, within left instructions
// of the config's budget (what they use is taken off it). Patterns are
// sized before any is compiled, so a config over budget costs no more
// than its size checks.
func (e *Entry) validate(left *int) error {
	var errs []error
	switch {
	case e.Path == "":
		errs = append(errs, errors.New("path is required"))
	case !filepath.IsAbs(e.Path):
		errs = append(errs, fmt.Errorf("path %q is not absolute", e.Path))
	case strings.ContainsRune(e.Path, 0):
		errs = append(errs, errors.New("path contains a NUL byte"))
	case len(e.Path) > MaxPathLen:
		errs = append(errs, fmt.Errorf("path is %d bytes, at most %d allowed", len(e.Path), MaxPathLen))
	default:
		// Check the cleaned path too: it is what is stored, and what a
		// re-parse of the stored entry sees ("/a\\/." cleans to the bad
		// glob "/a\\", "/var/.." to the directory "/").
		clean := filepath.Clean(e.Path)
		if _, err := filepath.Match(e.Path, ""); err != nil {
			errs = append(errs, fmt.Errorf("path %q is not a valid glob: %w", e.Path, err))
		} else if _, err := filepath.Match(clean, ""); err != nil {
			errs = append(errs, fmt.Errorf("path %q is not a valid glob once cleaned to %q: %w", e.Path, clean, err))
		}
		if strings.HasSuffix(e.Path, "/") || clean == "/" {
			dir := strings.TrimSuffix(clean, "/") + "/"
			errs = append(errs, fmt.Errorf("path %q names a directory; use a file or a glob such as %s*.log", e.Path, dir))
		}
		e.Path = clean
	}
	if err := ValidTopic(e.Topic); err != nil {
		errs = append(errs, err)
	}
	switch e.From {
	case "", FromBeginning:
		e.From = ""
	case FromEnd:
	default:
		errs = append(errs, fmt.Errorf("from %q must be %q or %q", e.From, FromBeginning, FromEnd))
	}
	if *left < 0 {
		// The config's budget is spent (said once, at the entry that spent
		// it): sizing more patterns would only cost more.
	} else if insts, err := e.patternInsts(min(MaxEntryInsts, *left)); err != nil {
		errs = append(errs, err)
	} else if insts > MaxEntryInsts {
		errs = append(errs, fmt.Errorf("patterns (multiline, include_lines, exclude_lines) compile to %d instructions in all, at most %d per entry: every byte of every event is matched against each of them", insts, MaxEntryInsts))
	} else if insts > *left {
		errs = append(errs, fmt.Errorf("patterns compile to more than the %d instructions left of the collect config's budget (%d in all); later entries' patterns are not checked", *left, MaxConfigInsts))
		*left = -1
	} else {
		*left -= insts
		if m := e.Multiline; m != nil {
			if err := m.validate(); err != nil {
				errs = append(errs, fmt.Errorf("multiline: %w", err))
			}
		}
		var err error
		if e.include, err = compileLines("include_lines", e.IncludeLines); err != nil {
			errs = append(errs, err)
		}
		if e.exclude, err = compileLines("exclude_lines", e.ExcludeLines); err != nil {
			errs = append(errs, err)
		}
	}
	if e.Pipeline != "" && !record.ValidPipelineName(e.Pipeline) {
		errs = append(errs, fmt.Errorf("pipeline %q must be %s", e.Pipeline, record.PipelineNameRule))
	}
	if len(e.Fields) > MaxFields {
		errs = append(errs, fmt.Errorf("fields has %d keys, at most %d allowed", len(e.Fields), MaxFields))
	}
	// Sorted, so the same document always gives the same message.
	for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
		v := e.Fields[k]
		// Reserved names first: "@timestamp" would otherwise only be
		// told that it starts with the wrong character.
		reserved := false
		for _, r := range reservedFields {
			if e.FieldsUnderRoot && (k == r || strings.HasPrefix(k, r+".")) {
				errs = append(errs, fmt.Errorf("field name %q is reserved under fields_under_root: the transfer sets %q itself", k, r))
				reserved = true
			}
		}
		if !reserved && (!fieldKeyRE.MatchString(k) || strings.Contains(k, "..") || strings.HasSuffix(k, ".")) {
			errs = append(errs, fmt.Errorf("field name %q must start with a letter or _ and hold only letters, digits, _ . - (no empty part between dots)", k))
			continue
		}
		// "a" and "a.b" would make a both a value and an object.
		for p := k; ; {
			i := strings.LastIndexByte(p, '.')
			if i < 0 {
				break
			}
			p = p[:i]
			if _, ok := e.Fields[p]; ok {
				errs = append(errs, fmt.Errorf("field names %q and %q conflict: %q would be both a value and an object", p, k, p))
			}
		}
		if len(v) > MaxFieldValueLen {
			errs = append(errs, fmt.Errorf("field %q value is %d bytes, at most %d allowed", k, len(v), MaxFieldValueLen))
		}
	}
	return errors.Join(errs...)
}

// patternInsts checks the size of each of e's patterns and returns their
// programs' instructions in all; it stops sizing once they exceed limit.
func (e *Entry) patternInsts(limit int) (int, error) {
	total := 0
	var errs []error
	if m := e.Multiline; m != nil {
		n, err := patternSize(m.Pattern)
		if err != nil {
			errs = append(errs, fmt.Errorf("multiline: %w", err))
		}
		total += n
	}
	for _, l := range []struct {
		name string
		pats []string
	}{{"include_lines", e.IncludeLines}, {"exclude_lines", e.ExcludeLines}} {
		if len(l.pats) > MaxLinePatterns {
			errs = append(errs, fmt.Errorf("%s has %d patterns, at most %d allowed", l.name, len(l.pats), MaxLinePatterns))
			continue
		}
		for i, p := range l.pats {
			if total > limit {
				return total, errors.Join(errs...)
			}
			if p == "" {
				errs = append(errs, fmt.Errorf("%s[%d] is empty (it would match every line)", l.name, i))
				continue
			}
			n, err := patternSize(p)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s[%d]: %w", l.name, i, err))
			}
			total += n
		}
	}
	return total, errors.Join(errs...)
}

// patternSize is checkProgramSize's count, after the length check.
func patternSize(p string) (int, error) {
	if p == "" {
		return 0, errors.New("pattern is required")
	}
	if len(p) > MaxPatternLen {
		return 0, fmt.Errorf("pattern is %d bytes, at most %d allowed", len(p), MaxPatternLen)
	}
	return checkProgramSize(p)
}

// compileLines compiles a list of line patterns (sized by patternInsts).
func compileLines(name string, pats []string) ([]*regexp.Regexp, error) {
	if len(pats) > MaxLinePatterns {
		return nil, fmt.Errorf("%s has %d patterns, at most %d allowed", name, len(pats), MaxLinePatterns)
	}
	var out []*regexp.Regexp
	var errs []error
	for i, p := range pats {
		if p == "" {
			errs = append(errs, fmt.Errorf("%s[%d] is empty (it would match every line)", name, i))
			continue
		}
		if len(p) > MaxPatternLen {
			errs = append(errs, fmt.Errorf("%s[%d] is %d bytes, at most %d allowed", name, i, len(p), MaxPatternLen))
			continue
		}
		re, err := regexp.Compile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %w", name, i, p, err))
			continue
		}
		out = append(out, re)
	}
	return out, errors.Join(errs...)
}

func (m *Multiline) validate() error {
	if m.Pattern == "" {
		return errors.New("pattern is required")
	}
	if len(m.Pattern) > MaxPatternLen {
		return fmt.Errorf("pattern is %d bytes, at most %d allowed", len(m.Pattern), MaxPatternLen)
	}
	if _, err := checkProgramSize(m.Pattern); err != nil {
		return err
	}
	re, err := regexp.Compile(m.Pattern)
	if err != nil {
		return fmt.Errorf("pattern %q: %w", m.Pattern, err)
	}
	m.re = re
	if m.MaxLines < 0 || m.MaxBytes < 0 || m.Timeout < 0 {
		return errors.New("max_lines, max_bytes and timeout must not be negative")
	}
	if m.MaxLines == 0 {
		m.MaxLines = DefaultMaxLines
	}
	if m.Timeout == 0 {
		m.Timeout = Duration(DefaultTimeout)
	}
	if time.Duration(m.Timeout) > time.Minute {
		return fmt.Errorf("timeout %s is longer than 1m", time.Duration(m.Timeout))
	}
	return nil
}

// checkProgramSize compiles pattern's syntax tree (without building a
// matcher), refuses programs over MaxPatternInsts instructions and returns
// the instructions.
func checkProgramSize(pattern string) (int, error) {
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return 0, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	n := len(prog.Inst)
	if n > MaxPatternInsts {
		return n, fmt.Errorf("pattern compiles to %d instructions, at most %d allowed (simplify its repetitions)", n, MaxPatternInsts)
	}
	return n, nil
}

// ParseTopics returns the distinct topics of a collect config without
// validating anything else, and without compiling its patterns: for readers
// of every agent's config (the transfer's topic discovery), where one
// agent's document must not cost more than reading it. Topics that are not
// legal Kafka names make it fail.
func ParseTopics(data []byte) ([]string, error) {
	var raw []struct {
		Topic string `json:"topic"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("collect config is not a JSON list of entries: %w", JSONError(err))
	}
	if len(raw) > MaxEntries {
		return nil, fmt.Errorf("collect config has %d entries, more than the limit of %d", len(raw), MaxEntries)
	}
	var out []string
	seen := map[string]bool{}
	for i, e := range raw {
		if err := ValidTopic(e.Topic); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		if !seen[e.Topic] {
			seen[e.Topic] = true
			out = append(out, e.Topic)
		}
	}
	return out, nil
}

// Topics returns the distinct topics of entries, in order of first use.
func Topics(entries []Entry) []string {
	var out []string
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.Topic] {
			seen[e.Topic] = true
			out = append(out, e.Topic)
		}
	}
	return out
}
