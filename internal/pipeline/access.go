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
	t, err := time.Parse("02/Jan/2006:15:04:05 -0700", string(p[1:end]))
	if err != nil {
		r.Fail("access log: time " + strconv.Quote(string(p[1:end])) + " is not like 02/Jan/2006:15:04:05 -0700")
		return
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
	code, err := strconv.Atoi(string(status))
	if err != nil {
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
		n, err := strconv.ParseInt(string(size), 10, 64)
		if err != nil || n < 0 {
			r.Fail("access log: size " + strconv.Quote(string(size)) + " is not a number")
			return
		}
		bytesSent = n
	}

	if a, err := netip.ParseAddr(string(host)); err == nil {
		r.Str("source.ip", []byte(a.String()))
	} else {
		r.Str("source.address", host)
	}
	if !dash(user) {
		r.Str("user.name", user)
	}
	if !dash(req) {
		method, rest, _ := bytes.Cut(req, []byte(" "))
		target, proto, hasProto := cutLast(rest, ' ')
		if !hasProto || !bytes.HasPrefix(proto, []byte("HTTP/")) {
			target, proto = rest, nil
		}
		if len(method) > 0 && len(target) > 0 {
			r.Str("http.request.method", method)
			r.Str("url.original", target)
			if v := bytes.TrimPrefix(proto, []byte("HTTP/")); len(v) > 0 {
				r.Str("http.version", v)
			}
		} else {
			r.Str("url.original", req) // not a request line (a scanner's junk): kept whole
		}
	}
	r.Int("http.response.status_code", int64(code))
	if bytesSent >= 0 {
		r.Int("http.response.body.bytes", bytesSent)
	}
	p = bytes.TrimLeft(p, " ")
	if len(p) > 0 {
		ref, rest, ok := quoted(p)
		if ok {
			if !dash(ref) {
				r.Str("http.request.referrer", ref)
			}
			if ua, _, ok := quoted(bytes.TrimLeft(rest, " ")); ok && !dash(ua) {
				r.Str("user_agent.original", ua)
			}
		}
	}
	r.Time = t
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
