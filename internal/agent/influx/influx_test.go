package influx

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// server is an InfluxDB write endpoint over HTTP that answers with the
// statuses given, one per request (then 204), and keeps what it accepted.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []string // accepted points
	queries  []string
	auth     []string
	arrived  chan struct{}
}

func newServer(t *testing.T, statuses ...int) *server {
	s := &server{statuses: statuses, arrived: make(chan struct{}, 100)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil || r.Header.Get("Content-Encoding") != "gzip" {
			http.Error(w, "not gzip", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(zr)
		s.mu.Lock()
		status := http.StatusNoContent
		if len(s.statuses) > 0 {
			status, s.statuses = s.statuses[0], s.statuses[1:]
		}
		s.queries = append(s.queries, r.URL.RawQuery)
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		if status == http.StatusNoContent {
			s.got = append(s.got, strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")...)
		}
		s.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"test"}`)
		s.arrived <- struct{}{}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) points() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func start(t *testing.T, w *Writer) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func newWriter() *Writer {
	l := logrus.New()
	l.SetOutput(io.Discard)
	w := New(logrus.NewEntry(l), nil)
	w.retry = backoff.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond}
	return w
}

func points(prefix string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "m,host=h v=%d %s%d\n", i, prefix, i)
	}
	return b.String()
}

// waitFor polls the server's points until want arrived (or fails).
func waitFor(t *testing.T, s *server, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if got := s.points(); len(got) >= want {
			return got
		}
		select {
		case <-s.arrived:
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("%d points arrived, want %d", len(s.points()), want)
	return nil
}

// Points go gzip'd, with precision=ns and the token, in order; failed
// pushes (5xx, 429) are retried until they land, once each.
func TestPointsArriveOnceThroughFailures(t *testing.T) {
	s := newServer(t, 503, 429, 500)
	w := newWriter()
	if err := w.Set(&Target{URL: s.URL + "/write?db=telegraf", Token: "u:p", MaxPoints: 100}); err != nil {
		t.Fatal(err)
	}
	start(t, w)
	w.Add([]byte(points("1", 3)))
	got := waitFor(t, s, 3)
	w.Add([]byte(points("2", 2)))
	got = waitFor(t, s, 5)
	want := strings.Split(strings.TrimSuffix(points("1", 3)+points("2", 2), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, q := range s.queries {
		if q != "db=telegraf&precision=ns" || s.auth[i] != "Token u:p" {
			t.Errorf("request %d: query %q, authorization %q", i, q, s.auth[i])
		}
	}
	if n := testutil.ToFloat64(w.failed); n != 3 {
		t.Errorf("%v failed pushes counted, want 3", n)
	}
	if w.Err() != "" {
		t.Errorf("error after a success: %s", w.Err())
	}
}

// With InfluxDB down the buffer holds the newest MaxPoints points and
// counts the dropped; once it is back exactly those arrive.
func TestBoundDropsTheOldest(t *testing.T) {
	s := newServer(t)
	w := newWriter()
	w.Set(&Target{URL: s.URL + "/api/v2/write?org=o&bucket=b", MaxPoints: 6})
	// Not running yet: nothing is pushed while the points come.
	w.Add([]byte(points("a", 4)))
	w.Add([]byte(points("b", 4)))
	w.Add([]byte(points("c", 4)))
	if n := testutil.ToFloat64(w.dropped); n != 6 {
		t.Errorf("%v dropped, want 6", n)
	}
	start(t, w)
	got := waitFor(t, s, 6)
	want := strings.Split(strings.TrimSuffix(points("b", 4)+points("c", 4), "\n"), "\n")[2:]
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant the newest six\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A 400 is for good: the points are dropped and counted, not retried,
// and the error is visible.
func TestRefusedPointsAreDroppedAndCounted(t *testing.T) {
	s := newServer(t, 400)
	w := newWriter()
	w.Set(&Target{URL: s.URL + "/write?db=x", MaxPoints: 100})
	start(t, w)
	w.Add([]byte(points("x", 2)))
	<-s.arrived
	w.Add([]byte(points("y", 1)))
	got := waitFor(t, s, 1)
	if len(got) != 1 || !strings.HasSuffix(got[0], " y0") {
		t.Errorf("got %q, want only the point after the refused ones", got)
	}
	if n := testutil.ToFloat64(w.dropped); n != 2 {
		t.Errorf("%v dropped, want 2", n)
	}
}
