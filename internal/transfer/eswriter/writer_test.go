package eswriter

// Deterministic tests at the transfer's Elasticsearch edge: a scripted
// bulkDoer (the writer's own interface to the client) answers each bulk
// request as the test says, and a real acktrack.Tracker (what the consumer
// marks offsets from) shows which records count as done.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/acktrack"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// answer is one scripted reply: a body (status 200) or an error.
type answer struct {
	body string
	err  error
}

// script answers requests in order with the function's reply to the ids
// in the request; it records each request's ids.
type script struct {
	mu     sync.Mutex
	reply  func(call int, ids []string) answer
	calls  [][]string
	params []string // each request's query string
}

func (s *script) PerformRequest(_ context.Context, opt elastic.PerformRequestOptions) (*elastic.Response, error) {
	var ids []string
	for _, line := range strings.Split(opt.Body.(string), "\n") {
		if strings.HasPrefix(line, `{"index"`) {
			panic("a document sent with the index action, which overwrites: " + line)
		}
		if i := strings.Index(line, `"_id":"`); i >= 0 && strings.HasPrefix(line, `{"create"`) {
			rest := line[i+len(`"_id":"`):]
			ids = append(ids, rest[:strings.IndexByte(rest, '"')])
		}
	}
	s.mu.Lock()
	call := len(s.calls)
	s.calls = append(s.calls, ids)
	s.params = append(s.params, opt.Params.Encode())
	s.mu.Unlock()
	a := s.reply(call, ids)
	if a.err != nil {
		return nil, a.err
	}
	return &elastic.Response{StatusCode: 200, Body: []byte(a.body)}, nil
}

func (s *script) requests() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.calls...)
}

// items builds a bulk response: one item per id, with the status f gives.
func items(ids []string, f func(i int, id string) (int, string)) string {
	var b strings.Builder
	b.WriteString(`{"took":1,"errors":true,"items":[`)
	for i, id := range ids {
		st, errType := f(i, id)
		if i > 0 {
			b.WriteByte(',')
		}
		switch {
		case st >= 200 && st < 300:
			fmt.Fprintf(&b, `{"create":{"_id":%q,"status":%d,"result":"created"}}`, id, st)
		case st == 0:
			fmt.Fprintf(&b, `{"create":{"_id":%q}}`, id)
		default:
			fmt.Fprintf(&b, `{"create":{"_id":%q,"status":%d,"error":{"type":%q,"reason":"scripted"}}}`, id, st, errType)
		}
	}
	b.WriteString(`]}`)
	return b.String()
}

func allOK(ids []string) string {
	return `{"took":1,"errors":false,"items":[` + strings.Repeat(`{"create":{"status":201,"result":"created"}},`, len(ids)-1) + `{"create":{"status":201,"result":"created"}}]}`
}

func esErr(status int) error {
	return &elastic.Error{Status: status, Details: &elastic.ErrorDetails{Type: "scripted", Reason: http.StatusText(status)}}
}

// dlq records dead letters; it can fail the first sends.
type dlq struct {
	mu      sync.Mutex
	reasons map[string]string
	fail    int
}

func (q *dlq) Send(_ context.Context, d *Doc, reason string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail > 0 {
		q.fail--
		return errors.New("dead-letter topic unavailable")
	}
	q.reasons[d.ID] = reason
	return nil
}

func (q *dlq) got() map[string]string {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]string{}
	for k, v := range q.reasons {
		out[k] = v
	}
	return out
}

type wrig struct {
	w    *Writer
	sc   *script
	dl   *dlq
	tr   *acktrack.Tracker
	stop func()
}

func newWriter(t *testing.T, reply func(call int, ids []string) answer) *wrig {
	return newWriterWith(t, Config{}, reply)
}

