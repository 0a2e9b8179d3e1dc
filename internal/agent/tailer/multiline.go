package tailer

import (
	"regexp"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// emitFunc sends one event covering file bytes [start, end).
type emitFunc func(val []byte, start, end int64, flags record.Flags) error

// joiner joins continuation lines to the line that starts an event. A line
// matching re starts a new event; any other line is appended (with "\n")
// to the pending one. An event is sent when the next one starts, when it
// reaches maxLines or maxBytes, or when no line followed it for timeout.
type joiner struct {
	re       *regexp.Regexp
	maxLines int
	maxBytes int
	timeout  time.Duration

	buf        []byte
	start, end int64
	lines      int
	last       time.Time
}

func (j *joiner) pending() bool { return j.lines > 0 }

// add takes one line spanning file bytes [start, end) (end includes the
// newline).
func (j *joiner) add(line []byte, start, end int64, now time.Time, emit emitFunc) error {
	if j.pending() {
		fits := j.lines < j.maxLines && len(j.buf)+1+len(line) <= j.maxBytes
		if !j.re.Match(line) && fits {
			j.buf = append(j.buf, '\n')
			j.buf = append(j.buf, line...)
			j.end = end
			j.lines++
			j.last = now
			return nil
		}
		if err := j.flush(emit); err != nil {
			return err
		}
	}
	j.buf = append(make([]byte, 0, len(line)+256), line...)
	j.start, j.end, j.lines, j.last = start, end, 1, now
	return nil
}

// flush sends the pending event, if any.
func (j *joiner) flush(emit emitFunc) error {
	if !j.pending() {
		return nil
	}
	var f record.Flags
	if j.lines > 1 {
		f = record.Multiline
	}
	if err := emit(j.buf, j.start, j.end, f); err != nil {
		return err
	}
	j.buf, j.lines = nil, 0
	return nil
}

// expired reports whether the pending event waited longer than timeout.
func (j *joiner) expired(now time.Time) bool {
	return j.pending() && now.Sub(j.last) >= j.timeout
}

// reset drops the pending event without sending it; its lines are re-read
// by whoever resumes the stream, because the resume offset only covers
// events that were sent.
func (j *joiner) reset() { j.buf, j.lines = nil, 0 }
