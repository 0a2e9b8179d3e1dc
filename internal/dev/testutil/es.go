package testutil

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ESClient speaks raw REST to a search node (real or fake), for tests that
// check what was stored without going through the code under test.
type ESClient struct {
	URL string
}

// Do sends a request and returns the status and body; a transport error
// fails the test.
func (c ESClient) Do(t testing.TB, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		ct := "application/json"
		if strings.HasPrefix(path, "/_bulk") || strings.Contains(path, "/_bulk") {
			ct = "application/x-ndjson"
		}
		req.Header.Set("Content-Type", ct)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// JSON sends a request and decodes the answer into out (if not nil),
// failing the test unless the status is want.
func (c ESClient) JSON(t testing.TB, want int, method, path, body string, out any) {
	t.Helper()
	st, b := c.Do(t, method, path, body)
	if st != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, st, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
}

// shardsUp is JSON for a search that an index created a moment ago
// answers 503 (no shard available) until its shard has started (CI saw
// it): it asks again until the shard is up, 30 s at most.
func (c ESClient) shardsUp(t testing.TB, path, body string, out any) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, b := c.Do(t, "POST", path, body)
		if st == http.StatusServiceUnavailable && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond) // polling the server's state, not waiting for our own code
			continue
		}
		if st != http.StatusOK {
			t.Fatalf("POST %s: status %d, want 200: %s", path, st, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("POST %s: decoding %s: %v", path, b, err)
		}
		return
	}
}

// Count refreshes index (a pattern may be given) and counts the documents
// matching query (a JSON query clause; "" for all). A missing index counts 0.
func (c ESClient) Count(t testing.TB, index, query string) int {
	t.Helper()
	c.Do(t, "POST", "/"+index+"/_refresh?ignore_unavailable=true&allow_no_indices=true", "")
	body := ""
	if query != "" {
		body = `{"query":` + query + `}`
	}
	st, b := c.Do(t, "POST", "/"+index+"/_count?ignore_unavailable=true&allow_no_indices=true", body)
	// A new index answers 503 until its shard has started.
	for deadline := time.Now().Add(30 * time.Second); st == http.StatusServiceUnavailable && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		st, b = c.Do(t, "POST", "/"+index+"/_count?ignore_unavailable=true&allow_no_indices=true", body)
	}
	if st == http.StatusNotFound {
		return 0
	}
	var r struct{ Count int }
	if st != http.StatusOK || json.Unmarshal(b, &r) != nil {
		t.Fatalf("count %s %s: %d %s", index, query, st, b)
	}
	return r.Count
}

// Hit is one search hit.
type Hit struct {
	Index   string          `json:"_index"`
	ID      string          `json:"_id"`
	Version int64           `json:"_version"`
	Source  json.RawMessage `json:"_source"`
}

// Search refreshes index and returns up to size hits of query, with their
// versions.
func (c ESClient) Search(t testing.TB, index, query string, size int) []Hit {
	t.Helper()
	c.Do(t, "POST", "/"+index+"/_refresh?ignore_unavailable=true&allow_no_indices=true", "")
	if query == "" {
		query = `{"match_all":{}}`
	}
	var r struct {
		Hits struct{ Hits []Hit }
	}
	body := `{"version":true,"size":` + itoa(size) + `,"query":` + query + `}`
	c.JSON(t, http.StatusOK, "POST", "/"+index+"/_search?ignore_unavailable=true&allow_no_indices=true", body, &r)
	return r.Hits.Hits
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// Scan refreshes index and pages through every document in the order of
// sort (a JSON array of sort clauses that together are unique, e.g.
// partition and offset), with versions and, if source, the sources,
// calling f for each (search_after, so any number of documents).
func (c ESClient) Scan(t testing.TB, index, sort string, source bool, f func(Hit)) {
	t.Helper()
	c.Do(t, "POST", "/"+index+"/_refresh?ignore_unavailable=true&allow_no_indices=true", "")
	after := ""
	for {
		body := `{"size":2000,"version":true,"_source":` + strconv.FormatBool(source) + `,"sort":` + sort + after + `}`
		var res struct {
			Hits struct {
				Hits []struct {
					Hit
					Sort []json.RawMessage `json:"sort"`
				}
			}
		}
		c.shardsUp(t, "/"+index+"/_search?ignore_unavailable=true&allow_no_indices=true", body, &res)
		hits := res.Hits.Hits
		if len(hits) == 0 {
			return
		}
		for _, h := range hits {
			f(h.Hit)
		}
		last, _ := json.Marshal(hits[len(hits)-1].Sort)
		after = `,"search_after":` + string(last)
	}
}
