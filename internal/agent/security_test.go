package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// secAgent is one in-process agent of the security tests, with its own IP
// (so its own collect config key), data dir, log file and log sink.
type secAgent struct {
	a    *Agent
	ip   string
	file string
	logs *testutil.SyncBuffer
}

// startSecAgent starts an agent; extra adds keys to [kafka] and [etcd]
// (kafkaExtra, etcdExtra).
func startSecAgent(t *testing.T, ip, kafkaAddr, etcdAddr, kafkaExtra, etcdExtra string) *secAgent {
	t.Helper()
	cfg := secAgentConfig(t, ip, kafkaAddr, etcdAddr, kafkaExtra, etcdExtra)
	s := &secAgent{ip: ip, file: filepath.Join(t.TempDir(), "app.log"), logs: &testutil.SyncBuffer{}}
	a, err := newSecAgent(cfg, s.logs)
	if err != nil {
		t.Fatal(err)
	}
	s.a = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent %s Run: %v", ip, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("agent %s did not stop", ip)
		}
	})
	return s
}

func secAgentConfig(t *testing.T, ip, kafkaAddr, etcdAddr, kafkaExtra, etcdExtra string) *config.AgentConfig {
	t.Helper()
	ini := fmt.Sprintf(`[kafka]
address = %s
chan_max_size = 1000
flush_interval = 5ms
retry_backoff_max = 500ms
%s
[etcd]
address = %s
timeout = 3s
%s
[agent]
; tests read files under temp dirs
allowed_paths = /**
ip = %s
hostname = securehost
data_dir = %s
poll_interval = 20ms
scan_interval = 200ms
shutdown_timeout = 1s
[http]
addr = 127.0.0.1:0
[log]
level = debug
`, kafkaAddr, kafkaExtra, etcdAddr, etcdExtra, ip, t.TempDir())
	cfg, err := config.ParseAgent("test.ini", []byte(ini))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newSecAgent(cfg *config.AgentConfig, logs io.Writer) (*Agent, error) {
	l := logrus.New()
	l.SetOutput(logs)
	l.SetLevel(logrus.DebugLevel)
	return New(cfg, Options{Version: "test"}, logrus.NewEntry(l))
}

func (s *secAgent) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.a.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *secAgent) collectConfig(topic string) string {
	return fmt.Sprintf(`[{"path":%q,"topic":%q}]`, s.file, topic)
}

// checkLines asserts that recs hold exactly the lines prefix 0..n-1, once
// each, sent by agent ip.
func checkLines(t *testing.T, recs []testutil.Record, prefix, ip string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range recs {
		seen[string(r.Value)]++
		if r.Headers["host.ip"] != ip || r.Headers["host.name"] != "securehost" {
			t.Fatalf("record from the wrong agent: %v", r.Headers)
		}
	}
	for i := 0; i < n; i++ {
		if l := fmt.Sprintf("%s %d", prefix, i); seen[l] != 1 {
			t.Fatalf("line %q arrived %d times", l, seen[l])
		}
	}
	if len(recs) != n {
		t.Fatalf("%d records, want %d", len(recs), n)
	}
}

