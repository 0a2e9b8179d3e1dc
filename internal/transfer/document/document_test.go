package document

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/platform/jsonenc"
)

// valid is s as a JSON decoder gives it back: each invalid UTF-8 byte
// replaced by U+FFFD.
func valid(s []byte) string { return string([]rune(string(s))) }

func genBytes(t *rapid.T, label string) []byte {
	return rapid.OneOf(
		rapid.Just([]byte(nil)),
		rapid.SliceOfN(rapid.Byte(), 0, 40),
		rapid.Map(rapid.StringMatching(`[a-z0-9 ./"\\\t-]{0,20}`), func(s string) []byte { return []byte(s) }),
	).Draw(t, label)
}

// mleaf is a value at a dotted path, for the model of a document.
type mleaf struct {
	path string
	v    any
	rank int
}

// segments names paths are drawn from: some are the document's own
// objects, so drawn fields collide with them and with one another.
var segments = []string{"a", "b", "host", "name", "event", "http", "log", "kafka", "message", "agent", "x.y"}

// genLeaves draws fields at dotted paths (values strings or numbers), as a
// fragment (each member preceded by a comma) and as the model's leaves.
func genLeaves(t *rapid.T, label string, rank int) ([]byte, []mleaf) {
	n := rapid.IntRange(0, 5).Draw(t, label+" count")
	var frag []byte
	var ls []mleaf
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		parts := rapid.SliceOfN(rapid.SampledFrom(segments), 1, 3).Draw(t, label+" path")
		path := strings.Join(parts, ".")
		if seen[path] {
			continue
		}
		seen[path] = true
		var v any
		frag = append(frag, ',')
		frag = jsonenc.AppendString(frag, path)
		frag = append(frag, ':')
		if rapid.Bool().Draw(t, label+" number") {
			n := rapid.IntRange(0, 1000).Draw(t, label+" n")
			v = float64(n)
			frag = strconv.AppendInt(frag, int64(n), 10)
		} else {
			b := genBytes(t, label+" value")
			v = valid(b)
			frag = jsonenc.AppendString(frag, b)
		}
		ls = append(ls, mleaf{path, v, rank})
	}
	return frag, ls
}

// model is the document the leaves make: a leaf stays if no other leaf
// at its path outranks it, none under it outranks it, and no leaf that
// stays holds it; the rest nest by their dotted paths.
func model(ls []mleaf) map[string]any {
	isUnder := func(p, obj string) bool { return strings.HasPrefix(p, obj+".") }
	var stays func(i int) bool
	memo := map[int]bool{}
	stays = func(i int) bool {
		if v, ok := memo[i]; ok {
			return v
		}
		ok := true
		for j, o := range ls {
			switch {
			case j == i:
			case o.path == ls[i].path && (o.rank > ls[i].rank || o.rank == ls[i].rank && j < i):
				ok = false
			case isUnder(o.path, ls[i].path) && o.rank > ls[i].rank:
				ok = false
			}
		}
		for j, o := range ls {
			if ok && j != i && isUnder(ls[i].path, o.path) && stays(j) {
				ok = false
			}
		}
		memo[i] = ok
		return ok
	}
	doc := map[string]any{}
	for i, l := range ls {
		if !stays(i) {
			continue
		}
		m := doc
		names := strings.Split(l.path, ".")
		for _, n := range names[:len(names)-1] {
			next, _ := m[n].(map[string]any)
			if next == nil {
				next = map[string]any{}
				m[n] = next
			}
			m = next
		}
		m[names[len(names)-1]] = l.v
	}
	return doc
}

