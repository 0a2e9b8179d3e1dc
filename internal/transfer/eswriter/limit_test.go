package eswriter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestResponsesAreLimited(t *testing.T) {
	const max = 64 << 10
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := max
		switch r.URL.Path {
		case "/endless":
			n = 100 * max // streamed: no Content-Length
			w.(http.Flusher).Flush()
		case "/declared":
			n = 2 * max
			w.Header().Set("Content-Length", "131072")
		}
		chunk := strings.Repeat("x", 1024)
		for i := 0; i < n/1024; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c := &http.Client{Transport: LimitResponses(nil, max)}
	get := func(path string) (int, error) {
		resp, err := c.Get(srv.URL + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return len(b), err
	}
	if n, err := get("/exact"); err != nil || n != max {
		t.Fatalf("a body of exactly the limit: %d bytes, %v", n, err)
	}
	if n, err := get("/endless"); err == nil || n > max {
		t.Fatalf("an endless body: read %d bytes, err %v; want an error by %d", n, err, max)
	}
	if _, err := get("/declared"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a declared oversized body: %v", err)
	}
}
