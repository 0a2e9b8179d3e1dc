package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func mustParse(t *testing.T, doc string) Func {
	t.Helper()
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

func TestCustomProcessors(t *testing.T) {
	app := mustParse(t, `[
		{"dissect": {"pattern": "%{ts} %{+ts} %{level->} %{?thread} %{msg}"}},
		{"timestamp": {"field": "ts", "layouts": ["2006-01-02 15:04:05.000"], "timezone": "Europe/Berlin", "remove": true}},
		{"regex": {"field": "msg", "pattern": "took (?P<duration_ms>\\d+)ms"}},
		{"convert": {"field": "duration_ms", "type": "long"}},
		{"rename": {"from": "level", "to": "log_level"}},
		{"set": {"field": "service.name", "value": "shop"}},
		{"set": {"field": "message", "value": "replaced"}},
		{"drop": {"field": "log_level", "equals": "TRACE"}}
	]`)
	run(t, app, time.Time{}, []sample{
		{name: "app line",
			line:    "2026-07-01 12:00:00.250 INFO    [main-1] request took 37ms",
			fields:  map[string]any{"msg": "request took 37ms", "duration_ms": 37, "log_level": "INFO", "service.name": "shop"},
			time:    "2026-07-01T10:00:00.25Z", // Berlin is UTC+2 in July
			message: "replaced"},
		{name: "dissect cannot match", line: "garbage", err: "processor 0 (dissect)"},
		{name: "bad time", line: "2026-13-01 99:00:00.000 INFO [x] took 1ms", err: "processor 1 (timestamp)"},
		{name: "regex does not match", line: "2026-07-01 12:00:00.250 INFO [m] nothing here", err: "processor 2 (regex): pattern does not match"},
	})
	var r Result
	app([]byte("2026-07-01 12:00:00.250 TRACE [m] took 1ms"), time.Time{}, &r)
	if !r.Drop || r.Err != "" {
		t.Fatalf("TRACE line: drop %v, err %q", r.Drop, r.Err)
	}

	conv := mustParse(t, `[{"json": {}}, {"convert": {"field": "ok", "type": "boolean"}}, {"convert": {"field": "ip", "type": "ip"}},
		{"convert": {"field": "ratio", "type": "double"}}, {"remove": {"fields": ["secret"]}}, {"drop": {"field": "path", "matches": "^/health"}}]`)
	run(t, conv, time.Time{}, []sample{
		{name: "json then convert", line: `{"ok":"true","ip":"::ffff:10.0.0.1","ratio":"0.5","secret":"x","path":"/a","log":"mine"}`,
			fields: map[string]any{"ip": "::ffff:10.0.0.1", "json.log": "mine", "ok": true, "path": "/a", "ratio": 0.5}},
		{name: "convert fails", line: `{"ok":"maybe","ip":"1.2.3.4","ratio":"1"}`, err: `processor 1 (convert): "maybe" is not boolean`},
	})
	r.Reset()
	conv([]byte(`{"ok":"1","ip":"1.2.3.4","ratio":"1","path":"/healthz"}`), time.Time{}, &r)
	if !r.Drop {
		t.Fatal("a /healthz line was not dropped")
	}

	epoch := mustParse(t, `[{"regex": {"pattern": "^(?P<t>\\d+) "}}, {"timestamp": {"field": "t", "layouts": ["UNIX_MS", "UNIX"]}}]`)
	run(t, epoch, time.Time{}, []sample{
		{name: "epoch ms", line: "1764576000123 hello", fields: map[string]any{"t": "1764576000123"}, time: "2025-12-01T08:00:00.123Z"},
	})
}

func TestCustomPipelineRefusedWhole(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{}`, "a JSON list of processors"},
		{`[]`, "at least one processor"},
		{`[{"grok": {}}]`, `unknown processor "grok"`},
		{`[{"dissect": {"pattern": "%{a"}}]`, "unclosed %{"},
		{`[{"dissect": {"pattern": "%{a}%{b}"}}]`, "nothing between them"},
		{`[{"dissect": {"pattern": "%{host} x"}}]`, `field "host" is written by the transfer itself`},
		{`[{"set": {"field": "log.file.path", "value": "x"}}]`, `field "log.file.path" is written by the transfer itself`},
		{`[{"rename": {"from": "a", "to": "kafka.offset"}}]`, `field "kafka.offset" is written by the transfer itself`},
		{`[{"regex": {"pattern": "(unnamed)"}}]`, "no named group"},
		{`[{"regex": {"pattern": "(?P<a>"}}]`, "missing closing )"},
		{`[{"timestamp": {"field": "t", "layouts": ["x"], "timezone": "Mars/Olympus"}}]`, `timezone "Mars/Olympus"`},
		{`[{"convert": {"field": "a", "type": "date"}}]`, "must be long, double, boolean or ip"},
		{`[{"set": {"field": "@timestamp", "value": 1}}]`, "timestamp processor"},
		{`[{"drop": {"field": "a"}}]`, `one of "equals" and "matches"`},
		{`[{"set": {"field": "a", "value": 1, "typo": 2}}]`, `unknown field "typo"`},
		{`[{"set": {"field": "a", "value": 1}}, {"convert": {}}]`, "processor 1 (convert)"},
	} {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

// A custom pipeline from etcd replaces the previous version; an invalid
// version is refused whole and the last good one stays in use.
func TestSetKeepsLastGood(t *testing.T) {
	l := logrus.New()
	l.SetLevel(logrus.PanicLevel)
	s := NewSet(DefaultPrefix, logrus.NewEntry(l), nil)
	snap := func(rev int64, kv map[string]string) (int64, map[string]Def) {
		out := map[string]Def{}
		for k, v := range kv {
			out[DefaultPrefix+k] = Def{Value: []byte(v), Revision: rev}
		}
		return rev, out
	}
	out := func(name, line string) string {
		f, ok := s.Lookup([]byte(name))
		if !ok {
			return "<none>"
		}
		var r Result
		f([]byte(line), time.Time{}, &r)
		return strings.TrimPrefix(string(r.Fragment()), ",")
	}
	s.Update(snap(1, map[string]string{"app": `[{"set": {"field": "v", "value": 1}}]`, "nginx": `[{"set": {"field": "v", "value": 1}}]`}))
	if got := out("app", "x"); got != `"v":1` {
		t.Fatalf("app gives %s", got)
	}
	s.Update(snap(2, map[string]string{"app": `[{"set": {"field": "v", "value": 2}}]`}))
	if got := out("app", "x"); got != `"v":2` {
		t.Fatalf("after the update app gives %s", got)
	}
	s.Update(snap(3, map[string]string{"app": `[{"sett": {}}]`}))
	if got := out("app", "x"); got != `"v":2` {
		t.Fatalf("after an invalid version app gives %s, want the last good one", got)
	}
	st := s.Status()
	if !strings.Contains(st.Errors["app"], "unknown processor") || len(st.Custom) != 1 || st.Revisions["app"] != 2 {
		t.Fatalf("status %+v, want app's revision 2 in use and revision 3's error", st)
	}
	if got := out("nginx", `1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1`); !strings.Contains(got, "status_code") {
		t.Fatalf("a custom pipeline shadowed the built-in nginx: %s", got)
	}
	s.Update(snap(4, map[string]string{}))
	if got := out("app", "x"); got != "<none>" {
		t.Fatalf("deleted pipeline still gives %s", got)
	}
}

func FuzzDissect(f *testing.F) {
	f.Add("%{a} %{b}", "one two")
	f.Add("[%{ts}] %{+ts} %{?x} %{rest}", "[t] u v w x y")
	f.Add("%{a->} %{b}", "x     y")
	f.Add("%{a}", "")
	f.Fuzz(func(t *testing.T, pattern, input string) {
		d, err := parseDissect(pattern)
		if err != nil {
			return
		}
		n := 0
		_ = d.apply([]byte(input), func(k string, v []byte, _ bool) {
			n++
			if len(v) > len(input) {
				t.Fatalf("value %q longer than the input", v)
			}
		})
		if n > len(d.fields) {
			t.Fatalf("%d values for %d fields", n, len(d.fields))
		}
	})
}

// Keys taken from the line (a JSON object's) are escaped: a quote in a key
// cannot break the document (it would be refused and dead-lettered).
func TestKeysFromTheLineAreEscaped(t *testing.T) {
	for _, f := range []Func{JSON, mustParse(t, `[{"json": {}}]`)} {
		var r Result
		f([]byte(`{"we\"ird key":1,"ok":"x"}`), time.Time{}, &r)
		if r.Err != "" {
			t.Fatalf("error %q", r.Err)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte("{"+strings.TrimPrefix(string(r.Fragment()), ",")+"}"), &got); err != nil {
			t.Fatalf("fragment %s is not JSON: %v", r.Fragment(), err)
		}
		if got["ok"] != "x" || len(got) != 2 {
			t.Fatalf("fields %v", got)
		}
	}
}

// A set is not ready until it was loaded, from etcd or from a cached
// copy; the cache holds the versions in force, a cached version is checked
// like one from etcd, and etcd's first answer replaces the cache whole
// (a pipeline deleted while the transfer was down is gone).
func TestSetReadyAndCache(t *testing.T) {
	l := logrus.New()
	l.SetLevel(logrus.PanicLevel)
	snap := func(rev int64, kv map[string]string) (int64, map[string]Def) {
		out := map[string]Def{}
		for k, v := range kv {
			out[DefaultPrefix+k] = Def{Value: []byte(v), Revision: rev}
		}
		return rev, out
	}
	has := func(s *Set, name, want string) {
		t.Helper()
		f, ok := s.Lookup([]byte(name))
		got := "<none>"
		if ok {
			var r Result
			f([]byte("x"), time.Time{}, &r)
			got = strings.TrimPrefix(string(r.Fragment()), ",")
		}
		if got != want {
			t.Fatalf("%s gives %s, want %s", name, got, want)
		}
	}
	a := NewSet(DefaultPrefix, logrus.NewEntry(l), nil)
	if a.Ready() == nil {
		t.Fatal("a set never loaded is ready")
	}
	if _, ok := a.MarshalCache(); ok {
		t.Fatal("a set never loaded from etcd has a cache to keep")
	}
	a.Update(snap(5, map[string]string{"app": `[{"set": {"field": "v", "value": 1}}]`, "gone": `[{"set": {"field": "g", "value": 1}}]`, "bad": `[{"sett": {}}]`}))
	if err := a.Ready(); err != nil {
		t.Fatal(err)
	}
	cache, ok := a.MarshalCache()
	if !ok || strings.Contains(string(cache), "sett") {
		t.Fatalf("cache %s %v: want the versions in force only", cache, ok)
	}

	b := NewSet(DefaultPrefix, logrus.NewEntry(l), nil)
	if err := b.LoadCache(cache); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(); err != nil || b.Status().From != "cache" || b.Status().Revisions["app"] != 5 {
		t.Fatalf("ready %v, status %+v", err, b.Status())
	}
	has(b, "app", `"v":1`)
	has(b, "gone", `"g":1`)
	// etcd's first answer: gone was deleted meanwhile.
	b.Update(snap(7, map[string]string{"app": `[{"set": {"field": "v", "value": 1}}]`}))
	has(b, "app", `"v":1`)
	has(b, "gone", "<none>")
	if b.Status().From != "etcd" || b.Status().Revisions["app"] != 7 {
		t.Fatalf("status %+v", b.Status())
	}
	// A cache loaded after etcd answered changes nothing.
	if err := b.LoadCache(cache); err != nil {
		t.Fatal(err)
	}
	has(b, "gone", "<none>")

	// A cached version that does not validate (edited by hand, or a rule
	// tightened since) is refused, the others load.
	c := NewSet(DefaultPrefix, logrus.NewEntry(l), nil)
	tampered := strings.Replace(string(cache), `"set"`, `"sett"`, 1)
	if err := c.LoadCache([]byte(tampered)); err != nil {
		t.Fatal(err)
	}
	if len(c.Status().Errors) != 1 || len(c.Status().Custom) != 1 {
		t.Fatalf("tampered cache loaded as %+v", c.Status())
	}
	if err := NewSet("/other/", logrus.NewEntry(l), nil).LoadCache(cache); err == nil {
		t.Fatal("a cache of another prefix was loaded")
	}
}

// TestPipelineBudgets: a pipeline's patterns are sized before they are
// compiled (one pattern, and all of them together), and a line that would
// cost a document more than MaxDocWork is not matched but marked over
// budget (the transfer dead-letters it), while a usual line runs.
func TestPipelineBudgets(t *testing.T) {
	heavy := `(?P<x>a{0,999}b{0,999}c{0,999}d{0,999})` // about 8,000 instructions
	f := func(name, pipeline, want string) {
		t.Helper()
		_, err := Parse([]byte(pipeline))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", name, err, want)
		} else {
			t.Logf("%s: a user sees: %v", name, err)
		}
	}
	rx := func(p string) string {
		b, _ := json.Marshal(map[string]any{"regex": map[string]string{"pattern": p}})
		return string(b)
	}
	drop := func(p string) string {
		b, _ := json.Marshal(map[string]any{"drop": map[string]string{"matches": p}})
		return string(b)
	}
	f("one pattern too large", "["+rx(`(?P<x>a{0,999}b{0,999}c{0,999}d{0,999}e{0,999}f{0,999})`)+"]", "processor 0 (regex): pattern compiles to 11")
	f("two heavy regexes", "["+rx(heavy)+","+rx(heavy)+"]", "processor 1 (regex): pattern compiles to 7")
	f("a heavy regex and a heavy drop", "["+rx(heavy)+","+drop(heavy)+"]", fmt.Sprintf("past the pipeline's budget of %d", MaxPipelineInsts))
	f("a pattern too long", "["+drop(strings.Repeat("a", MaxPatternLen+1))+"]", "processor 0 (drop): pattern is 4097 bytes")

	p, err := Parse([]byte("[" + rx(heavy) + "]"))
	if err != nil {
		t.Fatal(err)
	}
	var r Result
	p([]byte("abcd"), time.Time{}, &r)
	if r.Err != "" || r.OverBudget || !strings.Contains(string(r.Fragment()), `"x":"abcd"`) {
		t.Fatalf("a short line: %+v %s", r, r.Fragment())
	}
	r.Reset()
	long := []byte(strings.Repeat("z", MaxDocWork/7000)) // over the budget for 8,000 instructions
	p(long, time.Time{}, &r)
	if !r.OverBudget || !strings.Contains(r.Err, "per-document work budget") {
		t.Fatalf("a long line: over budget %v, error %q", r.OverBudget, r.Err)
	}
	// The budget is per document, spent across processors.
	d, err := Parse([]byte("[" + drop(`(?:x{0,999}){0,1}q`) + "," + drop(`(?:y{0,999}){0,1}q`) + "]"))
	if err != nil {
		t.Fatal(err)
	}
	r.Reset()
	d([]byte(strings.Repeat("z", MaxDocWork/2000/2+MaxDocWork/2000/4)), time.Time{}, &r)
	if !r.OverBudget || !strings.HasPrefix(r.Err, "processor 1 (drop)") {
		t.Fatalf("two processors sharing a document's budget: over budget %v, error %q", r.OverBudget, r.Err)
	}
}
