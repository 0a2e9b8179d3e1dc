package tailer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/registry"
)

// ackSink acknowledges whole batches at once, like the producer does.
type ackSink struct{ seqs []uint64 }

func (s *ackSink) Send(_ context.Context, b *event.Batch) error {
	s.seqs = s.seqs[:0]
	for i := range b.Events {
		s.seqs = append(s.seqs, b.Events[i].Seq)
	}
	if a, ok := b.Events[0].Acker.(interface{ AckBatch([]uint64) }); ok {
		a.AckBatch(s.seqs)
	}
	return nil
}

// BenchmarkSplitLines measures reading: splitting a chunk into lines,
// building events and registering them. One op is one 200-byte line.
func BenchmarkSplitLines(b *testing.B) {
	reg, err := registry.Open(b.TempDir(), quietLog(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer reg.Close()
	p := filepath.Join(b.TempDir(), "a.log")
	os.WriteFile(p, nil, 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	h, _ := reg.Claim(registry.Key{Dev: 1, Ino: 1, Topic: "t"}, p)
	if err := h.Start(0, 0, 0); err != nil {
		b.Fatal(err)
	}
	t := New(Config{Path: p, Source: event.NewSource("t", p, "h", "1.2.3.4", nil), MaxLineBytes: 256 << 10, PollInterval: time.Second}, reg, &ackSink{}, quietLog(), NewMetrics(nil))
	t.ctx = context.Background()
	r := t.newReader(f, registry.Key{Dev: 1, Ino: 1, Topic: "t"}, h)
	r.inst = h.Instance()
	const perChunk = 1024
	line := strings.Repeat("x", 199) + "\n"
	chunk := []byte(strings.Repeat(line, perChunk))
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	b.ResetTimer()
	var base int64
	for i := 0; i < b.N; i += perChunk {
		r.batchCap = perChunk
		data := append([]byte(nil), chunk...) // a fresh read buffer, as readAvailable allocates
		if err := r.process(data, base, time.Now()); err != nil {
			b.Fatal(err)
		}
		if err := r.flush(); err != nil {
			b.Fatal(err)
		}
		base += int64(len(chunk))
	}
	b.ReportMetric(float64(perChunk), "lines/chunk")
}