// newWriterWith is newWriter with cfg's Pipeline.
func newWriterWith(t *testing.T, cfg Config, reply func(call int, ids []string) answer) *wrig {
	l := logrus.New()
	l.SetOutput(io.Discard)
	r := &wrig{sc: &script{reply: reply}, dl: &dlq{reasons: map[string]string{}}, tr: acktrack.New(0)}
	r.w = New(Config{Workers: 1, BulkActions: 100, BulkBytes: 1 << 20, FlushInterval: 10 * time.Millisecond,
		RetryBackoffMax: 20 * time.Millisecond, ShutdownTimeout: time.Second, Pipeline: cfg.Pipeline}, nil, r.dl, logrus.NewEntry(l), nil)
	r.w.bulkc = r.sc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.w.Run(ctx) }()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(r.stop)
	return r
}

// submit queues n documents d0..dn-1 (record i ends at offset i+1).
func (r *wrig) submit(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		d := &Doc{Index: "idx", ID: fmt.Sprintf("d%d", i), Body: []byte(`{"message":"x"}`), Acker: r.tr}
		d.Seq = r.tr.Emit(int64(i+1), false)
		if err := r.w.Submit(context.Background(), []*Doc{d}); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *wrig) acked() int64 { a, _, _ := r.tr.State(); return a }

func (r *wrig) waitAcked(t *testing.T, want int64) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool { return r.acked() == want },
		func() string { return fmt.Sprintf("acked %d, want %d; requests %v", r.acked(), want, r.sc.requests()) })
}

