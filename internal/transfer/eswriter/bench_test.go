package eswriter

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkBulkBody measures building the NDJSON body of a bulk request.
// One op is one document.
func BenchmarkBulkBody(b *testing.B) {
	body := []byte(`{"@timestamp":"2026-11-23T10:00:00.000000000Z","message":"` + strings.Repeat("x", 200) +
		`","host":{"name":"web-1","ip":"10.0.0.1"},"log":{"file":{"path":"/var/log/a.log"},"offset":1024},"kafka":{"topic":"t","partition":1,"offset":42}}`)
	docs := make([]*Doc, 1000)
	for i := range docs {
		docs[i] = &Doc{Index: "t-2026.11.23", ID: fmt.Sprintf("0123456789abcdef0123456789abcdef-%d", i*200), Body: body}
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	var buf []byte
	for i := 0; i < b.N; i += len(docs) {
		buf = appendBody(buf[:0], docs)
	}
	if len(buf) == 0 {
		b.Fatal("empty body")
	}
}

func TestNoErrors(t *testing.T) {
	f := func(body string, want bool) {
		t.Helper()
		if got := noErrors([]byte(body)); got != want {
			t.Errorf("noErrors(%s) = %v", body, got)
		}
	}
	f(`{"took":3,"errors":false,"items":[]}`, true)
	f(`{"took":3, "errors" : false, "items":[]}`, true)
	f(`{"took":3,"errors":true,"items":[]}`, false)
	f(`{"took":3,"items":[{"index":{"status":201}}],"errors":false}`, true)
	f(`{"took":3,"items":[{"index":{"status":201,"_id":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}}],"errors":false}`, false) // too far: decode
	f(`{"took":3,"items":[{"index":{"status":400,"error":{"reason":"\"errors\":false"}}}],"errors":true}`, false)
	f(`{}`, false)
	f(``, false)
}