// Every document renders as valid JSON that says exactly what its parts
// hold (present parts shown, absent ones left out), nested (no name holds
// a dot), the transfer's own fields first, then the collect entry's, then
// a pipeline's, the same bytes on every render (a retried bulk request
// renders it again), appended without touching what dst held; written
// straight or as a tree, a document is the same.
func TestRenderShowsItsParts(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := Parts{
			Topic:     string(genBytes(t, "topic")),
			Partition: rapid.Int32Range(0, 1<<20).Draw(t, "partition"),
			Offset:    rapid.Int64Range(0, 1<<50).Draw(t, "offset"),
			Value:     genBytes(t, "value"),
			Time:      time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(t, "time")),
			Head: Head{
				HostName: genBytes(t, "host name"), HostIP: genBytes(t, "host ip"), Path: genBytes(t, "path"),
				Flags: genBytes(t, "flags"), Offset: rapid.Int64Range(0, 1<<50).Draw(t, "log offset"),
				HasOffset: rapid.Bool().Draw(t, "has offset"),
				AgentID:   genBytes(t, "agent id"), AgentVersion: genBytes(t, "agent version"),
			},
			Dataset: rapid.SampledFrom([]string{"", "web_log", "nginx.access"}).Draw(t, "dataset"),
		}
		if rapid.Bool().Draw(t, "ingested") {
			p.Ingested = time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, "ingested at"))
		}
		str := func(path string, b []byte) mleaf { return mleaf{path, valid(b), 3} }
		ls := []mleaf{{"@timestamp", p.Time.UTC().Format(jsonenc.TimeLayout), 3}, str("message", p.Value),
			str("kafka.topic", []byte(p.Topic)), {"kafka.partition", float64(p.Partition), 3}, {"kafka.offset", float64(p.Offset), 3},
			{"ecs.version", ECSVersion, 3}}
		if len(p.Head.HostName) > 0 {
			ls = append(ls, str("host.name", p.Head.HostName))
		}
		if len(p.Head.HostIP) > 0 {
			ls = append(ls, str("host.ip", p.Head.HostIP))
		}
		if len(p.Head.AgentID) > 0 {
			ls = append(ls, str("agent.id", p.Head.AgentID), mleaf{"agent.type", AgentType, 3})
			if len(p.Head.HostName) > 0 {
				ls = append(ls, str("agent.name", p.Head.HostName))
			}
			if len(p.Head.AgentVersion) > 0 {
				ls = append(ls, str("agent.version", p.Head.AgentVersion))
			}
		}
		if len(p.Head.Path) > 0 {
			ls = append(ls, str("log.file.path", p.Head.Path))
		}
		if p.Head.HasOffset {
			ls = append(ls, mleaf{"log.offset", float64(p.Head.Offset), 3})
		}
		if len(p.Head.Flags) > 0 {
			var flags []any
			for _, f := range strings.Split(string(p.Head.Flags), ",") {
				flags = append(flags, valid([]byte(f)))
			}
			ls = append(ls, mleaf{"log.flags", flags, 3})
		}
		if p.Dataset != "" {
			ls = append(ls, mleaf{"event.dataset", p.Dataset, 3})
		}
		if !p.Ingested.IsZero() {
			ls = append(ls, mleaf{"event.ingested", p.Ingested.UTC().Format(jsonenc.TimeLayout), 3})
		}
		// The collect entry's fields, under "fields" or at the root.
		_, fields := genLeaves(t, "fields", 2)
		fm := map[string]string{}
		for _, l := range fields {
			switch v := l.v.(type) {
			case string:
				fm[l.path] = v
			case float64:
				fm[l.path] = strconv.Itoa(int(v))
			}
		}
		p.RootFields = rapid.Bool().Draw(t, "fields under root")
		p.Fields = FieldsFragment(fm, p.RootFields)
		var fl []mleaf
		for k, v := range fm {
			if p.RootFields {
				fl = append(fl, mleaf{k, v, 2})
			} else {
				fl = append(fl, mleaf{"fields." + k, v, 2})
			}
		}
		if !p.RootFields && len(fm) > 0 {
			// Under "fields", the entry's fields settle among themselves.
			sub := model(fl)
			fl = []mleaf{{"fields", sub["fields"], 2}}
		}
		ls = append(ls, fl...)
		if rapid.Bool().Draw(t, "more") {
			m := &More{ErrMsg: string(genBytes(t, "error")), OutOfRange: rapid.SampledFrom([]string{"", "future", "past", "undated"}).Draw(t, "out of range")}
			if rapid.Bool().Draw(t, "has message") {
				m.Message, m.HasMessage = genBytes(t, "message"), true
				ls[1] = str("message", m.Message)
			}
			var parsed []mleaf
			m.Parsed, parsed = genLeaves(t, "parsed", 1)
			ls = append(ls, parsed...)
			if rapid.Bool().Draw(t, "created") {
				m.Created = time.Unix(0, rapid.Int64Range(1, 1<<62).Draw(t, "created at"))
				ls = append(ls, mleaf{"event.created", m.Created.UTC().Format(jsonenc.TimeLayout), 3})
			}
			if m.OutOfRange != "" {
				ls = append(ls, mleaf{"event.timestamp_out_of_range", m.OutOfRange, 3})
			}
			if m.ErrMsg != "" {
				ls = append(ls, str("error.message", []byte(m.ErrMsg)))
			}
			p.More = m
		}
		want := model(ls)

		prefix := []byte("head\n")
		out := p.Render(append([]byte(nil), prefix...))
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("render changed what dst held: %q", out)
		}
		body := out[len(prefix):]
		if again := p.Render(nil); !bytes.Equal(again, body) {
			t.Fatalf("two renders differ:\n%s\n%s", body, again)
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("not valid JSON: %v\n%s", err, body)
		}
		if !reflect.DeepEqual(got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Fatalf("document does not show its parts:\n got %s\nwant %s\nbody %s", gj, wj, body)
		}
		if k := dottedName(got); k != "" {
			t.Fatalf("name %q holds a dot: the document is not nested\n%s", k, body)
		}
		if dup := duplicateName(body); dup != "" {
			t.Fatalf("name %q appears twice in one object\n%s", dup, body)
		}
		var tree map[string]any
		if err := json.Unmarshal(p.renderTree(nil), &tree); err != nil || !reflect.DeepEqual(tree, got) {
			t.Fatalf("written as a tree, the document differs (%v):\n%s\n%s", err, p.renderTree(nil), body)
		}
	})
}

