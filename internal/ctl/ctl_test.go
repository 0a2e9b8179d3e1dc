package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
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

// TestOutputEscapesControlCharacters: whatever an agent's inventory,
// a collect config or an error holds, nothing logctl prints for a human
// carries a raw control character (a path holding an OSC sequence and a
// terminal reset once retitled and reset the operator's terminal).
func TestOutputEscapesControlCharacters(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	evil := "/var/log/\x1b]0;pwned\x07\x1bc\r\u009b31m.log"
	inv := `{"host":"h\u001b[2J","ip":"10.0.0.7","version":"v\u0007","config_error":"bad \u001b]0;x\u0007",` +
		`"tasks":[{"path":` + string(must(json.Marshal(evil))) + `,"topic":"t","state":"running","reason":"r\u001bc"}]}`
	if _, err := etcd.Client().Put(context.Background(), "/logagent/agents/10.0.0.7", inv); err != nil {
		t.Fatal(err)
	}
	// A value that is not JSON is printed as it is stored: escaped too.
	if _, err := etcd.Client().Put(context.Background(), "/logagent/10.0.0.7/collect_config", "[\x1bc"); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"agents"}, {"status", "10.0.0.7"}, {"config", "get", "10.0.0.7"}, {"config", "validate", "10.0.0.7"}} {
		_, out, errOut := run(t, "", append([]string{ep}, args...)...)
		all := out + errOut
		if strings.ContainsFunc(all, func(r rune) bool { return (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f) }) {
			t.Errorf("logctl %v printed a control character:\n%q", args, all)
		}
		if !strings.Contains(all, `\x1b`) {
			t.Errorf("logctl %v shows no escaped ESC:\n%s", args, all)
		}
	}
	if got := Escape("a\x1b]0;x\x07\tb\u0085"); got != `a\x1b]0;x\x07`+"\tb"+`\u0085` {
		t.Errorf("Escape = %q", got)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// logctl metrics refuses what the agent would refuse, with its message,
// and writes nothing then.
func TestMetricsPutGetValidate(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	good := `{"interval":"10s","topic":"host_metrics","prometheus":true}`
	code, out, errOut := run(t, good, ep, "metrics", "put", "10.0.0.1", "-")
	if code != 0 || !strings.Contains(out, "OK /logagent/10.0.0.1/metrics_config: every 10s, outputs kafka, prometheus, topic host_metrics") {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	code, out, _ = run(t, "", ep, "metrics", "get", "10.0.0.1")
	if code != 0 || !strings.Contains(out, `"interval": "10s"`) {
		t.Fatalf("get: %d %q", code, out)
	}
	code, out, _ = run(t, "", ep, "metrics", "validate", "10.0.0.1")
	if code != 0 || !strings.Contains(out, "valid: every 10s") {
		t.Fatalf("validate: %d %q", code, out)
	}
	bad := `{"interval":"10s","influx":{"url":"http://x/write?db=a","token":"s3cret"}}`
	_, want := metricsconf.Parse([]byte(bad))
	code, _, errOut = run(t, bad, ep, "metrics", "put", "10.0.0.1", "-")
	if code != 1 || !strings.Contains(errOut, want.Error()) || !strings.Contains(errOut, "nothing written") || strings.Contains(errOut, "s3cret") {
		t.Fatalf("bad put: %d %q", code, errOut)
	}
	resp, err := etcd.Client().Get(context.Background(), "/logagent/10.0.0.1/metrics_config")
	if err != nil || string(resp.Kvs[0].Value) != good {
		t.Fatalf("stored value changed: %v %q", err, resp.Kvs[0].Value)
	}
}

// logctl completion prints a shell completion script (exit 0), for the
// commands and their flags.
func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := run(t, "", "completion", sh)
		if code != 0 || !strings.Contains(out, "logctl") || len(out) < 500 {
			t.Errorf("completion %s: %d %q %q", sh, code, out[:min(len(out), 200)], errOut)
		}
	}
	// The completion it gives for "config a" names the add command.
	code, out, _ := run(t, "", "__complete", "config", "a")
	if code != 0 || !strings.Contains(out, "add") {
		t.Errorf("__complete config a: %d %q", code, out)
	}
}
