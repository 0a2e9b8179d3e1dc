package collectconf

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestParseBad(t *testing.T) {
	long := strings.Repeat("t", 250)
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not json", `path=/var/log/a.log`, "not a JSON list of entries: invalid JSON at byte 1"},
		{"truncated", `[{"path":"/a.log","topic":"t"}`, "not a JSON list of entries"},
		{"object not list", `{"path":"/a.log","topic":"t"}`, "not a JSON list of entries: want []json.RawMessage, got JSON object"},
		{"string not list", `"/a.log"`, "not a JSON list of entries"},
		{"null", `null`, "collect config is null"},
		{"null padded", " \n null \n", "collect config is null"},
		{"empty", ``, "collect config is empty"},
		{"blank", " \n\t ", "collect config is empty"},
		{"trailing garbage", `[{"path":"/a.log","topic":"t"}] x`, "trailing data after the JSON list"},
		{"two lists", `[] []`, "trailing data after the JSON list"},
		{"entry not object", `["/a.log"]`, "entry 0: want collectconf.Entry, got JSON string"},
		{"null entry", `[null]`, "entry 0 (path \"\", topic \"\"): path is required"},
		{"missing path", `[{"topic":"t"}]`, "entry 0 (path \"\", topic \"t\"): path is required"},
		{"missing topic", `[{"path":"/a.log"}]`, "entry 0 (path \"/a.log\", topic \"\"): topic is required"},
		{"relative path", `[{"path":"var/log/a.log","topic":"t"}]`, `path "var/log/a.log" is not absolute`},
		{"dot relative path", `[{"path":"./a.log","topic":"t"}]`, `path "./a.log" is not absolute`},
		{"directory", `[{"path":"/var/log/","topic":"t"}]`, `path "/var/log/" names a directory; use a file or a glob such as /var/log/*.log`},
		{"root", `[{"path":"/","topic":"t"}]`, `path "/" names a directory`},
		{"root cleaned", `[{"path":"/var/..","topic":"t"}]`, `path "/var/.." names a directory`},
		{"nul byte", `[{"path":"/a\u0000.log","topic":"t"}]`, "path contains a NUL byte"},
		{"path too long", `[{"path":"/` + strings.Repeat("a", MaxPathLen) + `","topic":"t"}]`, "path is 4097 bytes, at most 4096 allowed"},
		{"pattern too long", `[{"path":"/a.log","topic":"t","multiline":"` + strings.Repeat("a", MaxPatternLen+1) + `"}]`, "pattern is 1025 bytes, at most 1024 allowed"},
		{"pattern program too big", `[{"path":"/a.log","topic":"t","multiline":"` + strings.Repeat("[a-z]{1000}", 11) + `"}]`, "pattern compiles to 11002 instructions, at most 10000 allowed"},
		{"invalid glob", `[{"path":"/var/log/[","topic":"t"}]`, `path "/var/log/[" is not a valid glob: syntax error in pattern`},
		{"invalid glob escape", `[{"path":"/var/log/a\\","topic":"t"}]`, `path "/var/log/a\\" is not a valid glob`},
		{"glob invalid once cleaned", `[{"path":"/var/log\\/.","topic":"t"}]`, "is not a valid glob"},
		{"topic with space", `[{"path":"/a.log","topic":"web log"}]`, `topic "web log" is not a legal Kafka topic name`},
		{"topic with slash", `[{"path":"/a.log","topic":"a/b"}]`, `topic "a/b" is not a legal Kafka topic name`},
		{"topic dot", `[{"path":"/a.log","topic":"."}]`, `topic "." is not a legal Kafka topic name`},
		{"topic dotdot", `[{"path":"/a.log","topic":".."}]`, `topic ".." is not a legal Kafka topic name`},
		{"topic non-ascii", `[{"path":"/a.log","topic":"журнал"}]`, "is not a legal Kafka topic name"},
		{"topic too long", `[{"path":"/a.log","topic":"` + long + `"}]`, "topic is 250 characters, Kafka allows at most 249"},
		{"unknown field", `[{"path":"/a.log","topci":"t"}]`, `entry 0: json: unknown field "topci"`},
		{"unknown multiline field", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","max_line":3}}]`, `unknown field "max_line"`},
		{"path wrong type", `[{"path":5,"topic":"t"}]`, `entry 0: field "path": want string, got JSON number`},
		{"fields wrong type", `[{"path":"/a.log","topic":"t","fields":["a"]}]`, `field "fields": want map[string]string, got JSON array`},
		{"field value wrong type", `[{"path":"/a.log","topic":"t","fields":{"env":1}}]`, `want string, got JSON number`},
		{"duplicate", `[{"path":"/a.log","topic":"t"},{"path":"/a.log","topic":"t"}]`, `entry 1 (path "/a.log", topic "t"): duplicates entry 0`},
		{"duplicate once cleaned", `[{"path":"/a.log","topic":"t"},{"path":"//x/../a.log","topic":"t"}]`, `entry 1 (path "/a.log", topic "t"): duplicates entry 0`},
		{"bad from", `[{"path":"/a.log","topic":"t","from":"start"}]`, `from "start" must be "beginning" or "end"`},
		{"from case", `[{"path":"/a.log","topic":"t","from":"END"}]`, `from "END" must be`},
		{"multiline bad regex", `[{"path":"/a.log","topic":"t","multiline":"^(x"}]`, "multiline: pattern \"^(x\": error parsing regexp: missing closing )"},
		{"multiline object bad regex", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"[a"}}]`, "multiline: pattern \"[a\": error parsing regexp"},
		{"multiline empty", `[{"path":"/a.log","topic":"t","multiline":""}]`, "multiline: pattern is required"},
		{"multiline no pattern", `[{"path":"/a.log","topic":"t","multiline":{"max_lines":3}}]`, "multiline: pattern is required"},
		{"multiline negative max_lines", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","max_lines":-1}}]`, "multiline: max_lines, max_bytes and timeout must not be negative"},
		{"multiline negative max_bytes", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","max_bytes":-1}}]`, "must not be negative"},
		{"multiline negative timeout", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","timeout":"-1s"}}]`, "must not be negative"},
		{"multiline timeout abc", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","timeout":"abc"}}]`, `entry 0: bad duration "abc"`},
		{"multiline timeout number", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","timeout":5}}]`, `duration must be a string such as "2s"`},
		{"multiline timeout too long", `[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","timeout":"2m"}}]`, "multiline: timeout 2m0s is longer than 1m"},
		{"multiline wrong type", `[{"path":"/a.log","topic":"t","multiline":5}]`, `entry 0: multiline must be a pattern string or an object such as {"pattern": "^\\S", "max_lines": 500}, got 5`},
		{"multiline list", `[{"path":"/a.log","topic":"t","multiline":["^x"]}]`, `multiline must be a pattern string or an object`},
		{"multiline pattern wrong type", `[{"path":"/a.log","topic":"t","multiline":{"pattern":5}}]`, `entry 0: field "multiline.pattern": want string, got JSON number`},
		{"reserved message", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"message":"x"}}]`, `field name "message" is reserved under fields_under_root: the transfer sets "message" itself`},
		{"reserved host.name", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"host.name":"x"}}]`, `field name "host.name" is reserved under fields_under_root: the transfer sets "host" itself`},
		{"reserved @timestamp", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"@timestamp":"x"}}]`, `field name "@timestamp" is reserved under fields_under_root: the transfer sets "@timestamp" itself`},
		{"reserved kafka", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"kafka":"x"}}]`, `field name "kafka" is reserved`},
		{"reserved agent", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"agent.name":"x"}}]`, `field name "agent.name" is reserved`},
		{"reserved fields", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"fields":"x"}}]`, `field name "fields" is reserved`},
		{"field key digit", `[{"path":"/a.log","topic":"t","fields":{"1abc":"x"}}]`, `field name "1abc" must start with a letter or _ and hold only letters, digits, _ . -`},
		{"field key space", `[{"path":"/a.log","topic":"t","fields":{"a b":"x"}}]`, `field name "a b" must start with a letter or _`},
		{"field key empty", `[{"path":"/a.log","topic":"t","fields":{"":"x"}}]`, `field name "" must start with a letter or _`},
		{"field key empty part", `[{"path":"/a.log","topic":"t","fields":{"a..b":"x"}}]`, `field name "a..b" must start with a letter or _ and hold only letters, digits, _ . - (no empty part between dots)`},
		{"field key ends in a dot", `[{"path":"/a.log","topic":"t","fields":{"a.":"x"}}]`, `field name "a." must start`},
		{"field value and object", `[{"path":"/a.log","topic":"t","fields":{"service":"x","service.name":"y"}}]`, `field names "service" and "service.name" conflict: "service" would be both a value and an object`},
		{"field value and deeper object", `[{"path":"/a.log","topic":"t","fields":{"a":"x","a.b.c":"y"}}]`, `field names "a" and "a.b.c" conflict`},
		{"several bad fields", `[{"path":"/a.log","topic":"t","fields_under_root":true,"fields":{"z z":"x","a a":"x","host":"x","event.kind":"x"}}]`,
			`entry 0 (path "/a.log", topic "t"): field name "a a" must start with a letter or _ and hold only letters, digits, _ . - (no empty part between dots)` + "\n" +
				`field name "event.kind" is reserved under fields_under_root: the transfer sets "event" itself` + "\n" +
				`field name "host" is reserved under fields_under_root: the transfer sets "host" itself` + "\n" +
				`field name "z z" must start with a letter or _ and hold only letters, digits, _ . -`},
		{"field key too long", `[{"path":"/a.log","topic":"t","fields":{"` + strings.Repeat("k", 129) + `":"x"}}]`, "must start with a letter or _"},
		{"field value too long", `[{"path":"/a.log","topic":"t","fields":{"env":"` + strings.Repeat("v", MaxFieldValueLen+1) + `"}}]`, `field "env" value is 1025 bytes, at most 1024 allowed`},
		{"too many fields", `[{"path":"/a.log","topic":"t","fields":{` + manyFields(MaxFields+1) + `}}]`, "fields has 65 keys, at most 64 allowed"},
		{"too many entries", `[` + strings.Repeat(`{},`, MaxEntries) + `{}]`, "collect config has 10001 entries, more than the limit of 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, err := Parse([]byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse(%.100q) = %+v, want error containing %q", tc.doc, entries, tc.want)
			}
			if entries != nil {
				t.Errorf("Parse(%.100q) returned entries along with the error", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%.100q) error:\n%s\nwant it to contain: %s", tc.doc, err, tc.want)
			}
		})
	}
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"f%d":"v"`, i)
	}
	return b.String()
}

// TestParseErrorsNameEntries checks that every bad entry is reported, each
// with its index, and only the bad ones.
func TestParseErrorsNameEntries(t *testing.T) {
	doc := `[
		{"path": "/ok.log", "topic": "ok"},
		{"path": "rel.log", "topic": "t"},
		{"path": "/ok2.log", "topic": "ok"},
		{"path": "/b.log", "topic": "bad topic", "from": "middle"},
		{"path": "/ok.log", "topic": "ok"}
	]`
	_, err := Parse([]byte(doc))
	if err == nil {
		t.Fatal("Parse succeeded, want errors")
	}
	want := strings.Join([]string{
		`entry 1 (path "rel.log", topic "t"): path "rel.log" is not absolute`,
		`entry 3 (path "/b.log", topic "bad topic"): topic "bad topic" is not a legal Kafka topic name (letters, digits, '.', '_', '-')`,
		`from "middle" must be "beginning" or "end"`,
		`entry 4 (path "/ok.log", topic "ok"): duplicates entry 0`,
	}, "\n")
	if err.Error() != want {
		t.Errorf("Parse error:\n%s\nwant:\n%s", err, want)
	}
}

func mustParse(t *testing.T, doc string) []Entry {
	t.Helper()
	entries, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%q): %v", doc, err)
	}
	return entries
}

func TestParseGood(t *testing.T) {
	f := func(doc string, want []Entry) {
		t.Helper()
		got := mustParse(t, doc)
		if len(got) != len(want) {
			t.Fatalf("Parse(%q) = %d entries, want %d", doc, len(got), len(want))
		}
		for i := range got {
			if !got[i].Equal(&want[i]) {
				g, _ := json.Marshal(&got[i])
				w, _ := json.Marshal(&want[i])
				t.Errorf("Parse(%q) entry %d:\n got: %s\nwant: %s", doc, i, g, w)
			}
		}
	}
	f(`[]`, []Entry{})
	f(" [ ] \n", []Entry{})
	f(`[{"path":"/var/log/app.log","topic":"app_log"}]`, []Entry{{Path: "/var/log/app.log", Topic: "app_log"}})
	// The seed's documents have no other keys; the topic alphabet is
	// letters, digits and . _ -.
	f(`[{"path":"/var/log/nginx/access.log","topic":"web.access-log_1"}]`,
		[]Entry{{Path: "/var/log/nginx/access.log", Topic: "web.access-log_1"}})
	f(`[{"path":"/a.log","topic":"`+strings.Repeat("t", 249)+`"}]`, []Entry{{Path: "/a.log", Topic: strings.Repeat("t", 249)}})
	// One file into two topics is two entries.
	f(`[{"path":"/a.log","topic":"t1"},{"path":"/a.log","topic":"t2"}]`,
		[]Entry{{Path: "/a.log", Topic: "t1"}, {Path: "/a.log", Topic: "t2"}})
	// Paths are cleaned.
	f(`[{"path":"/var/log//a/../b.log","topic":"t"}]`, []Entry{{Path: "/var/log/b.log", Topic: "t"}})
	f(`[{"path":"/var/log/./app/*.log","topic":"t"}]`, []Entry{{Path: "/var/log/app/*.log", Topic: "t"}})
	// "beginning" is the default and is normalised away.
	f(`[{"path":"/a.log","topic":"t","from":"beginning"}]`, []Entry{{Path: "/a.log", Topic: "t"}})
	f(`[{"path":"/a.log","topic":"t","from":"end"}]`, []Entry{{Path: "/a.log", Topic: "t", From: FromEnd}})
	// A null multiline or empty fields mean none.
	f(`[{"path":"/a.log","topic":"t","multiline":null,"fields":{}}]`, []Entry{{Path: "/a.log", Topic: "t"}})
	f(`[{"path":"/a.log","topic":"t","fields":{"env":"prod","_x":"","svc.name":"api","a-b":"`+strings.Repeat("v", MaxFieldValueLen)+`","hostname":"h","messages":"m"}}]`,
		[]Entry{{Path: "/a.log", Topic: "t", Fields: map[string]string{
			"env": "prod", "_x": "", "svc.name": "api", "a-b": strings.Repeat("v", MaxFieldValueLen), "hostname": "h", "messages": "m",
		}}})
	f(`[{"path":"/a.log","topic":"t","fields":{`+manyFields(MaxFields)+`}}]`, []Entry{{Path: "/a.log", Topic: "t", Fields: func() map[string]string {
		m := map[string]string{}
		for i := range MaxFields {
			m[fmt.Sprintf("f%d", i)] = "v"
		}
		return m
	}()}})
}

func TestParseMultiline(t *testing.T) {
	f := func(doc string, want Multiline) {
		t.Helper()
		entries := mustParse(t, doc)
		m := entries[0].Multiline
		if m == nil {
			t.Fatalf("Parse(%q): no multiline", doc)
		}
		if m.Pattern != want.Pattern || m.MaxLines != want.MaxLines || m.MaxBytes != want.MaxBytes || m.Timeout != want.Timeout {
			t.Errorf("Parse(%q) multiline = %+v, want %+v", doc, *m, want)
		}
		if m.Regexp() == nil || m.Regexp().String() != want.Pattern {
			t.Errorf("Parse(%q) Regexp() = %v, want compiled %q", doc, m.Regexp(), want.Pattern)
		}
	}
	def := Multiline{Pattern: `^\d{4}-`, MaxLines: DefaultMaxLines, Timeout: Duration(DefaultTimeout)}
	f(`[{"path":"/a.log","topic":"t","multiline":"^\\d{4}-"}]`, def)
	f(`[{"path":"/a.log","topic":"t","multiline": "^\\d{4}-" }]`, def)
	f(`[{"path":"/a.log","topic":"t","multiline":{"pattern":"^\\d{4}-"}}]`, def)
	f(`[{"path":"/a.log","topic":"t","multiline":{"pattern":"^\\d{4}-","max_lines":0,"timeout":"0s"}}]`, def)
	f(`[{"path":"/a.log","topic":"t","multiline":{"pattern":"^\\S","max_lines":20,"max_bytes":65536,"timeout":"250ms"}}]`,
		Multiline{Pattern: `^\S`, MaxLines: 20, MaxBytes: 65536, Timeout: Duration(250 * time.Millisecond)})
	f(`[{"path":"/a.log","topic":"t","multiline":{"pattern":"^x","timeout":"1m"}}]`,
		Multiline{Pattern: `^x`, MaxLines: DefaultMaxLines, Timeout: Duration(time.Minute)})
}

func TestIsGlobFromEnd(t *testing.T) {
	for path, want := range map[string]bool{
		"/var/log/app.log":      false,
		"/var/log/*.log":        true,
		"/var/log/app-?.log":    true,
		"/var/log/app[0-9].log": true,
		"/var/log/*/app.log":    true,
	} {
		if got := (&Entry{Path: path}).IsGlob(); got != want {
			t.Errorf("IsGlob(%q) = %v, want %v", path, got, want)
		}
	}
	e := mustParse(t, `[{"path":"/a.log","topic":"t"},{"path":"/b.log","topic":"t","from":"end"}]`)
	if e[0].FromEnd() || !e[1].FromEnd() {
		t.Errorf("FromEnd = %v, %v; want false, true", e[0].FromEnd(), e[1].FromEnd())
	}
}

func TestKey(t *testing.T) {
	a := Entry{Path: "/a.log", Topic: "t1"}
	b := Entry{Path: "/a.log", Topic: "t2"}
	// Neither half can run into the other.
	c := Entry{Path: "/x", Topic: "a"}
	d := Entry{Path: "x", Topic: "a/"}
	if a.Key() == b.Key() || c.Key() == d.Key() {
		t.Errorf("keys collide: %q %q %q %q", a.Key(), b.Key(), c.Key(), d.Key())
	}
}

func TestTopics(t *testing.T) {
	for _, tc := range []struct {
		entries []Entry
		want    []string
	}{
		{nil, nil},
		{[]Entry{{Topic: "a"}}, []string{"a"}},
		{[]Entry{{Topic: "b"}, {Topic: "a"}, {Topic: "b"}, {Topic: "c"}, {Topic: "a"}}, []string{"b", "a", "c"}},
	} {
		if got := Topics(tc.entries); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Topics(%v) = %q, want %q", tc.entries, got, tc.want)
		}
	}
}

func TestEqual(t *testing.T) {
	const base = `{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod","svc":"api"}}`
	parse := func(doc string) *Entry {
		t.Helper()
		return &mustParse(t, "["+doc+"]")[0]
	}
	a := parse(base)
	if !a.Equal(a) {
		t.Error("entry not Equal to itself")
	}
	for _, same := range []string{
		base,
		// Same after parsing: field order, default from, cleaned path,
		// default multiline values written out.
		`{"fields":{"svc":"api","env":"prod"},"topic":"t","path":"/a/./*.log","from":"end","multiline":{"pattern":"^x","max_lines":10,"timeout":"1s"}}`,
	} {
		if b := parse(same); !a.Equal(b) || !b.Equal(a) {
			t.Errorf("%s\nnot Equal to\n%s", same, base)
		}
	}
	for _, changed := range []string{
		`{"path":"/b/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"u","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^y","max_lines":10},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":11},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10,"max_bytes":100},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10,"timeout":"2s"},"fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","fields":{"env":"prod","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"dev","svc":"api"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod"}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10},"fields":{"env":"prod","svc":"api","x":""}}`,
		`{"path":"/a/*.log","topic":"t","from":"end","multiline":{"pattern":"^x","max_lines":10}}`,
	} {
		if b := parse(changed); a.Equal(b) || b.Equal(a) {
			t.Errorf("%s\nEqual to\n%s", changed, base)
		}
	}
}

