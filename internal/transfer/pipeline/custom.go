package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds on what a custom pipeline may make the transfer do.
const (
	// MaxProcessors bounds a custom pipeline.
	MaxProcessors = 64
	// MaxPatternLen and MaxPatternInsts bound one regex or drop.matches
	// pattern, and MaxPipelineInsts all of a pipeline's patterns together:
	// a compiled program holds about 140 bytes per instruction, and RE2's
	// time grows with program size × input length.
	MaxPatternLen    = 4096
	MaxPatternInsts  = 10000
	MaxPipelineInsts = 10000
	// MaxDocWork bounds the work one document may cost: the sum, over the
	// pattern processors that run, of instructions × bytes matched (about
	// 30 ms). A document that would cost more is not matched at all: it
	// goes to the dead-letter topic with the reason, so a long line never
	// holds up the documents behind it.
	MaxDocWork = 1 << 25
)

// errOverBudget marks a processor's refusal to run past MaxDocWork.
var errOverBudget = errors.New("over the per-document work budget")

// compileBudgeted compiles a pattern of a regex or drop processor once its
// size is within MaxPatternLen, MaxPatternInsts and what is left of the
// pipeline's MaxPipelineInsts (taken off left); it returns the program's
// instructions for the run-time budget.
func compileBudgeted(pattern string, left *int) (*regexp.Regexp, int, error) {
	if len(pattern) > MaxPatternLen {
		return nil, 0, fmt.Errorf("pattern is %d bytes, at most %d allowed", len(pattern), MaxPatternLen)
	}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, 0, err
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return nil, 0, err
	}
	n := len(prog.Inst)
	switch {
	case n > MaxPatternInsts:
		return nil, n, fmt.Errorf("pattern compiles to %d instructions, at most %d allowed (simplify its repetitions)", n, MaxPatternInsts)
	case n > *left:
		return nil, n, fmt.Errorf("pattern compiles to %d instructions, past the pipeline's budget of %d in all for its patterns (%d left)", n, MaxPipelineInsts, *left)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, n, err
	}
	*left -= n
	return re, n, nil
}

// spend takes the work of matching n bytes against a program of insts
// instructions off the event's budget; false if it is not enough.
func (e *event) spend(insts, n int) bool {
	w := int64(insts) * int64(max(n, 1))
	if w > e.work {
		return false
	}
	e.work -= w
	return true
}

// Custom pipelines are JSON lists of processors, each an object with one
// key naming it:
//
//	[{"dissect": {"field": "message", "pattern": "%{client} [%{ts}] %{status}"}},
//	 {"timestamp": {"field": "ts", "layouts": ["02/Jan/2006:15:04:05 -0700"], "timezone": "UTC"}},
//	 {"convert": {"field": "status", "type": "long"}},
//	 {"drop": {"field": "status", "equals": "204"}}]
//
// Processors: dissect, regex (RE2 named groups), json (an object in a
// field, merged or under target), timestamp (layouts: Go layouts or
// RFC3339, RFC3339Nano, RFC1123, UNIX, UNIX_MS; timezone for layouts
// without one), convert (long, double, boolean, ip), rename, remove, set,
// drop (when field equals a value or matches a pattern). "message" is the
// raw line; setting it replaces the document's message. A processor that
// fails on a line (no match, a bad time) stops the pipeline: the line is
// indexed raw with error.message naming the processor.

type proc struct {
	name string
	run  func(e *event) error
}

// event is a line being processed.
type event struct {
	line    []byte
	keys    []string
	vals    map[string]any // string, int64, float64, bool, json.RawMessage
	msg     []byte
	msgSet  bool
	t       time.Time
	dropped bool
	// work is what is left of MaxDocWork for this line.
	work int64
}

func (e *event) get(k string) (any, bool) {
	if k == "message" {
		if e.msgSet {
			return string(e.msg), true
		}
		return string(e.line), true
	}
	v, ok := e.vals[k]
	return v, ok
}

