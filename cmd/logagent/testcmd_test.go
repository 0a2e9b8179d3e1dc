package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// logagent test config: 0 and the effective settings (no secret) for a
// valid file, 1 and the line at fault for an invalid one, 0 for --help.
func TestTestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ini")
	secret := "s3cr3t-do-not-print"
	if err := os.WriteFile(good, []byte("[etcd]\naddress = https://127.0.0.1:2379\ntls = true\nusername = agent\npassword = "+secret+"\n[agent]\ndata_dir = "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.ini")
	if err := os.WriteFile(bad, []byte("[agent]\nmax_line_bytes = lots\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) { return testutil.Output(t, bins["logagent"], args...) }
	out, code := run("test", "config", "-config", good)
	t.Logf("logagent test config -config good.ini (exit %d):\n%s", code, out)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "password = [redacted]") || strings.Contains(out, secret) ||
		!strings.Contains(out, "username = agent") || !strings.Contains(out, "; default") {
		t.Errorf("exit %d", code)
	}
	out, code = run("test", "config", "-config", bad)
	t.Logf("logagent test config -config bad.ini (exit %d):\n%s", code, out)
	if code != 1 || !strings.Contains(out, "bad.ini:2: [agent] max_line_bytes") {
		t.Errorf("exit %d", code)
	}
	if out, code = run("test", "--help"); code != 0 || !strings.Contains(out, "test config|output") {
		t.Errorf("test --help: exit %d\n%s", code, out)
	}
}
