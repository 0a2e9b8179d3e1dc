package ctl

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/collectconf"
	"github.com/logpipe/logpipe/internal/testutil"
)

func run(t *testing.T, stdin string, args ...string) (code int, out, errOut string) {
	t.Helper()
	var o, e bytes.Buffer
	code = Run(args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestConfigPutGetValidate(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	good := `[{"path":"/var/log/a.log","topic":"a"}]`
	code, out, errOut := run(t, good, ep, "config", "put", "10.0.0.1", "-")
	if code != 0 || !strings.Contains(out, "OK /logagent/10.0.0.1/collect_config: 1 entries") {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, "", ep, "config", "get", "10.0.0.1")
	if code != 0 || !strings.Contains(out, `"topic": "a"`) {
		t.Fatalf("get: %d %q", code, out)
	}
	code, out, _ = run(t, "", ep, "config", "validate", "10.0.0.1")
	if code != 0 || !strings.Contains(out, "valid: 1 entries, topics a") {
		t.Fatalf("validate stored: %d %q", code, out)
	}

	// Invalid input is refused with the agent's own message, and etcd keeps
	// the old value.
	bad := `[{"path":"relative.log","topic":"a"}]`
	_, want := collectconf.Parse([]byte(bad))
	code, _, errOut = run(t, bad, ep, "config", "put", "10.0.0.1", "-")
	if code != 1 || !strings.Contains(errOut, want.Error()) || !strings.Contains(errOut, "nothing written") {
		t.Fatalf("bad put: %d %q", code, errOut)
	}
	resp, err := etcd.Client().Get(context.Background(), "/logagent/10.0.0.1/collect_config")
	if err != nil || string(resp.Kvs[0].Value) != good {
		t.Fatalf("stored value changed: %v %q", err, resp.Kvs[0].Value)
	}
	code, _, errOut = run(t, "", ep, "config", "get", "10.9.9.9")
	if code != 1 || !strings.Contains(errOut, "is not set") {
		t.Fatalf("get missing: %d %q", code, errOut)
	}
	if code, _, _ = run(t, "", ep, "config", "frobnicate"); code != 2 {
		t.Fatalf("unknown subcommand exit %d", code)
	}
}
