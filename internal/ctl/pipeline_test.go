package ctl

import (
	"context"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

func TestPipelineCommands(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	def := `[{"dissect": {"pattern": "%{level} %{msg}"}}, {"drop": {"field": "level", "equals": "DEBUG"}}]`
	code, out, errOut := run(t, def, ep, "pipeline", "put", "app", "-")
	if code != 0 || !strings.Contains(out, "OK /logtransfer/pipelines/app") {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	// Invalid definitions and names are refused; etcd keeps the old value.
	code, _, errOut = run(t, `[{"dissect": {"pattern": "%{level"}}]`, ep, "pipeline", "put", "app", "-")
	if code != 1 || !strings.Contains(errOut, "unclosed %{") || !strings.Contains(errOut, "nothing written") {
		t.Fatalf("bad put: %d %q", code, errOut)
	}
	resp, err := etcd.Client().Get(context.Background(), "/logtransfer/pipelines/app")
	if err != nil || string(resp.Kvs[0].Value) != def {
		t.Fatalf("stored value changed: %v", err)
	}
	if code, _, errOut = run(t, def, ep, "pipeline", "put", "nginx", "-"); code != 1 || !strings.Contains(errOut, "built-in") {
		t.Fatalf("put over a built-in: %d %q", code, errOut)
	}
	etcd.Put("/logtransfer/pipelines/broken", `[{"nope": {}}]`)
	code, out, _ = run(t, "", ep, "pipeline", "list")
	if code != 0 || !strings.Contains(out, "nginx") || !strings.Contains(out, "app ") || !strings.Contains(out, "broken") || !strings.Contains(out, "INVALID") {
		t.Fatalf("list: %d %q", code, out)
	}
	code, out, _ = run(t, "", ep, "pipeline", "get", "app")
	if code != 0 || !strings.Contains(out, `"pattern": "%{level} %{msg}"`) {
		t.Fatalf("get: %d %q", code, out)
	}
	code, out, errOut = run(t, "INFO hello\nDEBUG noise\nnospace\n", ep, "pipeline", "test", "app", "-")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 || !strings.Contains(lines[0], `"level":"INFO","msg":"hello"`) || lines[1] != "(dropped)" ||
		!strings.Contains(lines[2], `"error":{"message":"processor 0 (dissect)`) {
		t.Fatalf("test: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, `1.2.3.4 - - [23/Nov/2019:06:25:07 +0000] "GET / HTTP/1.1" 404 5`+"\n", ep, "pipeline", "test", "nginx", "-")
	if code != 0 || !strings.Contains(out, `"@timestamp":"2019-11-23T06:25:07Z"`) || !strings.Contains(out, `"http.response.status_code":404`) {
		t.Fatalf("test nginx: %d %q", code, out)
	}
}
