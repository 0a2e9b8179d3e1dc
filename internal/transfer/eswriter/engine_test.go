package eswriter

import "testing"

// The engines are told apart by their root endpoint: OpenSearch names
// itself in version.distribution; Elasticsearch has none (7.x has
// build_flavor). Versions the tests do not run are identified, not refused.
func TestParseEngineTellsTheEnginesApart(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		tested     bool
	}{
		{`{"name":"n","cluster_name":"c","version":{"number":"7.17.29","build_flavor":"default","lucene_version":"8.11.3"},"tagline":"You Know, for Search"}`, "Elasticsearch 7.17.29", true},
		{`{"name":"n","version":{"distribution":"opensearch","number":"2.19.6","lucene_version":"9.12.3"},"tagline":"The OpenSearch Project: https://opensearch.org/"}`, "OpenSearch 2.19.6", true},
		{`{"version":{"number":"8.17.0","build_flavor":"default"}}`, "Elasticsearch 8.17.0", false},
		{`{"version":{"distribution":"opensearch","number":"1.3.20"}}`, "OpenSearch 1.3.20", false},
	} {
		e, err := ParseEngine([]byte(tc.body))
		if err != nil || e.String() != tc.want || e.Tested != tc.tested {
			t.Errorf("%s: %v (tested %v), %v; want %s (tested %v)", tc.body, e, e.Tested, err, tc.want, tc.tested)
		}
	}
	for _, bad := range []string{``, `{}`, `{"version":{}}`, `<html>`, `{"version":"7"}`} {
		if e, err := ParseEngine([]byte(bad)); err == nil {
			t.Errorf("%q: %v, want an error", bad, e)
		}
	}
}