func TestBulkOutcomes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply func(call int, ids []string) answer
		// checks after all 4 documents are acknowledged
		wantRequests int               // at least
		wantDLQ      map[string]string // id -> reason prefix
		check        func(t *testing.T, reqs [][]string)
	}{
		{name: "all created in one request",
			reply: func(int, []string) answer {
				return answer{body: `{"took":1,"errors":false,"items":[{"create":{"status":201,"result":"created"}},{"create":{"status":201,"result":"created"}},{"create":{"status":201,"result":"created"}},{"create":{"status":201,"result":"created"}}]}`}
			},
			wantRequests: 1},
		{name: "a 429 item is retried alone",
			reply: func(call int, ids []string) answer {
				if call == 0 {
					return answer{body: items(ids, func(i int, _ string) (int, string) {
						if i == 1 {
							return 429, "es_rejected_execution_exception"
						}
						return 201, ""
					})}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 2,
			check: func(t *testing.T, reqs [][]string) {
				if len(reqs[1]) != 1 || reqs[1][0] != "d1" {
					t.Fatalf("retry sent %v, want only d1", reqs[1])
				}
			}},
		{name: "a 400 item is dead-lettered with the engine's reason, the rest stored",
			reply: func(_ int, ids []string) answer {
				return answer{body: items(ids, func(_ int, id string) (int, string) {
					if id == "d2" {
						return 400, "mapper_parsing_exception"
					}
					return 201, ""
				})}
			},
			wantRequests: 1, wantDLQ: map[string]string{"d2": "400 mapper_parsing_exception: scripted"}},
		{name: "413 for the whole request: split until the halves fit, nothing dead-lettered",
			reply: func(_ int, ids []string) answer {
				if len(ids) > 1 {
					return answer{err: esErr(413)}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 7},
		{name: "a connection error retries everything",
			reply: func(call int, ids []string) answer {
				if call < 2 {
					return answer{err: errors.New("connection reset by peer")}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 3},
		{name: "401 (expired credential) is an outage: retried, never dead-lettered",
			reply: func(call int, ids []string) answer {
				if call < 3 {
					return answer{err: esErr(401)}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 4},
		{name: "403 and 404 for the whole request are outages too",
			reply: func(call int, ids []string) answer {
				switch call {
				case 0:
					return answer{err: esErr(403)}
				case 1:
					return answer{err: esErr(404)}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 3},
		{name: "read-only index and security items are retried",
			reply: func(call int, ids []string) answer {
				if call == 0 {
					return answer{body: items(ids, func(i int, _ string) (int, string) {
						switch i {
						case 0:
							return 403, "cluster_block_exception"
						case 1:
							return 403, "security_exception"
						}
						return 201, ""
					})}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 2},
		{name: "409 (the _id is already stored) is a success: not retried, not dead-lettered",
			reply: func(call int, ids []string) answer {
				return answer{body: items(ids, func(i int, _ string) (int, string) {
					if i%2 == 0 {
						return 409, "version_conflict_engine_exception"
					}
					return 201, ""
				})}
			},
			wantRequests: 1,
			check: func(t *testing.T, reqs [][]string) {
				if len(reqs) != 1 {
					t.Fatalf("%d requests, want 1: a stored document was retried", len(reqs))
				}
			}},
		{name: "items without a status are retried",
			reply: func(call int, ids []string) answer {
				if call == 0 {
					return answer{body: items(ids, func(i int, _ string) (int, string) {
						if i == 3 {
							return 0, ""
						}
						return 201, ""
					})}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 2},
		{name: "fewer items than documents: everything retried",
			reply: func(call int, ids []string) answer {
				if call == 0 {
					return answer{body: items(ids[:2], func(int, string) (int, string) { return 201, "" })}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 2,
			check: func(t *testing.T, reqs [][]string) {
				if len(reqs[1]) != 4 {
					t.Fatalf("retry sent %v, want all four", reqs[1])
				}
			}},
		{name: "a store that omits item statuses but says there were no errors",
			reply: func(_ int, ids []string) answer {
				return answer{body: `{"errors":false,"items":[` + strings.TrimSuffix(strings.Repeat(`{"create":{}},`, len(ids)), ",") + `]}`}
			},
			wantRequests: 1},
		{name: "errors:false with too few items is not trusted",
			reply: func(call int, ids []string) answer {
				if call == 0 {
					return answer{body: `{"took":1,"errors":false,"items":[{"create":{"status":201,"result":"created"}}]}`}
				}
				return answer{body: allOK(ids)}
			},
			wantRequests: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newWriter(t, tc.reply)
			r.submit(t, 4)
			r.waitAcked(t, 4)
			reqs := r.sc.requests()
			if len(reqs) < tc.wantRequests {
				t.Fatalf("%d requests, want at least %d: %v", len(reqs), tc.wantRequests, reqs)
			}
			got := r.dl.got()
			if len(got) != len(tc.wantDLQ) {
				t.Fatalf("dead letters %v, want %v", got, tc.wantDLQ)
			}
			for id, reason := range tc.wantDLQ {
				if !strings.HasPrefix(got[id], reason) {
					t.Fatalf("dead letter %s reason %q, want %q", id, got[id], reason)
				}
			}
			if tc.check != nil {
				tc.check(t, reqs)
			}
		})
	}
}

// Nothing is acknowledged before Elasticsearch answers, and a document
// still being retried holds the prefix: later documents acknowledged
// around it do not move the offset past it.
func TestAckOnlyAfterAnswerAndOverPrefix(t *testing.T) {
	release := make(chan struct{})
	r := newWriter(t, func(call int, ids []string) answer {
		if call == 0 {
			<-release // the answer is slow
			return answer{body: items(ids, func(i int, _ string) (int, string) {
				if i == 0 {
					return 503, "unavailable_shards_exception"
				}
				return 201, ""
			})}
		}
		return answer{err: errors.New("timeout")} // d0 keeps failing
	})
	r.submit(t, 4)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(r.sc.requests()) == 1 }, testutil.Msg("the request sent"))
	if a := r.acked(); a != 0 {
		t.Fatalf("acked %d before Elasticsearch answered", a)
	}
	close(release)
	testutil.Eventually(t, 5*time.Second, func() bool { return len(r.sc.requests()) >= 3 }, testutil.Msg("d0 retried"))
	if a := r.acked(); a != 0 {
		t.Fatalf("acked %d while d0 is still unacknowledged", a)
	}
	r.stop() // shutdown while d0 retries: it stays unacknowledged
	if a := r.acked(); a != 0 {
		t.Fatalf("acked %d after shutdown", a)
	}
}

// A dead letter counts as done only once the dead-letter topic took it.
func TestDeadLetterAckedOnlyWhenStored(t *testing.T) {
	r := newWriter(t, func(_ int, ids []string) answer {
		return answer{body: items(ids, func(int, string) (int, string) { return 400, "mapper_parsing_exception" })}
	})
	r.dl.fail = 3
	r.submit(t, 1)
	r.waitAcked(t, 1)
	if got := r.dl.got(); len(got) != 1 {
		t.Fatalf("dead letters %v", got)
	}
}

// An ingest pipeline that does not exist is a configuration to fix, not a
// bad document: every document is held and retried (none is dead-lettered)
// and the writer reports not ready, until the pipeline is created. Every
// request names the pipeline.
func TestMissingIngestPipelineHeldNotDeadLettered(t *testing.T) {
	var r *wrig
	var notReady []string
	r = newWriterWith(t, Config{Pipeline: "lp geo"}, func(call int, ids []string) answer {
		if call > 0 {
			err := r.w.Ready()
			if err == nil {
				notReady = append(notReady, "ready")
			} else {
				notReady = append(notReady, err.Error())
			}
		}
		if call < 3 {
			return answer{body: items(ids, func(i int, _ string) (int, string) { return 400, "illegal_argument_exception" })}
		}
		return answer{body: allOK(ids)}
	})
	// (items() says "scripted" as the reason: answer with the engine's own.)
	r.sc.reply = func(prev func(int, []string) answer) func(int, []string) answer {
		return func(call int, ids []string) answer {
			a := prev(call, ids)
			a.body = strings.ReplaceAll(a.body, `"reason":"scripted"`, `"reason":"pipeline with id [lp geo] does not exist"`)
			return a
		}
	}(r.sc.reply)
	r.submit(t, 4)
	r.waitAcked(t, 4)
	if got := r.dl.got(); len(got) != 0 {
		t.Fatalf("dead letters %v: a missing pipeline rejected documents", got)
	}
	if n := len(r.sc.requests()); n != 4 {
		t.Fatalf("%d requests, want 4 (3 refused, then stored)", n)
	}
	for i, p := range r.sc.params {
		if p != "pipeline=lp+geo" {
			t.Fatalf("request %d query %q, want pipeline=lp+geo", i, p)
		}
	}
	want := `ingest pipeline "lp geo" does not exist in Elasticsearch`
	if len(notReady) != 3 || notReady[0] != want || notReady[2] != want {
		t.Fatalf("readiness while refused: %q, want %q", notReady, want)
	}
	if err := r.w.Ready(); err != nil {
		t.Fatalf("still not ready once stored: %v", err)
	}
	if st := r.w.Status(); st.IngestPipeline != "lp geo" || st.IngestPipelineMissing != "" {
		t.Fatalf("status %+v", st)
	}
}

// A request's answer acknowledges each partition's documents in one call
// to its tracker: every document of every run, whichever partition it is
// of and however the runs interleave.
func TestAcksReachEveryPartitionsTracker(t *testing.T) {
	r := newWriter(t, func(_ int, ids []string) answer { return answer{body: allOK(ids)} })
	a, b := acktrack.New(0), acktrack.New(100)
	var docs []*Doc
	add := func(tr *acktrack.Tracker, end int64) {
		d := &Doc{Index: "idx", ID: fmt.Sprintf("d%d", len(docs)), Body: []byte(`{"message":"x"}`), Acker: tr}
		d.Seq = tr.Emit(end, false)
		docs = append(docs, d)
	}
	add(a, 1)
	add(a, 2)
	add(a, 3)
	add(b, 101)
	add(b, 102)
	add(a, 4) // a again, after b's run
	add(b, 103)
	if err := r.w.Submit(context.Background(), docs); err != nil {
		t.Fatal(err)
	}
	state := func(tr *acktrack.Tracker) (int64, int) { acked, _, n := tr.State(); return acked, n }
	testutil.Eventually(t, 5*time.Second, func() bool {
		aa, an := state(a)
		ba, bn := state(b)
		return aa == 4 && an == 0 && ba == 103 && bn == 0
	}, func() string {
		aa, an := state(a)
		ba, bn := state(b)
		return fmt.Sprintf("partition a acked to %d (%d in flight), want 4; b to %d (%d), want 103; requests %v", aa, an, ba, bn, r.sc.requests())
	})
	if n := len(r.sc.requests()); n != 1 {
		t.Fatalf("%d requests, want the one", n)
	}
}
