package ctl

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// TestTLSAndAuth runs logctl against an etcd that serves only https,
// requires client certificates and has auth on, with etcdctl's flags
// (--cacert, --cert, --key, --user) or their environment variables.
func TestTLSAndAuth(t *testing.T) {
	certs, other := testutil.NewCerts(t), testutil.NewCerts(t)
	etcd := testutil.StartSecureEtcd(t, certs)
	etcd.AddUser("operator", "op-pw-1234", "/logagent/")
	ep := "--endpoints=" + etcd.Endpoint()
	tlsFlags := []string{"--cacert=" + certs.CA, "--cert=" + certs.ClientCert, "--key=" + certs.ClientKey}
	args := func(extra ...string) []string {
		return append(append([]string{ep, "--timeout=3s"}, extra...), "config", "get", "10.0.0.5")
	}
	good := `[{"path":"/var/log/a.log","topic":"a"}]`

	put := append(append([]string{ep}, tlsFlags...), "--user=operator:op-pw-1234", "config", "put", "10.0.0.5", "-")
	code, out, errOut := run(t, good, put...)
	if code != 0 || !strings.Contains(out, "OK /logagent/10.0.0.5/collect_config: 1 entries") {
		t.Fatalf("put over TLS with a user: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run(t, "", args(append(tlsFlags, "--user=operator:op-pw-1234")...)...)
	if code != 0 || !strings.Contains(out, `"topic": "a"`) {
		t.Fatalf("get over TLS with a user: %d %q %q", code, out, errOut)
	}

	// The password from the environment, the files from etcdctl's
	// variables.
	t.Setenv("ETCDCTL_PASSWORD", "op-pw-1234")
	t.Setenv("ETCDCTL_CACERT", certs.CA)
	t.Setenv("ETCDCTL_CERT", certs.ClientCert)
	t.Setenv("ETCDCTL_KEY", certs.ClientKey)
	code, out, errOut = run(t, "", args("--user=operator")...)
	if code != 0 || !strings.Contains(out, `"topic": "a"`) {
		t.Fatalf("get with ETCDCTL_PASSWORD and ETCDCTL_CACERT/CERT/KEY: %d %q %q", code, out, errOut)
	}
	t.Setenv("ETCDCTL_USER", "operator")
	code, out, errOut = run(t, "", "--endpoints="+etcd.Endpoint(), "config", "validate", "10.0.0.5")
	if code != 0 || !strings.Contains(out, "valid: 1 entries") {
		t.Fatalf("validate with everything from the environment: %d %q %q", code, out, errOut)
	}
	for _, k := range []string{"ETCDCTL_PASSWORD", "ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY", "ETCDCTL_USER"} {
		t.Setenv(k, "")
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong password", append(tlsFlags, "--user=operator:wrong-pw-secret"), "authentication failed"},
		{"user without password", append(tlsFlags, "--user=operator"), "--user operator has no password: give name:password or set ETCDCTL_PASSWORD"},
		{"empty user name", append(tlsFlags, "--user=:pw-secret"), "--user: empty user name"},
		// The client certificate's CN is no etcd user: auth is enforced.
		{"no user", tlsFlags, "permission denied"},
		{"wrong CA", []string{"--cacert=" + other.CA, "--cert=" + certs.ClientCert, "--key=" + certs.ClientKey, "--user=operator:op-pw-1234"}, "connecting to etcd"},
		{"no client certificate", []string{"--cacert=" + certs.CA, "--user=operator:op-pw-1234"}, "connecting to etcd"},
		{"missing CA file", []string{"--cacert=" + filepath.Join(t.TempDir(), "nope.pem")}, "--cacert: reading CA bundle: open "},
		{"key without cert", []string{"--cacert=" + certs.CA, "--key=" + certs.ClientKey}, "--key: a client key needs its certificate"},
	} {
		code, out, errOut := run(t, "", args(tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.name, code, out, errOut, tc.want)
		}
		if strings.Contains(errOut, "secret") {
			t.Errorf("%s: the password was printed: %q", tc.name, errOut)
		}
	}

	// etcd's client-certificate auth: a user named like the certificate's
	// CN needs no password.
	etcd.AddUser(testutil.ClientCN, "unused-pw", "/logagent/")
	code, out, errOut = run(t, "", args(tlsFlags...)...)
	if code != 0 || !strings.Contains(out, `"topic": "a"`) {
		t.Fatalf("get authenticated by the client certificate: %d %q %q", code, out, errOut)
	}

	// http:// with TLS flags would silently drop TLS in the etcd client.
	code, _, errOut = run(t, "", append([]string{"--endpoints=http://127.0.0.1:1", "--cacert=" + certs.CA}, "config", "get", "x")...)
	if code != 1 || !strings.Contains(errOut, "is plain http but TLS is on") {
		t.Errorf("http:// endpoint with --cacert: %d %q", code, errOut)
	}
}

// TestUsageHidesEnvironment: --help (and -h, and logctl alone) must not
// print ETCDCTL_* values (a password would end up in a terminal or a CI
// log); help asked for exits 0, help for a missing command 2.
func TestUsageHidesEnvironment(t *testing.T) {
	t.Setenv("ETCDCTL_USER", "root:env-secret-pw")
	t.Setenv("ETCDCTL_PASSWORD", "env-secret-pw")
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"config", "put", "--help"}, {}} {
		code, out, errOut := run(t, "", args...)
		want := 0
		if len(args) == 0 {
			want = 2
		}
		if code != want || !strings.Contains(out+errOut, "--cacert") || !strings.Contains(out+errOut, "--user") {
			t.Fatalf("logctl %v: %d %q %q", args, code, out, errOut)
		}
		if strings.Contains(out+errOut, "env-secret-pw") {
			t.Fatalf("logctl %v printed the password: %s%s", args, out, errOut)
		}
	}
	// config put --help is help, not an agent named --help waiting on stdin.
	if code, out, _ := run(t, "", "config", "put", "--help"); code != 0 || !strings.Contains(out, "put <ip> [file|-]") {
		t.Fatalf("config put --help: %d %q", code, out)
	}
}