// seeds are documents for FuzzParse, good and bad.
var seeds = []string{
	``,
	`null`,
	`[]`,
	`{}`,
	`[{}]`,
	`[null]`,
	`[{"path":"/var/log/app.log","topic":"app_log"}]`,
	`[{"path":"/var/log//a/../b.log","topic":"t"},{"path":"/var/log/b.log","topic":"u"}]`,
	`[{"path":"/var/log/*.log","topic":"web","from":"end","fields":{"env":"prod"}}]`,
	`[{"path":"/a.log","topic":"t","multiline":"^\\d"}]`,
	`[{"path":"/a.log","topic":"t","multiline":{"pattern":"^\\S","max_lines":3,"max_bytes":10,"timeout":"1.5µs"}}]`,
	`[{"path":"/a.log","topic":"t"},{"path":"/a.log","topic":"t"}]`,
	`[{"path":"/var/log/[","topic":"t"}]`,
	`[{"path":"/var/log\\/.","topic":"t"}]`,
	`[{"path":"/.","topic":"t"}]`,
	`[{"path":"/a.log","topic":"a/b"}]`,
	`[{"path":"/a.log","topic":"t","fields":{"@timestamp":"x","1a":"y"}}]`,
	`[{"path":"/a.log","topic":"t","multiline":{"pattern":"(","timeout":"abc"}}]`,
	`[{"path":"/a.log","topci":"t"}] x`,
	`[{"path":5}]`,
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(data)
		if err != nil {
			if entries != nil {
				t.Fatalf("Parse returned entries and error %v", err)
			}
			return
		}
		checkEntries(t, entries)
		out, err := json.Marshal(entries)
		if err != nil {
			t.Fatalf("marshalling parsed entries: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Marshal(Parse(%q))) = %v\nmarshalled: %s", data, err, out)
		}
		if len(again) != len(entries) {
			t.Fatalf("round trip: %d entries, want %d", len(again), len(entries))
		}
		for i := range entries {
			if !entries[i].Equal(&again[i]) {
				t.Fatalf("round trip changed entry %d:\n%+v\n%+v", i, entries[i], again[i])
			}
		}
	})
}

