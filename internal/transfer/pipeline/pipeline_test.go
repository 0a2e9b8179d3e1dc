package pipeline

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type sample struct {
	name, line string
	fields     map[string]any // the fields wanted (all of them)
	time       string         // RFC 3339, "" for none
	err        string         // substring of the error, "" for none
	message    string         // a replaced message, "" for none
}

func run(t *testing.T, f Func, read time.Time, cases []sample) {
	t.Helper()
	var r Result
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.Reset()
			f([]byte(c.line), read, &r)
			if c.err != "" {
				if !strings.Contains(r.Err, c.err) {
					t.Fatalf("error %q, want one containing %q", r.Err, c.err)
				}
				if len(r.Fragment()) != 0 || !r.Time.IsZero() {
					t.Fatalf("a failed line kept fields %s / time %v", r.Fragment(), r.Time)
				}
				return
			}
			if r.Err != "" {
				t.Fatalf("unexpected error %q", r.Err)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte("{"+strings.TrimPrefix(string(r.Fragment()), ",")+"}"), &got); err != nil {
				t.Fatalf("fragment %s is not JSON: %v", r.Fragment(), err)
			}
			want, _ := json.Marshal(c.fields)
			have, _ := json.Marshal(got)
			if string(want) != string(have) {
				t.Fatalf("fields\n have %s\n want %s", have, want)
			}
			ts := ""
			if !r.Time.IsZero() {
				ts = r.Time.UTC().Format(time.RFC3339Nano)
			}
			if ts != c.time {
				t.Fatalf("time %q, want %q", ts, c.time)
			}
			if c.message != "" && (!r.HasMessage || string(r.Message) != c.message) {
				t.Fatalf("message %q, want %q", r.Message, c.message)
			}
		})
	}
}

func TestAccessLog(t *testing.T) {
	run(t, AccessLog, time.Time{}, []sample{
		{name: "nginx combined",
			line: `203.0.113.9 - - [23/Nov/2019:06:25:07 +0100] "GET /shop/cart?id=7 HTTP/1.1" 200 5316 "https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"`,
			fields: map[string]any{"source.ip": "203.0.113.9", "http.request.method": "GET", "url.original": "/shop/cart?id=7", "http.version": "1.1",
				"http.response.status_code": 404 - 204, "http.response.body.bytes": 5316, "http.request.referrer": "https://example.com/",
				"user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)"},
			time: "2019-11-23T05:25:07Z"},
		{name: "apache common with a user and no body",
			line:   `127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "POST /apache_pb.gif HTTP/1.0" 304 -`,
			fields: map[string]any{"source.ip": "127.0.0.1", "user.name": "frank", "http.request.method": "POST", "url.original": "/apache_pb.gif", "http.version": "1.0", "http.response.status_code": 304},
			time:   "2000-10-10T20:55:36Z"},
		{name: "IPv6 client, escaped quote in the agent, a trailing forwarded-for",
			line: `2001:db8::1 - - [01/Dec/2026:23:59:59 +0000] "GET / HTTP/2.0" 500 12 "-" "curl \"x\"" "10.1.1.1"`,
			fields: map[string]any{"source.ip": "2001:db8::1", "http.request.method": "GET", "url.original": "/", "http.version": "2.0",
				"http.response.status_code": 500, "http.response.body.bytes": 12, "user_agent.original": `curl "x"`},
			time: "2026-12-01T23:59:59Z"},
		{name: "host name instead of an address, junk request",
			line:   `proxy.local - - [01/Dec/2026:10:00:00 +0000] "\x16\x03\x01" 400 157 "-" "-"`,
			fields: map[string]any{"source.address": "proxy.local", "url.original": `x16x03x01`, "http.response.status_code": 400, "http.response.body.bytes": 157},
			time:   "2026-12-01T10:00:00Z"},
		{name: "request dash (nginx 408)",
			line:   `10.0.0.5 - - [01/Dec/2026:10:00:00 +0000] "-" 408 0 "-" "-"`,
			fields: map[string]any{"source.ip": "10.0.0.5", "http.response.status_code": 408, "http.response.body.bytes": 0},
			time:   "2026-12-01T10:00:00Z"},
		{name: "not an access log", line: `Dec  1 10:00:00 web-1 sshd[42]: Accepted publickey`, err: "access log: no [time]"},
		{name: "bad time", line: `1.2.3.4 - - [2026-12-01T10:00:00Z] "GET / HTTP/1.1" 200 1`, err: "access log: time"},
		{name: "status not a number", line: `1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" abc 1`, err: "status"},
		{name: "cut short", line: `1.2.3.4 - - [01/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1`, err: `no "request"`},
		{name: "empty", line: ``, err: "no client address"},
	})
}

func TestJSON(t *testing.T) {
	run(t, JSON, time.Time{}, []sample{
		{name: "message, time and fields",
			line:    `{"time":"2026-11-30T08:15:00.25Z","level":"warn","msg":"disk 91% full","disk":{"dev":"sda"},"pct":91.5}`,
			fields:  map[string]any{"disk": map[string]any{"dev": "sda"}, "level": "warn", "pct": 91.5},
			time:    "2026-11-30T08:15:00.25Z",
			message: "disk 91% full"},
		{name: "epoch milliseconds, reserved keys moved aside",
			line:   `{"ts":1764576000123,"host":"spoofed","log.offset":7,"log.level":"info","message":"ok"}`,
			fields: map[string]any{"json.host": "spoofed", "json.log.offset": 7, "log.level": "info"},
			time:   "2025-12-01T08:00:00.123Z", message: "ok"},
		{name: "epoch seconds with a fraction",
			line: `{"timestamp":1764576000.5}`, fields: map[string]any{}, time: "2025-12-01T08:00:00.5Z"},
		{name: "a time field that is not a time stays a field",
			line: `{"time":"yesterday","a":1}`, fields: map[string]any{"a": 1, "time": "yesterday"}},
		{name: "not an object", line: `[1,2]`, err: "not a JSON object"},
		{name: "broken", line: `{"a":`, err: "json:"},
	})
}