// TestKafkaTLS: the broker speaks only TLS and requires a client
// certificate from the test CA. The agent's producer sends over TLS with
// its client certificate and the lines are read back with a TLS consumer;
// agents with the wrong CA, without a client certificate or without TLS
// deliver nothing and are not ready.
func TestKafkaTLS(t *testing.T) {
	certs, other := testutil.NewCerts(t), testutil.NewCerts(t)
	kafka := testutil.StartKafka(t, 2, kfake.TLS(certs.ServerTLS(tls.RequireAndVerifyClientCert)))
	etcd := testutil.StartEtcd(t)
	keys := func(ca string) string {
		return fmt.Sprintf("tls = true\ntls_ca = %s\ntls_cert = %s\ntls_key = %s\n", ca, certs.ClientCert, certs.ClientKey)
	}

	bad := map[string]*secAgent{
		"wrong CA":  startSecAgent(t, "10.9.0.2", kafka.Addr(), etcd.Endpoint(), keys(other.CA), ""),
		"no cert":   startSecAgent(t, "10.9.0.3", kafka.Addr(), etcd.Endpoint(), "tls = true\ntls_ca = "+certs.CA+"\n", ""),
		"plaintext": startSecAgent(t, "10.9.0.4", kafka.Addr(), etcd.Endpoint(), "", ""),
	}
	for name, s := range bad {
		topic := "bad_" + strings.ReplaceAll(name, " ", "_")
		etcd.Put(s.a.Key(), s.collectConfig(topic))
		appendLines(t, s.file, name, 0, 50)
	}

	good := startSecAgent(t, "10.9.0.1", kafka.Addr(), etcd.Endpoint(), keys(certs.CA), "")
	etcd.Put(good.a.Key(), good.collectConfig("tls_log"))
	appendLines(t, good.file, "tls", 0, 200)
	cons := testutil.ConsumeWith(t, kafka.Addr(), []kgo.Opt{kgo.DialTLSConfig(certs.ClientTLS())}, "tls_log", "bad_wrong_CA", "bad_no_cert", "bad_plaintext")
	appendLines(t, good.file, "tls", 200, 100)
	testutil.Eventually(t, 30*time.Second, func() bool { return cons.Len() >= 300 }, func() string { return fmt.Sprintf("300 records, have %d", cons.Len()) })
	testutil.Eventually(t, 10*time.Second, func() bool { code, _ := good.readyz(t); return code == http.StatusOK }, testutil.Msg("the TLS agent ready"))

	checkLines(t, cons.Records(), "tls", "10.9.0.1", 300)
	for name, s := range bad {
		// Absence by events: the agent tried and failed, and a record
		// the test sends after that is read with nothing of the agent's
		// before it.
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(s.logs.String(), "cannot reach Kafka") },
			testutil.Msg("%s: the agent's failure to reach Kafka", name))
		if recs := cons.Fence(t, "bad_"+strings.ReplaceAll(name, " ", "_")); len(recs) != 0 {
			t.Errorf("%s: %d records arrived: %+v", name, len(recs), recs[0])
		}
		if code, body := s.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka: ") {
			t.Errorf("%s: /readyz = %d %q, want 503 for kafka", name, code, body)
		}
		if len(s.a.Status().Tasks) != 1 {
			t.Errorf("%s: the agent is not even collecting: %+v", name, s.a.Status())
		}
	}
	if !strings.Contains(bad["wrong CA"].logs.String(), "certificate signed by unknown authority") {
		t.Errorf("the wrong-CA agent does not say why it cannot reach Kafka:\n%s", bad["wrong CA"].logs.String())
	}
}

// TestKafkaSASL: the broker requires SASL. One agent per mechanism (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), with the password literal, from a file and
// from the environment, delivers every line; an agent with a wrong
// password delivers nothing and never logs the password.
func TestKafkaSASL(t *testing.T) {
	const user, pass = "logagent", "agent-sasl-pw-42"
	kafka := testutil.StartKafka(t, 2, kfake.EnableSASL(),
		kfake.Superuser("PLAIN", user, pass), kfake.Superuser("SCRAM-SHA-256", user, pass), kfake.Superuser("SCRAM-SHA-512", user, pass))
	etcd := testutil.StartEtcd(t)
	pwFile := filepath.Join(t.TempDir(), "kafka-password")
	if err := os.WriteFile(pwFile, []byte(pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOGPIPE_TEST_KAFKA_PASSWORD", pass)

	wrong := startSecAgent(t, "10.9.1.9", kafka.Addr(), etcd.Endpoint(),
		"sasl_mechanism = scram-sha-256\nsasl_user = "+user+"\nsasl_password = wrong-pw-not-logged\n", "")
	etcd.Put(wrong.a.Key(), wrong.collectConfig("sasl_wrong"))
	appendLines(t, wrong.file, "wrong", 0, 50)

	agents := map[string]*secAgent{}
	for i, tc := range []struct{ mech, password string }{
		{"plain", pass},
		{"scram-sha-256", "file:" + pwFile},
		{"scram-sha-512", "env:LOGPIPE_TEST_KAFKA_PASSWORD"},
	} {
		s := startSecAgent(t, fmt.Sprintf("10.9.1.%d", i+1), kafka.Addr(), etcd.Endpoint(),
			"sasl_mechanism = "+tc.mech+"\nsasl_user = "+user+"\nsasl_password = "+tc.password+"\nallow_insecure_auth = true\n", "") // kfake without TLS
		etcd.Put(s.a.Key(), s.collectConfig("sasl_"+strings.ReplaceAll(tc.mech, "-", "_")))
		appendLines(t, s.file, tc.mech, 0, 100)
		agents[tc.mech] = s
	}
	auth := kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism())
	for mech, s := range agents {
		cons := testutil.ConsumeWith(t, kafka.Addr(), []kgo.Opt{auth}, "sasl_"+strings.ReplaceAll(mech, "-", "_"))
		testutil.Eventually(t, 30*time.Second, func() bool { return cons.Len() >= 100 }, func() string { return fmt.Sprintf("%s: 100 records, have %d", mech, cons.Len()) })
		checkLines(t, cons.Records(), mech, s.ip, 100)
	}

	// Absence by events: the agent tried and failed, and a record the
	// test sends after that is read with nothing of the agent's before it.
	testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(wrong.logs.String(), "cannot reach Kafka") },
		testutil.Msg("the wrong-password agent's failure to reach Kafka"))
	wrongCons := testutil.ConsumeWith(t, kafka.Addr(), []kgo.Opt{auth}, "sasl_wrong")
	if recs := wrongCons.Fence(t, "sasl_wrong"); len(recs) != 0 {
		t.Fatalf("%d records arrived with a wrong password", len(recs))
	}
	if code, body := wrong.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka: ") {
		t.Errorf("wrong password: /readyz = %d %q", code, body)
	}
	logs := wrong.logs.String()
	if !strings.Contains(logs, "cannot reach Kafka") {
		t.Errorf("the agent does not report the failure:\n%s", logs)
	}
	if strings.Contains(logs, "wrong-pw-not-logged") {
		t.Errorf("the password was logged:\n%s", logs)
	}
}

