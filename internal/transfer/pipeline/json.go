package pipeline

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// JSON parses a line holding one JSON object and merges its keys into the
// document: "message" (or "msg") becomes the message, the first of
// "@timestamp", "timestamp", "time", "ts" that holds a time (RFC 3339, or
// Unix seconds or milliseconds) becomes the event time, and every other key
// is kept as it is.
func JSON(line []byte, _ time.Time, r *Result) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		r.Fail("json: the line is not a JSON object")
		return
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(line, &obj); err != nil {
		r.Fail("json: " + err.Error())
		return
	}
	for _, k := range []string{"message", "msg"} {
		if v, ok := obj[k]; ok {
			var s string
			if json.Unmarshal(v, &s) == nil {
				r.Message, r.HasMessage = append(r.Message[:0], s...), true
				delete(obj, k)
				break
			}
		}
	}
	for _, k := range []string{"@timestamp", "timestamp", "time", "ts"} {
		if v, ok := obj[k]; ok {
			if t, ok := jsonTime(v); ok {
				r.Time = t
				delete(obj, k)
				break
			}
		}
	}
	for _, k := range sortedKeys(obj) {
		name := k
		if k == "" || k == "@timestamp" || k == "message" || strings.HasPrefix(k, "_") || isReserved(k) {
			name = "json." + k
		}
		r.Raw(name, obj[k])
	}
}

// isReserved reports whether k is a document field the transfer writes
// itself, or one of the objects holding them (a value there would replace
// the object); a JSON line's keys of these names are kept under
// json.<name>. Other names under those objects are free: log.level,
// host.hostname, event.duration.
func isReserved(k string) bool {
	switch k {
	case "host", "log", "kafka", "event", "error":
		return true
	}
	for _, r := range [...]string{"host.name", "host.ip", "log.file", "log.offset", "log.flags", "kafka", "event.created", "event.timestamp_out_of_range", "error.message"} {
		if k == r || strings.HasPrefix(k, r+".") {
			return true
		}
	}
	return false
}

// jsonTime reads a time value: an RFC 3339 string, or a number of Unix
// seconds (fractions allowed) or, when too large for seconds, milliseconds.
func jsonTime(v json.RawMessage) (time.Time, bool) {
	var s string
	if json.Unmarshal(v, &s) == nil {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t.UTC(), true
			}
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return epoch(f)
		}
		return time.Time{}, false
	}
	var f float64
	if json.Unmarshal(v, &f) == nil {
		return epoch(f)
	}
	return time.Time{}, false
}

func epoch(f float64) (time.Time, bool) {
	if f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return time.Time{}, false
	}
	if f > 1e11 { // later than 5138 in seconds: milliseconds
		return time.UnixMilli(int64(f)).UTC(), true
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true
}