func checkEntries(t *testing.T, entries []Entry) {
	t.Helper()
	keys := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		if !strings.HasPrefix(e.Path, "/") {
			t.Errorf("entry %d: path %q is not absolute", i, e.Path)
		}
		if err := ValidTopic(e.Topic); err != nil {
			t.Errorf("entry %d: %v", i, err)
		}
		if keys[e.Key()] {
			t.Errorf("entry %d: duplicate key %q", i, e.Key())
		}
		keys[e.Key()] = true
		if m := e.Multiline; m != nil && (m.Regexp() == nil || m.MaxLines <= 0 || m.Timeout <= 0) {
			t.Errorf("entry %d: multiline not filled in: %+v", i, *m)
		}
	}
}

// TestSeedsHoldInvariants runs the fuzz checks on the seeds in plain
// `go test`, so the round trip is exercised without -fuzz.
func TestSeedsHoldInvariants(t *testing.T) {
	good := 0
	for _, s := range seeds {
		entries, err := Parse([]byte(s))
		if err != nil {
			continue
		}
		good++
		checkEntries(t, entries)
		out, _ := json.Marshal(entries)
		again, err := Parse(out)
		if err != nil {
			t.Errorf("seed %s: reparse of %s: %v", s, out, err)
			continue
		}
		for i := range entries {
			if !entries[i].Equal(&again[i]) {
				t.Errorf("seed %s: round trip changed entry %d", s, i)
			}
		}
	}
	if good < 5 {
		t.Errorf("only %d seeds parse; the fuzzer needs good seeds", good)
	}
}

