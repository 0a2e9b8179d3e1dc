package document

import (
	"bytes"
	"encoding/json"
	"reflect"
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

// genFragment is a fields fragment as the transfer makes them (each
// field preceded by a comma), and what it holds.
func genFragment(t *rapid.T, label string) ([]byte, map[string]any) {
	keys := rapid.SliceOfNDistinct(rapid.StringMatching(`f[a-z]{1,6}`), 0, 4, rapid.ID[string]).Draw(t, label+" keys")
	var frag []byte
	want := map[string]any{}
	for i, k := range keys {
		v := valid(genBytes(t, label+" value"))
		if i%2 == 1 {
			want[k] = float64(i)
			frag = append(frag, `,"`+k+`":`+string(rune('0'+i))...)
			continue
		}
		want[k] = v
		frag = append(frag, ',')
		frag = jsonenc.AppendString(append(frag, `"`+k+`":`...), v)
	}
	return frag, want
}

// Every document renders as valid JSON that says exactly what its parts
// hold (present parts shown, absent ones left out), the same bytes on
// every render (a retried bulk request renders it again), appended
// without touching what dst held.
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
			},
		}
		var wantFields map[string]any
		p.Fields, wantFields = genFragment(t, "fields")
		want := map[string]any{
			"@timestamp": p.Time.UTC().Format(jsonenc.TimeLayout),
			"message":    valid(p.Value),
			"kafka":      map[string]any{"topic": valid([]byte(p.Topic)), "partition": float64(p.Partition), "offset": float64(p.Offset)},
		}
		host := map[string]any{}
		if len(p.Head.HostName) > 0 {
			host["name"] = valid(p.Head.HostName)
		}
		if len(p.Head.HostIP) > 0 {
			host["ip"] = valid(p.Head.HostIP)
		}
		if len(host) > 0 {
			want["host"] = host
		}
		log := map[string]any{}
		if len(p.Head.Path) > 0 {
			log["file"] = map[string]any{"path": valid(p.Head.Path)}
		}
		if p.Head.HasOffset {
			log["offset"] = float64(p.Head.Offset)
		}
		if len(p.Head.Flags) > 0 {
			var flags []any
			for _, f := range strings.Split(string(p.Head.Flags), ",") {
				flags = append(flags, valid([]byte(f)))
			}
			log["flags"] = flags
		}
		if len(log) > 0 {
			want["log"] = log
		}
		for k, v := range wantFields {
			want[k] = v
		}
		if rapid.Bool().Draw(t, "more") {
			m := &More{ErrMsg: string(genBytes(t, "error")), OutOfRange: rapid.SampledFrom([]string{"", "future", "past", "undated"}).Draw(t, "out of range")}
			if rapid.Bool().Draw(t, "has message") {
				m.Message, m.HasMessage = genBytes(t, "message"), true
				want["message"] = valid(m.Message)
			}
			var parsed map[string]any
			m.Parsed, parsed = genFragment(t, "parsed")
			for k, v := range parsed {
				want[k] = v
			}
			if rapid.Bool().Draw(t, "created") {
				m.Created = time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(t, "created at"))
			}
			event := map[string]any{}
			if !m.Created.IsZero() {
				event["created"] = m.Created.UTC().Format(jsonenc.TimeLayout)
			}
			if m.OutOfRange != "" {
				event["timestamp_out_of_range"] = m.OutOfRange
			}
			if len(event) > 0 {
				want["event"] = event
			}
			if m.ErrMsg != "" {
				want["error"] = map[string]any{"message": valid([]byte(m.ErrMsg))}
			}
			p.More = m
		}

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
	})
}

func BenchmarkRender(b *testing.B) {
	p := Parts{Topic: "web_log", Partition: 3, Offset: 42, Time: time.Now(),
		Value:  []byte(strings.Repeat("10.0.0.1 - - [23/Nov/2026:10:11:12 +0000] \"GET /api/items HTTP/1.1\" 200 512 ", 2)),
		Head:   Head{HostName: []byte("web-1"), HostIP: []byte("10.0.0.1"), Path: []byte("/var/log/nginx/access.log"), Offset: 1024, HasOffset: true},
		Fields: []byte(`,"service":"nginx"`)}
	b.ReportAllocs()
	var buf []byte
	for i := 0; i < b.N; i++ {
		buf = p.Render(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
