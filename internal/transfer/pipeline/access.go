package pipeline

import (
	"bytes"
	"net/netip"
	"strconv"
	"time"
)

// AccessLog parses the NCSA common and combined formats that nginx and
// Apache write by default:
//
//	%h %l %u [%t] "%r" %>s %b ["%{Referer}i" "%{User-Agent}i"] [...]
//
// into source.ip (source.address when not an IP), user.name,
// http.request.method, url.original, http.version,
// http.response.status_code, http.response.body.bytes,
// http.request.referrer and user_agent.original; the time becomes the
// event time. Anything after the user agent (nginx's $http_x_forwarded_for,
// say) is left in message.
func AccessLog(line []byte, _ time.Time, r *Result) {
	p := line
	host, p, ok := word(p)
	if !ok {
		r.Fail("access log: no client address")
		return
	}
	_, p, ok = word(p) // ident
	if !ok {
		r.Fail("access log: no ident field")
		return
	}
	user, p, ok := word(p)
	if !ok {
		r.Fail("access log: no user field")
		return
	}
	if len(p) == 0 || p[0] != '[' {
		r.Fail("access log: no [time]")
		return
	}
	end := bytes.IndexByte(p, ']')
	if end < 0 {
		r.Fail("access log: unterminated [time]")
		return
	}
	t, ok := accessTime(p[1:end])
	if !ok {
		var err error
		if t, err = time.Parse(accessLayout, string(p[1:end])); err != nil {
			r.Fail("access log: time " + strconv.Quote(string(p[1:end])) + " is not like " + accessLayout)
			return
		}
	}
	p = bytes.TrimLeft(p[end+1:], " ")
	req, p, ok := quoted(p)
	if !ok {
		r.Fail(`access log: no "request"`)
		return
	}
	status, p, ok := word(p)
	if !ok || len(status) != 3 {
		r.Fail("access log: no status code")
		return
	}
	code, ok := digits(status)
	if !ok {
		r.Fail("access log: status " + strconv.Quote(string(status)) + " is not a number")
		return
	}
	size, p, ok := word(p)
	if !ok {
		r.Fail("access log: no response size")
		return
	}
	var bytesSent int64 = -1
	if !dash(size) {
		n, ok := digits(size)
		if !ok {
			r.Fail("access log: size " + strconv.Quote(string(size)) + " is not a number")
			return
		}
		bytesSent = n
	}

	switch {
	case canonicalIPv4(host):
		r.str("source.ip", host) // as netip would print it
	default:
		if a, err := netip.ParseAddr(string(host)); err == nil {
			var buf [64]byte
			r.str("source.ip", a.AppendTo(buf[:0]))
		} else {
			r.str("source.address", host)
		}
	}
	if !dash(user) {
		r.str("user.name", user)
	}
	if !dash(req) {
		method, rest, _ := bytes.Cut(req, []byte(" "))
		target, proto, hasProto := cutLast(rest, ' ')
		if !hasProto || !bytes.HasPrefix(proto, []byte("HTTP/")) {
			target, proto = rest, nil
		}
		if len(method) > 0 && len(target) > 0 {
			r.str("http.request.method", method)
			r.str("url.original", target)
			if v := bytes.TrimPrefix(proto, []byte("HTTP/")); len(v) > 0 {
				r.str("http.version", v)
			}
		} else {
			r.str("url.original", req) // not a request line (a scanner's junk): kept whole
		}
	}
	r.num("http.response.status_code", int64(code))
	if bytesSent >= 0 {
		r.num("http.response.body.bytes", bytesSent)
	}
	p = bytes.TrimLeft(p, " ")
	if len(p) > 0 {
		ref, rest, ok := quoted(p)
		if ok {
			if !dash(ref) {
				r.str("http.request.referrer", ref)
			}
			if ua, _, ok := quoted(bytes.TrimLeft(rest, " ")); ok && !dash(ua) {
				r.str("user_agent.original", ua)
			}
		}
	}
	r.Time = t
}

