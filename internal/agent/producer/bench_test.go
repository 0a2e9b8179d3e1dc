package producer

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/config"
)

type nopAcker struct{}

func (nopAcker) Ack(uint64) {}

// BenchmarkMessages measures building the records (headers, event id) of
// a batch. One op is one line.
func BenchmarkMessages(b *testing.B) {
	b.Run("unsigned", func(b *testing.B) { benchMessages(b, nil) })
	b.Run("signed", func(b *testing.B) { benchMessages(b, testSigner(b)) })
}

func testSigner(t testing.TB) func() *record.SigningKey {
	k, err := record.NewSigningKey(record.KeyID{1, 2, 3, 4}, []byte(strings.Repeat("k", record.SecretLen)))
	if err != nil {
		t.Fatal(err)
	}
	return func() *record.SigningKey { return k }
}

func tmpSetup(t testing.TB) (*Producer, *event.Batch) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := New(Config{Kafka: config.Kafka{ChanMaxSize: 10000, BufferBytes: 16 << 20}, Signer: testSigner(t)}, logrus.NewEntry(l), nil)
	src := event.NewSource("web_log", "/var/log/nginx/access.log", "web-1", "10.0.0.1", map[string]string{"service": "nginx"})
	const n = 1024
	batch := &event.Batch{Events: make([]event.Event, n)}
	val := []byte(strings.Repeat("x", 199))
	inst := record.NewInstance()
	for i := range batch.Events {
		batch.Events[i] = event.Event{Source: src, Value: val, Offset: int64(i * 200), Instance: inst, Time: time.Now(), Acker: nopAcker{}, Seq: uint64(i)}
	}
	return p, batch
}

func benchMessages(b *testing.B, signer func() *record.SigningKey) {
	l := logrus.New()
	l.SetOutput(io.Discard)
	p := New(Config{Kafka: config.Kafka{ChanMaxSize: 10000, BufferBytes: 16 << 20}, Signer: signer}, logrus.NewEntry(l), nil)
	src := event.NewSource("web_log", "/var/log/nginx/access.log", "web-1", "10.0.0.1", map[string]string{"service": "nginx"})
	const n = 1024
	batch := &event.Batch{Events: make([]event.Event, n)}
	val := []byte(strings.Repeat("x", 199))
	inst := record.NewInstance()
	for i := range batch.Events {
		batch.Events[i] = event.Event{Source: src, Value: val, Offset: int64(i * 200), Instance: inst, Time: time.Now(), Acker: nopAcker{}, Seq: uint64(i)}
		batch.Bytes += len(val)
	}
	b.ReportAllocs()
	b.SetBytes(200)
	for i := 0; i < b.N; i += n {
		st := p.prepare(batch, 1<<20)
		if st.one.to != n {
			b.Fatal(st.one.to)
		}
		p.recycle(st.slab) // as the acknowledgement of a batch does
	}
}

func TestMessageMemoryIsCounted(t *testing.T) {
	// What prepare allocates per event for its records must fit in the fixed
	// per-event cost counted against buffer_bytes, or an outage holding
	// chan_max_size events in flight overruns the bound. Batch sizes
	// around the smallest that takes a reused slab included.
	l := logrus.New()
	l.SetOutput(io.Discard)
	src := event.NewSource("web_log", "/var/log/nginx/access.log", "web-1", "10.0.0.1", map[string]string{"service": "nginx"})
	val := []byte(strings.Repeat("x", 199))
	inst := record.NewInstance()
	for i, n := range []int{100, slabEvents*3/4 - 1, slabEvents * 3 / 4, slabEvents, 100, slabEvents} {
		var signer func() *record.SigningKey
		if i >= 4 { // signed records carry one header more
			signer = testSigner(t)
		}
		p := New(Config{Kafka: config.Kafka{ChanMaxSize: 10000, BufferBytes: 16 << 20}, Signer: signer}, logrus.NewEntry(l), nil)
		const batches = 20
		var bs []*event.Batch
		for j := 0; j < batches; j++ {
			b := &event.Batch{Events: make([]event.Event, n)}
			for i := range b.Events {
				b.Events[i] = event.Event{Source: src, Value: val, Offset: int64(i * 200), Instance: inst, Time: time.Now(), Acker: nopAcker{}, Seq: uint64(i)}
			}
			bs = append(bs, b)
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		var held []*batchState
		for _, b := range bs {
			held = append(held, p.prepare(b, 1<<20))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perEvent := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(batches*n)
		t.Logf("%d events per batch: records hold %.0f bytes per event; counted %d", n, perEvent, eventExtra)
		if perEvent > float64(eventExtra) {
			t.Errorf("%d events per batch: records hold %.0f bytes per event, more than the %d counted", n, perEvent, eventExtra)
		}
		runtime.KeepAlive(held)
	}
}
