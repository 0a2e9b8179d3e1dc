package config

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/security"
)

const tlsKeys4 = `tls_ca = testdata/tls/ca.pem
tls_cert = testdata/tls/client.pem
tls_key = testdata/tls/client-key.pem
`

func TestSecretsFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	apiKeyFile := filepath.Join(dir, "api_key")
	if err := os.WriteFile(apiKeyFile, []byte("es-api-key-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOGPIPE_TEST_SASL", "sasl-from-env")
	t.Setenv("LOGPIPE_TEST_ETCD", "etcd-from-env")
	cfg, err := ParseTransfer("t.ini", []byte(`[kafka]
topics = a
sasl_mechanism = plain
sasl_user = logtransfer
sasl_password = env:LOGPIPE_TEST_SASL
allow_insecure_auth = true
[etcd]
username = logtransfer
password = env:LOGPIPE_TEST_ETCD
allow_insecure_auth = true
[es]
address = https://es:9200
api_key = file:`+apiKeyFile+`
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Kafka.Security.SASL; got.Mechanism != "plain" || got.User != "logtransfer" || got.Password.Reveal() != "sasl-from-env" {
		t.Errorf("sasl %#v / %q", got, got.Password.Reveal())
	}
	if got := cfg.Discovery.Security; got.Username != "logtransfer" || got.Password.Reveal() != "etcd-from-env" {
		t.Errorf("etcd %q", got.Password.Reveal())
	}
	if got := cfg.ES.APIKey.Reveal(); got != "es-api-key-from-file" {
		t.Errorf("api_key %q", got)
	}

	// Literal values stay allowed.
	cfg, err = ParseTransfer("t.ini", []byte("[kafka]\ntopics = a\n[es]\nusername = elastic\npassword = literal-pw\nallow_insecure_auth = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ES.Username != "elastic" || cfg.ES.Password.Reveal() != "literal-pw" {
		t.Errorf("literal password %q", cfg.ES.Password.Reveal())
	}
}

// TestSecretErrors: an unresolvable secret stops the load naming the key,
// and no error ever quotes a secret value.
func TestSecretErrors(t *testing.T) {
	t.Setenv("LOGPIPE_TEST_EMPTY", "")
	t.Setenv("LOGPIPE_TEST_SET", "env-value-not-printed")
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct{ ini, want string }{
		{"[kafka]\ntopics = a\n[es]\nusername = u\npassword = env:LOGPIPE_TEST_UNSET_VAR\n",
			"t.ini:5: [es] password: environment variable LOGPIPE_TEST_UNSET_VAR is not set"},
		{"[kafka]\ntopics = a\n[es]\napi_key = env:LOGPIPE_TEST_EMPTY\n",
			"t.ini:4: [es] api_key: environment variable LOGPIPE_TEST_EMPTY is empty"},
		{"[kafka]\ntopics = a\n[es]\napi_key = file:" + missing + "\n",
			"t.ini:4: [es] api_key: reading secret: open " + missing + ": no such file or directory"},
		{"[kafka]\ntopics = a\nsasl_mechanism = scram-sha-256\nsasl_user = u\nsasl_password = file:\n",
			"t.ini:5: [kafka] sasl_password: file: needs a path (file:/path)"},
		// Bad combinations around literal and resolved secrets.
		{"[kafka]\ntopics = a\nsasl_password = literal-not-printed\n",
			"t.ini:3: [kafka] sasl_password: is set but sasl_mechanism is none"},
		{"[kafka]\ntopics = a\n[es]\nusername = u\napi_key = env:LOGPIPE_TEST_SET\npassword = literal-not-printed\n",
			"t.ini:5: [es] api_key: set either username/password or api_key, not both"},
		{"[kafka]\ntopics = a\n[etcd]\npassword = env:LOGPIPE_TEST_SET\n",
			"t.ini:4: [etcd] password: needs username"},
		{"[kafka]\ntopics = a\n[etcd]\naddress = https://root:literal-not-printed@etcd:2379\n",
			`t.ini:4: [etcd] address: "https://xxxxx@etcd:2379": credentials in an address are not allowed (use the username and password keys)`},
		{"[kafka]\ntopics = a\n[es]\naddress = http://elastic:literal-not-printed@es:9200\n",
			`t.ini:4: [es] address: "http://xxxxx@es:9200": credentials in the URL are not allowed (use username/password or api_key)`},
		{"[kafka]\ntopics = a\n[es]\naddress = http://elastic:literal-not-printed@es:9200:x\n",
			`t.ini:4: [es] address: "http://xxxxx@es:9200:x" is not an http(s) URL`},
	} {
		_, err := ParseTransfer("t.ini", []byte(tc.ini))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseTransfer(%q):\n got %v\nwant %s", tc.ini, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "not-printed") {
			t.Errorf("error quotes a secret: %v", err)
		}
	}
}

// TestSecretsNeverPrinted loads configs holding every kind of secret and
// prints them every way a log line could: fmt verbs, logrus text and JSON
// formatters, encoding/json.
func TestSecretsNeverPrinted(t *testing.T) {
	t.Setenv("LOGPIPE_TEST_ETCD_PASSWORD", "etcd-secret")
	agent, err := LoadAgent("testdata/good.ini")
	if err != nil {
		t.Fatal(err)
	}
	transfer, err := ParseTransfer("t.ini", []byte(`[kafka]
topics = a
sasl_mechanism = scram-sha-256
sasl_user = u
sasl_password = kafka-secret
[etcd]
username = u
password = etcd-secret
allow_insecure_auth = true
[es]
username = elastic
password = es-secret
allow_insecure_auth = true
`))
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := ParseTransfer("t.ini", []byte("[kafka]\ntopics = a\n[es]\napi_key = es-api-key-secret\nallow_insecure_auth = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"kafka-secret", "etcd-secret", "es-secret", "es-api-key-secret"}
	var out bytes.Buffer
	for _, v := range []any{agent, *agent, transfer, *transfer, keyed, keyed.ES, transfer.Kafka.Security, agent.Etcd} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		for _, f := range []logrus.Formatter{&logrus.TextFormatter{}, &logrus.JSONFormatter{}} {
			l := logrus.New()
			l.SetOutput(&out)
			l.SetFormatter(f)
			l.WithField("cfg", v).WithField("password", transfer.ES.Password).Info("configured")
		}
	}
	for _, s := range secrets {
		if strings.Contains(out.String(), s) {
			t.Fatalf("secret %q printed:\n%s", s, out.String())
		}
	}
	if !strings.Contains(out.String(), "[redacted]") {
		t.Fatal("expected [redacted] placeholders")
	}
	if got := fmt.Sprintf("%v|%s|%q", Secret{}, Secret{}, NewSecret("x")); got != "||[redacted]" {
		t.Errorf("formatting: %s", got)
	}
}

func TestTLSValues(t *testing.T) {
	// [es]: TLS follows the https URLs.
	cfg, err := ParseTransfer("t.ini", []byte("[kafka]\ntopics = a\n[es]\naddress = http://es1:9200, https://es2:9200\n"+tlsKeys4+"tls_server_name = es.internal\n"))
	if err != nil {
		t.Fatal(err)
	}
	tc := cfg.ES.TLS.Config()
	if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != "es.internal" || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("es tls %+v", tc)
	}
	if tc == cfg.ES.TLS.Config() {
		t.Error("Config must return a copy")
	}
	cfg, err = ParseTransfer("t.ini", []byte("[kafka]\ntopics = a\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ES.TLS.Config() != nil || cfg.Kafka.Security.TLS.Config() != nil || cfg.Discovery.Security.TLS.Config() != nil {
		t.Error("TLS on by default")
	}

	// [etcd]: https:// endpoints switch TLS on (system roots without tls_ca).
	cfg, err = ParseTransfer("t.ini", []byte("[etcd]\ndiscover_topics = true\naddress = https://etcd1:2379\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tc := cfg.Discovery.Security.TLS.Config(); tc == nil || tc.RootCAs != nil {
		t.Errorf("etcd https without tls_ca: %+v", tc)
	}
	// tls = true with host:port endpoints, insecure skip verify for tests.
	a, err := ParseAgent("a.ini", []byte("[etcd]\naddress = etcd1:2379\ntls = true\ntls_insecure_skip_verify = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if tc := a.Etcd.Security.TLS.Config(); tc == nil || !tc.InsecureSkipVerify {
		t.Errorf("etcd insecure: %+v", tc)
	}
}

// TestTLSBuiltByHand: a TLS value not produced by the loader reads its
// files on use; bad files fail every handshake instead of weakening it.
func TestTLSBuiltByHand(t *testing.T) {
	good := TLS{Enabled: true, Files: security.Files{CA: "testdata/tls/ca.pem"}}
	if tc := good.Config(); tc == nil || tc.RootCAs == nil || tc.VerifyConnection != nil {
		t.Errorf("hand-built TLS %+v", tc)
	}
	bad := TLS{Enabled: true, Files: security.Files{CA: "testdata/tls/missing.pem"}}
	tc := bad.Config()
	if tc == nil || tc.VerifyConnection == nil {
		t.Fatalf("hand-built TLS with a bad CA: %+v", tc)
	}
	if err := tc.VerifyConnection(tls.ConnectionState{}); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("VerifyConnection = %v", err)
	}
	if (TLS{Files: security.Files{CA: "x"}}).Config() != nil {
		t.Error("disabled TLS returned a config")
	}
	if _, err := NewTLS(security.Files{CA: "testdata/good.ini"}); err == nil {
		t.Error("NewTLS accepted a CA without certificates")
	}
}
