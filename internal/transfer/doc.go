package transfer

import (
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/record"
)

// reservedField reports whether a static field would collide with a
// document field the pipeline sets itself (an agent validates this; other
// producers might not).
func reservedField(k string) bool {
	for _, r := range []string{"@timestamp", "message", "host", "log", "kafka", "event"} {
		if k == r || strings.HasPrefix(k, r+".") {
			return true
		}
	}
	return k == ""
}

// docID is the Elasticsearch _id of a record: the agent's event id, so a
// re-delivered line overwrites its earlier copy, or topic-partition-offset
// for records from other producers (equally stable across re-delivery).
func docID(msg *sarama.ConsumerMessage, meta *record.Meta) string {
	if meta.EventID != "" {
		return meta.EventID
	}
	return msg.Topic + "-" + strconv.Itoa(int(msg.Partition)) + "-" + strconv.FormatInt(msg.Offset, 10)
}

// eventTime is the record timestamp (when the agent read the line).
func eventTime(msg *sarama.ConsumerMessage) time.Time {
	if !msg.Timestamp.IsZero() && msg.Timestamp.Unix() > 0 {
		return msg.Timestamp
	}
	if !msg.BlockTimestamp.IsZero() && msg.BlockTimestamp.Unix() > 0 {
		return msg.BlockTimestamp
	}
	return time.Now()
}

// appendDoc appends the ECS-shaped JSON document of msg to dst:
//
//	{"@timestamp":…,"message":…,"host":{"name":…,"ip":…},
//	 "log":{"file":{"path":…},"offset":…,"flags":[…]},
//	 "kafka":{"topic":…,"partition":…,"offset":…}, <fields>…}
//
// Absent headers leave their fields out. The message has invalid UTF-8
// replaced by U+FFFD, so the body is always valid JSON.
func appendDoc(dst []byte, msg *sarama.ConsumerMessage, meta *record.Meta, ts time.Time) []byte {
	dst = append(dst, `{"@timestamp":"`...)
	dst = ts.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000000000Z07:00")
	dst = append(dst, `","message":`...)
	dst = appendString(dst, msg.Value)
	if meta.HostName != "" || meta.HostIP != "" {
		dst = append(dst, `,"host":{`...)
		sep := false
		if meta.HostName != "" {
			dst = append(dst, `"name":`...)
			dst = appendString(dst, []byte(meta.HostName))
			sep = true
		}
		if meta.HostIP != "" {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"ip":`...)
			dst = appendString(dst, []byte(meta.HostIP))
		}
		dst = append(dst, '}')
	}
	if meta.Path != "" || meta.HasOffset || len(meta.Flags) > 0 {
		dst = append(dst, `,"log":{`...)
		sep := false
		if meta.Path != "" {
			dst = append(dst, `"file":{"path":`...)
			dst = appendString(dst, []byte(meta.Path))
			dst = append(dst, '}')
			sep = true
		}
		if meta.HasOffset {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"offset":`...)
			dst = strconv.AppendInt(dst, meta.Offset, 10)
			sep = true
		}
		if len(meta.Flags) > 0 {
			if sep {
				dst = append(dst, ',')
			}
			dst = append(dst, `"flags":[`...)
			for i, f := range meta.Flags {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, []byte(f))
			}
			dst = append(dst, ']')
		}
		dst = append(dst, '}')
	}
	dst = append(dst, `,"kafka":{"topic":`...)
	dst = appendString(dst, []byte(msg.Topic))
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(msg.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, msg.Offset, 10)
	dst = append(dst, '}')
	if len(meta.Fields) > 0 {
		keys := make([]string, 0, len(meta.Fields))
		for k := range meta.Fields {
			if !reservedField(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			dst = append(dst, ',')
			dst = appendString(dst, []byte(k))
			dst = append(dst, ':')
			dst = appendString(dst, []byte(meta.Fields[k]))
		}
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping control characters, quotes and backslashes
// and replacing invalid UTF-8 with U+FFFD.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
