// Package index is how the transfer names the indices it writes: the
// [es] index pattern, parsed once, gives each record's index from its
// topic and time.
package index

import (
	"fmt"
	"strings"
	"time"
)

// Name is a parsed [es] index pattern: literal text with %{topic}
// and %{+<Go time layout>} (the event's @timestamp in UTC).
type Name struct {
	parts []indexPart
	// daily: the name depends on the day only (no time-of-day in it), so
	// one name serves a whole UTC day.
	daily bool
}

type indexPart struct {
	lit    string
	topic  bool
	layout string
}

// Parse parses an index pattern such as "%{topic}-%{+2006.01.02}".
func Parse(s string) (*Name, error) {
	if s == "" {
		return nil, fmt.Errorf("index pattern is empty")
	}
	n := &Name{}
	rest := s
	for rest != "" {
		i := strings.Index(rest, "%{")
		if i < 0 {
			n.parts = append(n.parts, indexPart{lit: rest})
			break
		}
		if i > 0 {
			n.parts = append(n.parts, indexPart{lit: rest[:i]})
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("index pattern %q: unclosed %%{", s)
		}
		tok := rest[i+2 : i+j]
		switch {
		case tok == "topic":
			n.parts = append(n.parts, indexPart{topic: true})
		case strings.HasPrefix(tok, "+") && len(tok) > 1:
			if strings.Contains(tok, "05.0") || strings.Contains(tok, "05.9") || strings.Contains(tok, "05,0") || strings.Contains(tok, "05,9") {
				return nil, fmt.Errorf("index pattern %q: fractional seconds are not supported in index names", s)
			}
			n.parts = append(n.parts, indexPart{layout: tok[1:]})
		default:
			return nil, fmt.Errorf("index pattern %q: unknown %%{%s}; use %%{topic} or %%{+2006.01.02}", s, tok)
		}
		rest = rest[i+j+1:]
	}
	n.daily = n.sameAllDay()
	// Elasticsearch index names are lower case and cannot start with _ - +.
	sample := n.Name("topic", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if strings.ToLower(sample) != sample {
		return nil, fmt.Errorf("index pattern %q: Elasticsearch index names must be lower case", s)
	}
	if strings.ContainsAny(sample, ` "*\<|,>/?#:`) || strings.HasPrefix(sample, "_") || strings.HasPrefix(sample, "-") || strings.HasPrefix(sample, "+") {
		return nil, fmt.Errorf("index pattern %q gives the invalid index name %q", s, sample)
	}
	return n, nil
}

// sameAllDay reports whether every time of day gives the day's first
// name: each hour, and minutes and seconds 0, 1, 30 and 59 (a layout's
// hour, minute or second token changes between some two of them), on a
// few days.
func (n *Name) sameAllDay() bool {
	for _, day := range []time.Time{time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 29, 0, 0, 0, 0, time.UTC), time.Date(2019, 12, 31, 0, 0, 0, 0, time.UTC)} {
		first := n.Name("t", day)
		for h := 0; h < 24; h++ {
			for _, m := range []int{0, 1, 30, 59} {
				for _, s := range []int{0, 1, 30, 59} {
					if n.Name("t", day.Add(time.Duration(h)*time.Hour+time.Duration(m)*time.Minute+time.Duration(s)*time.Second)) != first {
						return false
					}
				}
			}
		}
	}
	return true
}

// HasTopic reports whether names carry the topic (%{topic}): only then
// are a topic's indices its own.
func (n *Name) HasTopic() bool {
	for _, p := range n.parts {
		if p.topic {
			return true
		}
	}
	return false
}

// Period returns a key of t such that every time with the same key gets
// the same name: its UTC day for a daily pattern, else its second.
func (n *Name) Period(t time.Time) int64 {
	sec := t.Unix()
	if !n.daily {
		return sec
	}
	day := sec / 86400
	if sec%86400 < 0 {
		day--
	}
	return day
}

// Name returns the index for an event of topic at t. Topics are lower-cased
// because Elasticsearch index names must be.
func (n *Name) Name(topic string, t time.Time) string {
	var b strings.Builder
	t = t.UTC()
	for _, p := range n.parts {
		switch {
		case p.topic:
			b.WriteString(strings.ToLower(topic))
		case p.layout != "":
			b.WriteString(t.Format(p.layout))
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// Pattern returns the index pattern (for templates and Kibana data views)
// covering every index of topic: the date parts become *.
func (n *Name) Pattern(topic string) string {
	var b strings.Builder
	for _, p := range n.parts {
		switch {
		case p.topic:
			b.WriteString(strings.ToLower(topic))
		case p.layout != "":
			b.WriteString("*")
		default:
			b.WriteString(p.lit)
		}
	}
	return b.String()
}

// Time is the start of the period an index of topic named name holds
// (what Name gave for it), and whether name is such an index: the topic,
// the pattern's literal text, and a time in each date part, nothing else.
// Retention reads an index's age from it. A name that merely matches
// Pattern (another topic "<topic>-x", someone else's index) is not.
func (n *Name) Time(topic, name string) (time.Time, bool) {
	rest := name
	var layouts, values []string
	for i, p := range n.parts {
		switch {
		case p.topic:
			t := strings.ToLower(topic)
			if !strings.HasPrefix(rest, t) {
				return time.Time{}, false
			}
			rest = rest[len(t):]
		case p.layout != "":
			// The date runs to the next literal text (or the end): the
			// layouts the pattern allows format times without it.
			end := len(rest)
			if i+1 < len(n.parts) {
				next := n.parts[i+1]
				if next.lit == "" {
					return time.Time{}, false // two variable parts in a row: ambiguous
				}
				if end = strings.Index(rest, next.lit); end < 0 {
					return time.Time{}, false
				}
			}
			layouts, values = append(layouts, p.layout), append(values, rest[:end])
			rest = rest[end:]
		default:
			if !strings.HasPrefix(rest, p.lit) {
				return time.Time{}, false
			}
			rest = rest[len(p.lit):]
		}
	}
	if rest != "" || len(layouts) == 0 {
		return time.Time{}, false
	}
	// The parts parse as one layout, "|" (no layout element) between them.
	t, err := time.Parse(strings.Join(layouts, "|"), strings.Join(values, "|"))
	if err != nil || n.Name(topic, t) != name {
		return time.Time{}, false
	}
	return t, true
}