const accessLayout = "02/Jan/2006:15:04:05 -0700"

// accessTime parses the usual form of accessLayout (two-digit day, the
// month's English abbreviation, four-digit year, two-digit clock and a
// ±hhmm offset) without time.Parse's generality; anything else (false)
// is left to time.Parse, so the result is the same either way.
func accessTime(b []byte) (time.Time, bool) {
	if len(b) != 26 || b[2] != '/' || b[6] != '/' || b[11] != ':' || b[14] != ':' || b[17] != ':' || b[20] != ' ' || (b[21] != '+' && b[21] != '-') {
		return time.Time{}, false
	}
	day, ok1 := digits(b[0:2])
	year, ok2 := digits(b[7:11])
	hour, ok3 := digits(b[12:14])
	minute, ok4 := digits(b[15:17])
	sec, ok5 := digits(b[18:20])
	zh, ok6 := digits(b[22:24])
	zm, ok7 := digits(b[24:26])
	month := monthAbbr(b[3:6])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) || month == 0 || hour > 23 || minute > 59 || sec > 59 || zh > 24 || zm > 59 ||
		day < 1 || day > int64(daysIn(month, int(year))) {
		return time.Time{}, false
	}
	off := time.Duration(zh)*time.Hour + time.Duration(zm)*time.Minute
	if b[21] == '-' {
		off = -off
	}
	return time.Date(int(year), month, int(day), int(hour), int(minute), int(sec), 0, time.UTC).Add(-off), true
}

func monthAbbr(b []byte) time.Month {
	const names = "JanFebMarAprMayJunJulAugSepOctNovDec"
	for i := 0; i < 12; i++ {
		if names[3*i] == b[0] && names[3*i+1] == b[1] && names[3*i+2] == b[2] {
			return time.Month(i + 1)
		}
	}
	return 0
}

func daysIn(m time.Month, year int) int {
	if m == time.February {
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	}
	return 31 - int(m-1)%7%2
}

// digits parses a non-empty run of at most 18 decimal digits.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// canonicalIPv4 reports whether b is a dotted-quad IPv4 address written
// as netip writes one (no leading zeros, each part at most 255).
func canonicalIPv4(b []byte) bool {
	parts, n, width := 0, 0, 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if width == 0 || n > 255 || parts == 4 {
				return false
			}
			parts++
			n, width = 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (width > 0 && n == 0) || width == 3 {
			return false
		}
		n = n*10 + int(c-'0')
		width++
	}
	return parts == 4
}

// word returns the bytes up to the next space and what follows it.
func word(p []byte) (w, rest []byte, ok bool) {
	p = bytes.TrimLeft(p, " ")
	if len(p) == 0 {
		return nil, nil, false
	}
	i := bytes.IndexByte(p, ' ')
	if i < 0 {
		return p, nil, true
	}
	return p[:i], p[i+1:], true
}

// quoted reads a "…" field (with \" and \\ escapes, as nginx writes them)
// and returns its content unescaped.
func quoted(p []byte) (v, rest []byte, ok bool) {
	if len(p) == 0 || p[0] != '"' {
		return nil, nil, false
	}
	esc := false
	for i := 1; i < len(p); i++ {
		switch {
		case esc:
			esc = false
		case p[i] == '\\':
			esc = true
		case p[i] == '"':
			v = p[1:i]
			if bytes.IndexByte(v, '\\') >= 0 {
				v = unescape(v)
			}
			return v, bytes.TrimLeft(p[i+1:], " "), true
		}
	}
	return nil, nil, false
}

func unescape(v []byte) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		out = append(out, v[i])
	}
	return out
}

func cutLast(b []byte, c byte) (before, after []byte, found bool) {
	if i := bytes.LastIndexByte(b, c); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

func dash(b []byte) bool { return len(b) == 1 && b[0] == '-' }
