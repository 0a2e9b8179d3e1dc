package pipeline

import (
	"bytes"
	"strconv"
	"time"
)

// Syslog parses RFC 3164 ("<34>Oct 11 22:14:15 mymachine su[123]: msg",
// the <PRI> optional, as files written by rsyslog have none) and RFC 5424
// ("<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 - msg") lines into
// log.syslog.priority, log.syslog.facility.code, log.syslog.severity.code,
// host.hostname, process.name, process.pid and, for 5424, log.syslog.msgid;
// the time becomes the event time. RFC 3164 has no year: it is the read
// time's, or the year before when that would put the line more than a day
// after it was read (a December line read in January).
func Syslog(line []byte, read time.Time, r *Result) {
	p := line
	pri := -1
	if len(p) > 0 && p[0] == '<' {
		end := bytes.IndexByte(p, '>')
		if end < 2 || end > 4 {
			r.Fail("syslog: malformed <PRI>")
			return
		}
		n, err := strconv.Atoi(string(p[1:end]))
		if err != nil || n > 191 {
			r.Fail("syslog: malformed <PRI>")
			return
		}
		pri, p = n, p[end+1:]
	}
	if len(p) > 2 && p[0] == '1' && p[1] == ' ' {
		syslog5424(p[2:], pri, r)
		return
	}
	syslog3164(p, pri, read, r)
}

func setPri(r *Result, pri int) {
	if pri < 0 {
		return
	}
	r.num("log.syslog.priority", int64(pri))
	r.num("log.syslog.facility.code", int64(pri/8))
	r.num("log.syslog.severity.code", int64(pri%8))
}

func syslog3164(p []byte, pri int, read time.Time, r *Result) {
	const layout = "Jan _2 15:04:05"
	if len(p) < len(layout)+1 {
		r.Fail("syslog: no timestamp")
		return
	}
	t, err := time.ParseInLocation(layout, string(p[:len(layout)]), time.UTC)
	if err != nil {
		r.Fail("syslog: timestamp " + strconv.Quote(string(p[:len(layout)])) + " is not like Jan _2 15:04:05")
		return
	}
	if read.IsZero() {
		read = time.Now()
	}
	read = read.UTC()
	t = t.AddDate(read.Year(), 0, 0)
	if t.After(read.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	host, rest, ok := word(p[len(layout):])
	if !ok {
		r.Fail("syslog: no host")
		return
	}
	setPri(r, pri)
	r.str("host.hostname", host)
	tag, _, ok := bytes.Cut(rest, []byte(":"))
	if ok && len(tag) > 0 && bytes.IndexByte(tag, ' ') < 0 {
		name, pid, hasPid := bytes.Cut(tag, []byte("["))
		r.str("process.name", name)
		if hasPid {
			if n, err := strconv.ParseInt(string(bytes.TrimSuffix(pid, []byte("]"))), 10, 64); err == nil {
				r.num("process.pid", n)
			}
		}
	}
	r.Time = t
}

func syslog5424(p []byte, pri int, r *Result) {
	ts, p, ok := word(p)
	if !ok {
		r.Fail("syslog: no timestamp")
		return
	}
	var t time.Time
	if !dash(ts) {
		var err error
		if t, err = time.Parse(time.RFC3339Nano, string(ts)); err != nil {
			r.Fail("syslog: timestamp " + strconv.Quote(string(ts)) + " is not RFC 3339")
			return
		}
	}
	var f [4][]byte // host, app, procid, msgid
	for i := range f {
		if f[i], p, ok = word(p); !ok {
			r.Fail("syslog: the RFC 5424 header is cut short")
			return
		}
	}
	setPri(r, pri)
	if !dash(f[0]) {
		r.str("host.hostname", f[0])
	}
	if !dash(f[1]) {
		r.str("process.name", f[1])
	}
	if !dash(f[2]) {
		if n, err := strconv.ParseInt(string(f[2]), 10, 64); err == nil {
			r.num("process.pid", n)
		}
	}
	if !dash(f[3]) {
		r.str("log.syslog.msgid", f[3])
	}
	r.Time = t.UTC()
	if t.IsZero() {
		r.Time = time.Time{}
	}
}