func (e *event) set(k string, v any) {
	if k == "message" {
		s, ok := v.(string)
		if raw, isRaw := v.(json.RawMessage); isRaw && json.Unmarshal(raw, &s) != nil {
			s = string(raw) // not a JSON string: its text
		} else if !ok && !isRaw {
			s = fmt.Sprint(v)
		}
		e.msg, e.msgSet = []byte(s), true
		return
	}
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

func (e *event) del(k string) {
	if _, ok := e.vals[k]; ok {
		delete(e.vals, k)
		e.keys = slices.DeleteFunc(e.keys, func(x string) bool { return x == k })
	}
}

func (e *event) str(k string) (string, error) {
	v, ok := e.get(k)
	if !ok {
		return "", fmt.Errorf("field %q is missing", k)
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.RawMessage:
		var s string
		if json.Unmarshal(x, &s) == nil {
			return s, nil
		}
		return string(x), nil
	default:
		return fmt.Sprint(x), nil
	}
}

// Parse validates a custom pipeline whole and returns it.
func Parse(data []byte) (Func, error) {
	var specs []map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&specs); err != nil {
		return nil, fmt.Errorf("a pipeline is a JSON list of processors: %w", err)
	}
	if len(specs) == 0 {
		return nil, errors.New("a pipeline needs at least one processor")
	}
	if len(specs) > MaxProcessors {
		return nil, fmt.Errorf("%d processors, at most %d allowed", len(specs), MaxProcessors)
	}
	var procs []proc
	var errs []error
	left := MaxPipelineInsts
	for i, spec := range specs {
		if len(spec) != 1 {
			errs = append(errs, fmt.Errorf("processor %d: an object with exactly one key (its kind), got %d", i, len(spec)))
			continue
		}
		for kind, raw := range spec {
			p, err := compileProc(kind, raw, &left)
			if err != nil {
				errs = append(errs, fmt.Errorf("processor %d (%s): %w", i, kind, err))
				continue
			}
			p.name = fmt.Sprintf("processor %d (%s)", i, kind)
			procs = append(procs, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return func(line []byte, _ time.Time, r *Result) {
		e := &event{line: line, vals: map[string]any{}, work: MaxDocWork}
		for _, p := range procs {
			if err := p.run(e); err != nil {
				r.Fail(p.name + ": " + err.Error())
				r.OverBudget = errors.Is(err, errOverBudget)
				return
			}
			if e.dropped {
				r.Drop = true
				return
			}
		}
		for _, k := range e.keys {
			switch v := e.vals[k].(type) {
			case string:
				r.Str(k, []byte(v))
			case int64:
				r.Int(k, v)
			case float64:
				r.Raw(k, strconv.AppendFloat(nil, v, 'g', -1, 64))
			case bool:
				r.Raw(k, strconv.AppendBool(nil, v))
			case json.RawMessage:
				r.Raw(k, v)
			}
		}
		if e.msgSet {
			r.Message, r.HasMessage = append(r.Message[:0], e.msg...), true
		}
		r.Time = e.t
	}, nil
}

// strict decodes a processor's options, refusing unknown ones.
func strict(raw json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// checkTarget refuses fields the transfer writes itself.
func checkTarget(k string) error {
	switch {
	case k == "":
		return errors.New("a field name is required")
	case k == "@timestamp":
		return errors.New(`"@timestamp" is set with the timestamp processor`)
	case isReserved(k):
		return fmt.Errorf("field %q is written by the transfer itself", k)
	case !validKey(k):
		return fmt.Errorf("field %q: names are letters, digits and _ . - @", k)
	}
	return nil
}

// compiler builds one kind of processor from its options, spending the
// pipeline's regular-expression budget (left).
type compiler func(raw json.RawMessage, left *int) (proc, error)

// processors is the table of processor kinds and their compilers.
func processors() []struct {
	kind    string
	compile compiler
} {
	return []struct {
		kind    string
		compile compiler
	}{
		{"dissect", compileDissect},
		{"regex", compileRegex},
		{"json", compileJson},
		{"timestamp", compileTimestamp},
		{"convert", compileConvert},
		{"rename", compileRename},
		{"remove", compileRemove},
		{"set", compileSet},
		{"drop", compileDrop},
	}
}

func compileProc(kind string, raw json.RawMessage, left *int) (proc, error) {
	var kinds []string
	for _, p := range processors() {
		if p.kind == kind {
			return p.compile(raw, left)
		}
		kinds = append(kinds, p.kind)
	}
	return proc{}, fmt.Errorf("unknown processor %q (%s)", kind, strings.Join(kinds, ", "))
}

func compileDissect(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ Field, Pattern string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	field := orMessage(o.Field)
	d, err := parseDissect(o.Pattern)
	if err != nil {
		return proc{}, err
	}
	for _, f := range d.fields {
		if !f.skip {
			if err := checkTarget(f.key); err != nil && f.key != "message" {
				return proc{}, err
			}
		}
	}
	return proc{run: func(e *event) error {
		s, err := e.str(field)
		if err != nil {
			return err
		}
		return d.apply([]byte(s), func(k string, v []byte, app bool) {
			if cur, ok := e.vals[k].(string); app && ok {
				e.set(k, cur+" "+string(v))
				return
			}
			e.set(k, string(v))
		})
	}}, nil
}

func compileRegex(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ Field, Pattern string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	field := orMessage(o.Field)
	re, insts, err := compileBudgeted(o.Pattern, left)
	if err != nil {
		return proc{}, err
	}
	names := re.SubexpNames()
	named := 0
	for _, n := range names[1:] {
		if n != "" {
			named++
			if err := checkTarget(n); err != nil {
				return proc{}, fmt.Errorf("group %q: %w", n, err)
			}
		}
	}
	if named == 0 {
		return proc{}, errors.New("pattern has no named group (?P<name>…)")
	}
	return proc{run: func(e *event) error {
		s, err := e.str(field)
		if err != nil {
			return err
		}
		if !e.spend(insts, len(s)) {
			return fmt.Errorf("matching %d bytes against %d instructions is %w", len(s), insts, errOverBudget)
		}
		m := re.FindStringSubmatchIndex(s)
		if m == nil {
			return errors.New("pattern does not match")
		}
		for i, n := range names {
			if n != "" && m[2*i] >= 0 {
				e.set(n, s[m[2*i]:m[2*i+1]])
			}
		}
		return nil
	}}, nil
}

func compileJson(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ Field, Target string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	field := orMessage(o.Field)
	if o.Target != "" {
		if err := checkTarget(o.Target); err != nil {
			return proc{}, err
		}
	}
	return proc{run: func(e *event) error {
		s, err := e.str(field)
		if err != nil {
			return err
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &obj); err != nil {
			return fmt.Errorf("not a JSON object: %w", err)
		}
		if o.Target != "" {
			e.set(o.Target, json.RawMessage(s))
			return nil
		}
		for _, k := range sortedKeys(obj) {
			name := k
			if checkTarget(k) != nil {
				name = "json." + k
			}
			e.set(name, obj[k])
		}
		return nil
	}}, nil
}

func compileTimestamp(raw json.RawMessage, left *int) (proc, error) {
	var o struct {
		Field    string
		Layouts  []string
		Timezone string
		Remove   bool
	}
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	if o.Field == "" || len(o.Layouts) == 0 {
		return proc{}, errors.New(`"field" and "layouts" are required`)
	}
	loc := time.UTC
	if o.Timezone != "" {
		var err error
		if loc, err = time.LoadLocation(o.Timezone); err != nil {
			return proc{}, fmt.Errorf("timezone %q: %w", o.Timezone, err)
		}
	}
	layouts := make([]string, len(o.Layouts))
	for i, l := range o.Layouts {
		layouts[i] = namedLayout(l)
	}
	return proc{run: func(e *event) error {
		s, err := e.str(o.Field)
		if err != nil {
			return err
		}
		for _, l := range layouts {
			if t, ok := parseTime(l, s, loc); ok {
				e.t = t.UTC()
				if o.Remove {
					e.del(o.Field)
				}
				return nil
			}
		}
		return fmt.Errorf("%q matches none of the layouts", s)
	}}, nil
}

func compileConvert(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ Field, Type string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	if err := checkTarget(o.Field); err != nil {
		return proc{}, err
	}
	var conv func(string) (any, error)
	switch o.Type {
	case "long":
		conv = func(s string) (any, error) { return strconv.ParseInt(strings.TrimSpace(s), 10, 64) }
	case "double":
		conv = func(s string) (any, error) { return strconv.ParseFloat(strings.TrimSpace(s), 64) }
	case "boolean":
		conv = func(s string) (any, error) { return strconv.ParseBool(strings.TrimSpace(s)) }
	case "ip":
		conv = func(s string) (any, error) {
			a, err := netip.ParseAddr(strings.TrimSpace(s))
			if err != nil {
				return nil, err
			}
			return a.String(), nil
		}
	default:
		return proc{}, fmt.Errorf("type %q must be long, double, boolean or ip", o.Type)
	}
	return proc{run: func(e *event) error {
		s, err := e.str(o.Field)
		if err != nil {
			return err
		}
		v, err := conv(s)
		if err != nil {
			return fmt.Errorf("%q is not %s", s, o.Type)
		}
		e.set(o.Field, v)
		return nil
	}}, nil
}

func compileRename(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ From, To string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	if o.From == "" {
		return proc{}, errors.New(`"from" is required`)
	}
	if err := checkTarget(o.To); err != nil {
		return proc{}, err
	}
	return proc{run: func(e *event) error {
		v, ok := e.vals[o.From]
		if !ok {
			return nil // nothing to rename
		}
		e.del(o.From)
		e.set(o.To, v)
		return nil
	}}, nil
}

func compileRemove(raw json.RawMessage, left *int) (proc, error) {
	var o struct{ Fields []string }
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	if len(o.Fields) == 0 {
		return proc{}, errors.New(`"fields" is required`)
	}
	return proc{run: func(e *event) error {
		for _, f := range o.Fields {
			e.del(f)
		}
		return nil
	}}, nil
}

func compileSet(raw json.RawMessage, left *int) (proc, error) {
	var o struct {
		Field string
		Value json.RawMessage
	}
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	if err := checkTarget(o.Field); err != nil {
		return proc{}, err
	}
	if len(o.Value) == 0 {
		return proc{}, errors.New(`"value" is required`)
	}
	v := json.RawMessage(bytes.TrimSpace(o.Value))
	return proc{run: func(e *event) error { e.set(o.Field, v); return nil }}, nil
}

func compileDrop(raw json.RawMessage, left *int) (proc, error) {
	var o struct {
		Field   string
		Equals  *string
		Matches string
	}
	if err := strict(raw, &o); err != nil {
		return proc{}, err
	}
	field := orMessage(o.Field)
	if (o.Equals == nil) == (o.Matches == "") {
		return proc{}, errors.New(`one of "equals" and "matches" is required`)
	}
	var re *regexp.Regexp
	var insts int
	if o.Matches != "" {
		var err error
		if re, insts, err = compileBudgeted(o.Matches, left); err != nil {
			return proc{}, err
		}
	}
	return proc{run: func(e *event) error {
		s, err := e.str(field)
		if err != nil {
			return nil // no such field: nothing to drop
		}
		if re != nil && !e.spend(insts, len(s)) {
			return fmt.Errorf("matching %d bytes against %d instructions is %w", len(s), insts, errOverBudget)
		}
		if o.Equals != nil && s == *o.Equals || re != nil && re.MatchString(s) {
			e.dropped = true
		}
		return nil
	}}, nil
}

func orMessage(f string) string {
	if f == "" {
		return "message"
	}
	return f
}

func namedLayout(l string) string {
	switch l {
	case "RFC3339":
		return time.RFC3339
	case "RFC3339Nano":
		return time.RFC3339Nano
	case "RFC1123":
		return time.RFC1123
	case "RFC1123Z":
		return time.RFC1123Z
	}
	return l
}

func parseTime(layout, s string, loc *time.Location) (time.Time, bool) {
	switch layout {
	case "UNIX":
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return time.Time{}, false
		}
		sec, frac := splitFloat(f)
		return time.Unix(sec, frac), true
	case "UNIX_MS":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.UnixMilli(n), true
	}
	t, err := time.ParseInLocation(layout, s, loc)
	return t, err == nil
}

func splitFloat(f float64) (int64, int64) {
	sec := int64(f)
	return sec, int64((f - float64(sec)) * 1e9)
}
