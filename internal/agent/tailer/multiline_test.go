package tailer

import (
	"bytes"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
)

// mlLine is a generated line: its text, whether it starts an event, where
// it lies in the file, and the write that completed it.
type mlLine struct {
	text       string
	first      bool
	start, end int64 // end includes the newline
	write      int
}

// The multiline guarantee, over generated files, limits and write
// timings, on a fake clock: the events are exactly what the rules make of
// the lines, no more, no less. A line that starts an event (it matches the
// pattern) ends the pending one; so does a line that would take the
// pending event past max_lines or max_bytes; so does a pause of the
// timeout or more since the pending event's last line (it is sent
// meanwhile), and only such a pause.
// Nothing else splits an event. Each event carries its first line's
// offset, the multiline flag when it joined more than one line, and every
// line of the file is in exactly one event, in order.
func TestMultilineEventsAreExactlyTheirLines(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		maxLines := rapid.IntRange(1, 6).Draw(rt, "max_lines")
		maxBytes := rapid.IntRange(40, 400).Draw(rt, "max_bytes")
		timeout := rapid.SampledFrom([]time.Duration{50 * time.Millisecond, time.Second}).Draw(rt, "timeout")
		n := rapid.IntRange(1, 16).Draw(rt, "lines")
		var lines []mlLine
		var content bytes.Buffer
		for i := 0; i < n; i++ {
			first := rapid.IntRange(0, 2).Draw(rt, "starts") == 0
			pad := strings.Repeat("x", rapid.IntRange(0, 120).Draw(rt, "length"))
			text := fmt.Sprintf("  cont %d %s", i, pad)
			if first {
				text = fmt.Sprintf("START %d %s", i, pad)
			}
			start := int64(content.Len())
			content.WriteString(text + "\n")
			lines = append(lines, mlLine{text: text, first: first, start: start, end: int64(content.Len())})
		}
		// The file is written in pieces (cut anywhere, mid-line too),
		// each followed by no pause, 0.4 timeouts or 10 timeouts: two
		// short pauses between two lines do not reach the timeout, three
		// do, whatever the 5 ms polls add.
		data := content.Bytes()
		var cuts []int
		for i, k := 0, rapid.IntRange(0, 2*n).Draw(rt, "cuts"); i < k; i++ {
			if rapid.IntRange(0, 5).Draw(rt, "at a line's end") > 0 {
				cuts = append(cuts, int(lines[rapid.IntRange(0, len(lines)-1).Draw(rt, "line")].end))
			} else {
				cuts = append(cuts, rapid.IntRange(1, len(data)).Draw(rt, "cut"))
			}
		}
		cuts = append(cuts, len(data))
		var pieces [][]byte
		var pauses []time.Duration
		prev := 0
		for _, c := range sorted(cuts) {
			if c <= prev {
				continue
			}
			pieces = append(pieces, data[prev:c])
			pauses = append(pauses, rapid.SampledFrom([]time.Duration{0, timeout * 4 / 10, timeout * 4 / 10, timeout * 4 / 10, 10 * timeout}).Draw(rt, "pause"))
			prev = c
		}
		for i := range lines {
			written := 0
			for w, p := range pieces {
				written += len(p)
				if int64(written) >= lines[i].end {
					lines[i].write = w
					break
				}
			}
		}
		want := expectedEvents(lines, pauses, timeout, maxLines, maxBytes)

		var failure string // rt.Fatalf must not run in the bubble's goroutine
		synctest.Test(t, func(t *testing.T) {
			h := newHarness(t)
			p := filepath.Join(h.dir, "a.log")
			write(t, p, "")
			doc := fmt.Sprintf(`[{"path":"/x","topic":"t","multiline":{"pattern":"^START","max_lines":%d,"max_bytes":%d,"timeout":%q}}]`, maxLines, maxBytes, timeout)
			ml := multilineDoc(t, doc)
			stop := h.run(Config{Path: p, Multiline: ml})
			for i, piece := range pieces {
				write(t, p, string(piece))
				synctest.Wait()
				if pauses[i] > 0 {
					time.Sleep(pauses[i])
					synctest.Wait()
				}
			}
			time.Sleep(10 * timeout) // the last event goes by its timeout
			synctest.Wait()
			stop()
			got := h.sink.events()
			var g []string
			for _, e := range got {
				g = append(g, fmt.Sprintf("%d %v %q", e.Offset, e.Flags, e.Value))
			}
			var w []string
			for _, e := range want {
				w = append(w, fmt.Sprintf("%d %v %q", e.offset, e.flags, e.value))
			}
			if strings.Join(g, "\n") != strings.Join(w, "\n") {
				failure = fmt.Sprintf("events (max_lines %d, max_bytes %d, pieces %d, pauses %v):\n got %s\nwant %s", maxLines, maxBytes, len(pieces), pauses, strings.Join(g, "\n     "), strings.Join(w, "\n     "))
			}
		})
		if failure != "" {
			rt.Fatal(failure)
		}
	})
}

type mlEvent struct {
	value  string
	offset int64
	flags  record.Flags
}

// expectedEvents is the multiline rules applied to lines by hand.
func expectedEvents(lines []mlLine, pauses []time.Duration, timeout time.Duration, maxLines, maxBytes int) []mlEvent {
	var out []mlEvent
	var cur []mlLine
	flush := func() {
		if len(cur) == 0 {
			return
		}
		var texts []string
		for _, l := range cur {
			texts = append(texts, l.text)
		}
		e := mlEvent{value: strings.Join(texts, "\n"), offset: cur[0].start}
		if len(cur) > 1 {
			e.flags = record.Multiline
		}
		out = append(out, e)
		cur = nil
	}
	for i, l := range lines {
		if len(cur) > 0 {
			var gap time.Duration
			for w := lines[i-1].write; w < l.write; w++ {
				gap += pauses[w]
			}
			paused := gap >= timeout
			size := 0
			for _, c := range cur {
				size += len(c.text) + 1
			}
			size-- // no newline after the last
			fits := len(cur) < maxLines && size+1+len(l.text) <= maxBytes
			if paused || l.first || !fits {
				flush()
			}
		}
		cur = append(cur, l)
	}
	flush()
	return out
}

func sorted(xs []int) []int {
	out := append([]int(nil), xs...)
	slices.Sort(out)
	return out
}

func multilineDoc(t *testing.T, doc string) *collectconf.Multiline {
	t.Helper()
	es, err := collectconf.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return es[0].Multiline
}
