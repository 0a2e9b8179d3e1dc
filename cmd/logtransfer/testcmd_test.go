package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// logtransfer test config prints the effective settings, secrets redacted,
// and exits 0; an invalid ini exits 1 naming the line at fault.
func TestTestConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.ini")
	secret := "s3cr3t-do-not-print"
	if err := os.WriteFile(good, []byte("[es]\naddress = https://127.0.0.1:9200\nusername = elastic\npassword = "+secret+
		"\n[kafka]\ntopics = nginx, app\nsasl_mechanism = scram-sha-512\nsasl_user = transfer\nsasl_password = "+secret+
		"\n[transfer]\ndata_dir = "+dir+"\n[index]\nreplicas = 0\n[index.nginx]\nretention_days = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.ini")
	if err := os.WriteFile(bad, []byte("[kafka]\ntopics = nginx\n[transfer]\ndata_dir = "+dir+"\n[index]\nreplicas = many\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, int) { return testutil.Output(t, bins["logtransfer"], args...) }
	out, code := run("test", "config", "-config", good)
	t.Logf("logtransfer test config -config good.ini (exit %d):\n%s", code, out)
	if code != 0 || strings.Contains(out, secret) {
		t.Errorf("exit %d, or the secret printed", code)
	}
	for _, want := range []string{"OK", "password = [redacted]", "sasl_password = [redacted]", "username = elastic", "replicas = 0", "retention_days = 7", "; default"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	out, code = run("test", "config", "-config", bad)
	t.Logf("logtransfer test config -config bad.ini (exit %d):\n%s", code, out)
	if code != 1 || !strings.Contains(out, "bad.ini:6") || !strings.Contains(out, "replicas") {
		t.Errorf("exit %d, or the line at fault not named", code)
	}
	if out, code = run("test", "--help"); code != 0 || !strings.Contains(out, "test config|output") {
		t.Errorf("test --help: exit %d\n%s", code, out)
	}
}