// dottedName is a name in doc (at any depth) that holds a dot.
func dottedName(doc map[string]any) string {
	for k, v := range doc {
		if strings.Contains(k, ".") {
			return k
		}
		if m, ok := v.(map[string]any); ok {
			if d := dottedName(m); d != "" {
				return d
			}
		}
	}
	return ""
}

// duplicateName is a name that appears twice in one object of body (a
// decoder keeps the last; Elasticsearch refuses the document).
func duplicateName(body []byte) string {
	dec := json.NewDecoder(bytes.NewReader(body))
	var walk func() string
	walk = func() string {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				ks, _ := k.(string)
				if seen[ks] {
					return ks
				}
				seen[ks] = true
				if d := walk(); d != "" {
					return d
				}
			}
			dec.Token()
		case json.Delim('['):
			for dec.More() {
				if d := walk(); d != "" {
					return d
				}
			}
			dec.Token()
		}
		return ""
	}
	return walk()
}

func BenchmarkRender(b *testing.B) {
	p := Parts{Topic: "web_log", Partition: 3, Offset: 42, Time: time.Now(),
		Value:  []byte(strings.Repeat("10.0.0.1 - - [23/Nov/2026:10:11:12 +0000] \"GET /api/items HTTP/1.1\" 200 512 ", 2)),
		Head:   Head{HostName: []byte("web-1"), HostIP: []byte("10.0.0.1"), Path: []byte("/var/log/nginx/access.log"), Offset: 1024, HasOffset: true},
		Fields: FieldsFragment(map[string]string{"service": "nginx"}, false), Dataset: "web_log", Ingested: time.Now()}
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf = p.Render(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