// TestEtcdTLSAndAuth: etcd serves only https, requires client certificates
// and has auth on. The agent, logged in as its own user (password from
// the environment), gets its collect config and follows a change through
// the watch. A wrong password stops it at start without printing the
// password; without a user (the client certificate alone names no etcd
// user) it cannot read its config and is not ready.
func TestEtcdTLSAndAuth(t *testing.T) {
	certs := testutil.NewCerts(t)
	etcd := testutil.StartSecureEtcd(t, certs)
	etcd.AddUser("logagent", "etcd-agent-pw", "/logagent/")
	kafka := testutil.StartKafka(t, 1)
	tlsKeys := fmt.Sprintf("tls_ca = %s\ntls_cert = %s\ntls_key = %s\n", certs.CA, certs.ClientCert, certs.ClientKey)
	t.Setenv("LOGPIPE_TEST_ETCD_PASSWORD", "etcd-agent-pw")

	// A wrong password: New fails, naming the problem but not the password.
	logs := &testutil.SyncBuffer{}
	_, err := newSecAgent(secAgentConfig(t, "10.9.2.9", kafka.Addr(), etcd.Endpoint(), "", tlsKeys+"username = logagent\npassword = wrong-etcd-pw\n"), logs)
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("New with a wrong etcd password: %v", err)
	}
	if strings.Contains(err.Error()+logs.String(), "wrong-etcd-pw") {
		t.Fatalf("the password was printed: %v %s", err, logs.String())
	}

	// The https:// address switches TLS on without tls = true.
	s := startSecAgent(t, "10.9.2.1", kafka.Addr(), etcd.Endpoint(), "", tlsKeys+"username = logagent\npassword = env:LOGPIPE_TEST_ETCD_PASSWORD\n")
	noUser := startSecAgent(t, "10.9.2.2", kafka.Addr(), etcd.Endpoint(), "", tlsKeys)
	etcd.Put(s.a.Key(), s.collectConfig("etcd_tls"))
	etcd.Put(noUser.a.Key(), noUser.collectConfig("etcd_tls_nouser"))
	appendLines(t, s.file, "first", 0, 20)
	cons := testutil.Consume(t, kafka.Addr(), "etcd_tls", "etcd_tls2", "etcd_tls_nouser")
	testutil.Eventually(t, 30*time.Second, func() bool { return cons.Len() >= 20 }, func() string { return fmt.Sprintf("20 records, have %d", cons.Len()) })

	// A change arrives through the watch over the same connection.
	second := filepath.Join(filepath.Dir(s.file), "second.log")
	appendLines(t, second, "second", 0, 30)
	etcd.Put(s.a.Key(), fmt.Sprintf(`[{"path":%q,"topic":"etcd_tls"},{"path":%q,"topic":"etcd_tls2"}]`, s.file, second))
	testutil.Eventually(t, 30*time.Second, func() bool { return cons.Len() >= 50 }, func() string { return fmt.Sprintf("50 records, have %d", cons.Len()) })
	if code, body := s.readyz(t); code != http.StatusOK {
		t.Errorf("agent not ready: %d %s", code, body)
	}

	if code, body := noUser.readyz(t); code != http.StatusServiceUnavailable || !strings.Contains(body, "etcd: ") {
		t.Errorf("agent without an etcd user: /readyz = %d %q", code, body)
	}
	if st := noUser.a.Status(); st.Revision != 0 || len(st.Tasks) != 0 {
		t.Errorf("agent without an etcd user applied a config: %+v", st)
	}
	if recs := cons.Fence(t, "etcd_tls_nouser"); len(recs) != 0 {
		t.Fatalf("the agent without an etcd user collected: %+v", recs[0])
	}
	n := 0
	for _, r := range cons.Records() {
		if r.Topic != "etcd_tls_nouser" {
			n++
		}
	}
	if n != 50 {
		t.Errorf("%d records, want 50", n)
	}
}