func TestParseTopicsCompilesNothing(t *testing.T) {
	// The transfer reads every agent's config for its topics: a pattern
	// that the agent would refuse (or one that is merely expensive) is not
	// compiled; the topics must still be legal.
	doc := `[{"path":"/a.log","topic":"a","multiline":"` + strings.Repeat("[a-z]{1000}", 11) + `"},
		{"path":"/b.log","topic":"b"},{"path":"/c.log","topic":"a"}]`
	got, err := ParseTopics([]byte(doc))
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("ParseTopics = %v, %v; want a,b", got, err)
	}
	if _, err := ParseTopics([]byte(`[{"path":"/a.log","topic":"bad topic"}]`)); err == nil {
		t.Fatal("illegal topic name accepted")
	}
	if _, err := ParseTopics([]byte(`{"topic":"a"}`)); err == nil {
		t.Fatal("non-list accepted")
	}
}

func TestLineFilters(t *testing.T) {
	es, err := Parse([]byte(`[{"path":"/a.log","topic":"t","include_lines":["^ERR","^WARN"],"exclude_lines":["healthz"],"pipeline":"nginx"},
		{"path":"/b.log","topic":"t"}]`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := &es[0], &es[1]
	if !a.Filtered() || b.Filtered() || a.Pipeline != "nginx" {
		t.Fatalf("filtered %v %v, pipeline %q", a.Filtered(), b.Filtered(), a.Pipeline)
	}
	for line, want := range map[string]bool{
		"ERR disk full":        true,
		"WARN slow":            true,
		"INFO started":         false, // not included
		"ERR GET /healthz 500": false, // included, then excluded
	} {
		if got := a.Keep([]byte(line)); got != want {
			t.Errorf("Keep(%q) = %v, want %v", line, got, want)
		}
	}
	if !b.Keep([]byte("anything")) {
		t.Error("an entry without filters dropped a line")
	}
	for _, tc := range []struct{ doc, want string }{
		{`[{"path":"/a.log","topic":"t","exclude_lines":["("]}]`, `exclude_lines[0]: pattern "(": error parsing regexp`},
		{`[{"path":"/a.log","topic":"t","include_lines":[""]}]`, "include_lines[0] is empty"},
		{`[{"path":"/a.log","topic":"t","include_lines":"ERR"}]`, `field "include_lines": want []string`},
		{`[{"path":"/a.log","topic":"t","pipeline":"Nginx Logs"}]`, `pipeline "Nginx Logs" must be`},
		{`[{"path":"/a.log","topic":"t"},{"path":"/b.log","topic":"t","exclude_lines":["a{1001}"]}]`, "entry 1"},
	} {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%s): %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
}

// heavy is a pattern of about 8,000 instructions, within MaxPatternInsts.
const heavy = `a{0,999}b{0,999}c{0,999}d{0,999}`

// TestPatternBudgets: the patterns of an entry, and of a whole config,
// have a total budget of compiled instructions, checked before anything
// is compiled; a config over either is refused whole with an error naming
// the entry, and parsing it costs the agent little memory (10 entries of
// 64 such patterns each once took an agent from 25 to 317 MB, and 64 in
// one entry cost 0.64 CPU-seconds per 200-byte line).
func TestPatternBudgets(t *testing.T) {
	n, err := checkProgramSize(heavy)
	if err != nil || n <= MaxEntryInsts/2 || n > MaxPatternInsts {
		t.Fatalf("heavy compiles to %d instructions (%v): want one per entry to fit, two not", n, err)
	}
	entry := func(path string, pats ...string) string {
		b, _ := json.Marshal(map[string]any{"path": path, "topic": "t", "include_lines": pats})
		return string(b)
	}
	many := make([]string, 64)
	for i := range many {
		many[i] = heavy
	}
	// One entry of 64: over the entry's budget.
	_, err = Parse([]byte("[" + entry("/var/log/a.log", many...) + "]"))
	if err == nil || !strings.Contains(err.Error(), `entry 0 (path "/var/log/a.log", topic "t"): patterns (multiline, include_lines, exclude_lines) compile to`) ||
		!strings.Contains(err.Error(), fmt.Sprintf("at most %d per entry", MaxEntryInsts)) {
		t.Fatalf("64 heavy patterns in one entry: %v", err)
	}
	t.Logf("a user sees: %v", err)
	// Ten entries of 64 (the 16 KB config), measured while parsing.
	var entries []string
	for i := range 10 {
		entries = append(entries, entry(fmt.Sprintf("/var/log/%d.log", i), many...))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err = Parse([]byte("[" + strings.Join(entries, ",") + "]"))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("ten entries of 64 heavy patterns accepted")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
		t.Errorf("parsing the refused config allocated %d MB", alloc>>20)
	}
	// One heavy pattern per entry: as many as the config's budget holds
	// fit, one more is refused, and with it the whole config.
	fit := MaxConfigInsts / n
	entries = entries[:0]
	for i := range fit + 1 {
		entries = append(entries, entry(fmt.Sprintf("/var/log/%d.log", i), heavy))
	}
	if _, err := Parse([]byte("[" + strings.Join(entries[:fit], ",") + "]")); err != nil {
		t.Fatalf("%d heavy entries: %v", fit, err)
	}
	_, err = Parse([]byte("[" + strings.Join(entries, ",") + "]"))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf(`entry %d (path "/var/log/%d.log", topic "t"): patterns compile to more than the`, fit, fit)) ||
		!strings.Contains(err.Error(), fmt.Sprintf("collect config's budget (%d in all)", MaxConfigInsts)) {
		t.Fatalf("%d heavy entries: %v", fit+1, err)
	}
	t.Logf("a user sees: %v", err)
	// Multiline patterns count too.
	ml, _ := json.Marshal(map[string]any{"path": "/var/log/m.log", "topic": "t", "multiline": heavy, "exclude_lines": []string{heavy}})
	if _, err := Parse([]byte("[" + string(ml) + "]")); err == nil || !strings.Contains(err.Error(), "per entry") {
		t.Fatalf("a heavy multiline and exclude pattern: %v", err)
	}
}