func TestSyslog(t *testing.T) {
	read := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	run(t, Syslog, read, []sample{
		{name: "RFC 3164 with PRI",
			line: `<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8`,
			fields: map[string]any{"log.syslog.priority": 34, "log.syslog.facility.code": 4, "log.syslog.severity.code": 2,
				"host.hostname": "mymachine", "process.name": "su", "process.pid": 230},
			time: "2025-10-11T22:14:15Z"}, // read in January 2026: October is last year's
		{name: "rsyslog file line, no PRI, this year",
			line:   `Jan  1 23:59:00 web-1 CRON[77]: (root) CMD (run-parts /etc/cron.hourly)`,
			fields: map[string]any{"host.hostname": "web-1", "process.name": "CRON", "process.pid": 77},
			time:   "2026-01-01T23:59:00Z"},
		{name: "RFC 5424",
			line: `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event`,
			fields: map[string]any{"log.syslog.priority": 165, "log.syslog.facility.code": 20, "log.syslog.severity.code": 5,
				"host.hostname": "mymachine.example.com", "process.name": "evntslog", "log.syslog.msgid": "ID47"},
			time: "2003-10-11T22:14:15.003Z"},
		{name: "bad PRI", line: `<999>Oct 11 22:14:15 h x: y`, err: "malformed <PRI>"},
		{name: "no timestamp", line: `hello world`, err: "syslog: no timestamp"},
		{name: "RFC 5424 bad time", line: `<1>1 yesterday host app - - - msg`, err: "not RFC 3339"},
	})
}

func TestBuiltins(t *testing.T) {
	for _, n := range Builtins() {
		if _, ok := Builtin(n); !ok {
			t.Errorf("builtin %q not found", n)
		}
	}
	if _, ok := Builtin("grok"); ok {
		t.Error("an unknown name resolved")
	}
}

// The access-log fast paths agree with the standard library: a time
// accessTime takes is the instant time.Parse gives, and an address
// canonicalIPv4 takes is one netip parses and prints the same.
func FuzzAccessLogFastPaths(f *testing.F) {
	for _, s := range []string{"23/Nov/2019:06:25:07 +0100", "29/Feb/2024:23:59:59 -0000", "29/Feb/2023:00:00:00 +0000",
		"31/Apr/2026:10:00:00 +0000", "01/jan/2026:10:00:00 +0000", "01/Jan/2026:24:00:00 +0000", "01/Jan/2026:10:00:00 +2460",
		"10.0.0.1", "255.255.255.255", "256.1.1.1", "01.2.3.4", "0.0.0.0", "1.2.3", "1.2.3.4.5", "1..2.3", "2001:db8::1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, ok := accessTime(b); ok {
			want, err := time.Parse(accessLayout, string(b))
			if err != nil || !got.Equal(want) {
				t.Fatalf("%q: fast path %v, time.Parse %v %v", b, got, want, err)
			}
		}
		a, err := netip.ParseAddr(string(b))
		canonical := err == nil && a.Is4() && a.String() == string(b)
		if canonicalIPv4(b) != canonical {
			t.Fatalf("%q: canonicalIPv4 %v, netip says %v (%v %v)", b, canonicalIPv4(b), canonical, a, err)
		}
	})
}

func TestAccessTimeCalendar(t *testing.T) {
	for _, c := range []struct {
		in   string
		fast bool
	}{
		{"29/Feb/2024:12:00:00 +0000", true}, {"29/Feb/2000:12:00:00 +0000", true},
		{"29/Feb/1900:12:00:00 +0000", false}, {"29/Feb/2023:12:00:00 +0000", false},
		{"30/Apr/2026:12:00:00 +0000", true}, {"31/Apr/2026:12:00:00 +0000", false}, {"31/Dec/2026:23:59:59 -1200", true},
		{"00/Jan/2026:12:00:00 +0000", false}, {"01/Foo/2026:12:00:00 +0000", false},
	} {
		got, ok := accessTime([]byte(c.in))
		if ok != c.fast {
			t.Errorf("%s: fast path %v, want %v", c.in, ok, c.fast)
			continue
		}
		if want, err := time.Parse(accessLayout, c.in); ok && (err != nil || !got.Equal(want)) {
			t.Errorf("%s: %v, time.Parse %v %v", c.in, got, want, err)
		}
	}
}

func BenchmarkAccessLog(b *testing.B) {
	line := []byte(`203.0.113.9 - alice [23/Nov/2019:10:11:12 +0100] "GET /api/items?id=42 HTTP/1.1" 404 512 "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0"`)
	var r Result
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for i := 0; i < b.N; i++ {
		r.Reset()
		AccessLog(line, time.Time{}, &r)
	}
	if r.Err != "" {
		b.Fatal(r.Err)
	}
}
