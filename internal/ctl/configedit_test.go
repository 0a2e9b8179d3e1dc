package ctl

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/inventory"
)

// config add and remove change one entry and leave the others byte for
// byte; put, validate, add refuse a path outside the live agent's published
// allowlist (with the agent's own message) and say when the agent is not
// live; config get says whether the agent applied the stored value.
func TestConfigEditsOneEntryWithinTheAgentsAllowlist(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	key := "/logagent/10.0.0.1/collect_config"
	report := func(r inventory.Report) {
		b, _ := json.Marshal(r)
		etcd.Put("/logagent/agents/10.0.0.1", string(b))
	}
	report(inventory.Report{IP: "10.0.0.1", Version: "t", AllowedPaths: []string{"/var/log/**"}})
	stored := func() string {
		resp, err := etcd.Client().Get(context.Background(), key)
		if err != nil || len(resp.Kvs) == 0 {
			t.Fatalf("get %s: %v", key, err)
		}
		return string(resp.Kvs[0].Value)
	}
	mustRun := func(want int, args ...string) (string, string) {
		t.Helper()
		code, out, errOut := run(t, "", append([]string{ep}, args...)...)
		if code != want {
			t.Fatalf("logctl %v: exit %d, want %d\n%s%s", args, code, want, out, errOut)
		}
		return out, errOut
	}
	out, _ := mustRun(0, "config", "add", "10.0.0.1", `{"path":"/var/log/a.log","topic":"web","fields":{"service":"shop"}}`)
	if !strings.Contains(out, "added /var/log/a.log → web") || !strings.Contains(out, "within the agent's allowed_paths") {
		t.Errorf("add: %q", out)
	}
	first := stored()
	mustRun(0, "config", "add", "10.0.0.1", `{"path":"/var/log/b/*.log","topic":"app","multiline":"^\\d"}`)
	var entries []json.RawMessage
	if err := json.Unmarshal([]byte(stored()), &entries); err != nil || len(entries) != 2 || "["+string(entries[0])+"]" != first {
		t.Fatalf("after a second add: %s (the first entry must stay as it was: %s)", stored(), first)
	}
	out, _ = mustRun(0, "config", "add", "10.0.0.1", `{"path":"/var/log/a.log","topic":"web"}`)
	if !strings.Contains(out, "replaced the entry for /var/log/a.log → web") || strings.Count(stored(), `"path"`) != 2 || strings.Contains(stored(), "shop") {
		t.Errorf("replace: %q, stored %s", out, stored())
	}
	// Outside the allowlist: refused by add, put and validate alike, with
	// the agent's own words; nothing written.
	before := stored()
	_, errOut := mustRun(1, "config", "add", "10.0.0.1", `{"path":"/etc/shadow","topic":"web"}`)
	if !strings.Contains(errOut, `path "/etc/shadow" is outside [agent] allowed_paths (/var/log/**)`) || stored() != before {
		t.Errorf("add outside the allowlist: %q", errOut)
	}
	code, _, errOut := run(t, `[{"path":"/etc/shadow","topic":"web"}]`, ep, "config", "put", "10.0.0.1", "-")
	if code != 1 || !strings.Contains(errOut, "the agent at 10.0.0.1 would refuse it") || stored() != before {
		t.Errorf("put outside the allowlist: %d %q", code, errOut)
	}
	bad := t.TempDir() + "/bad.json"
	if err := os.WriteFile(bad, []byte(`[{"path":"/etc/shadow","topic":"web"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut = run(t, "", ep, "config", "validate", "10.0.0.1", bad); code != 1 || !strings.Contains(errOut, "is outside [agent] allowed_paths") {
		t.Errorf("validate outside the allowlist: %d %q", code, errOut)
	}
	// An agent that is not live: said so, the parser's check only.
	_, errOut = mustRun(0, "config", "add", "10.0.0.2", `{"path":"/etc/hosts","topic":"web"}`)
	if !strings.Contains(errOut, "the agent at 10.0.0.2 is not live") {
		t.Errorf("not live: %q", errOut)
	}
	// remove: one path's entries; the others stay.
	out, _ = mustRun(0, "config", "remove", "10.0.0.1", "/var/log/a.log")
	if !strings.Contains(out, "removed 1 entry for /var/log/a.log") || strings.Contains(stored(), "a.log") || !strings.Contains(stored(), "/var/log/b/*.log") {
		t.Errorf("remove: %q, stored %s", out, stored())
	}
	_, errOut = mustRun(1, "config", "remove", "10.0.0.1", "/var/log/none.log")
	if !strings.Contains(errOut, "no entry of the collect config collects /var/log/none.log") {
		t.Errorf("remove nothing: %q", errOut)
	}
	// get: applied or not, from the agent's inventory entry.
	resp, _ := etcd.Client().Get(context.Background(), key)
	rev := resp.Kvs[0].ModRevision
	report(inventory.Report{IP: "10.0.0.1", AllowedPaths: []string{"/var/log/**"}, ConfigRevision: rev})
	out, errOut = mustRun(0, "config", "get", "10.0.0.1")
	if !strings.HasSuffix(out, "]\n") || !strings.Contains(errOut, "the one the agent at 10.0.0.1 applied") {
		t.Errorf("get, applied: %q %q", out, errOut)
	}
	report(inventory.Report{IP: "10.0.0.1", AllowedPaths: []string{"/var/log/**"}, ConfigRevision: rev - 1, ConfigError: "entry 0: topic \"a b\" is not a valid topic"})
	_, errOut = mustRun(0, "config", "get", "10.0.0.1")
	if !strings.Contains(errOut, "NOT applied by the agent at 10.0.0.1") || !strings.Contains(errOut, `topic "a b" is not a valid topic`) {
		t.Errorf("get, refused: %q", errOut)
	}
}
