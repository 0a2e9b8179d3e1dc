package transferd

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// secConfig is a transfer config with extra keys in [kafka], [etcd] and
// [es] (the tests here change addresses, so they cannot reuse env.config).
func secConfig(t *testing.T, kafkaAddr, esURL, kafka, etcd, es string) *config.TransferConfig {
	t.Helper()
	ini := fmt.Sprintf(`[kafka]
address = %s
session_timeout = 6s
%s
[etcd]
%s
[es]
address = %s
workers = 2
bulk_actions = 500
flush_interval = 50ms
retry_backoff_max = 500ms
%s
[http]
addr = 127.0.0.1:0
[log]
level = warn
`, kafkaAddr, kafka, etcd, esURL, es)
	if !strings.Contains(es, "shutdown_timeout") {
		ini += "[es]\nshutdown_timeout = 5s\n"
	}
	cfg, err := config.ParseTransfer("test.ini", []byte(ini))
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	if etcd == "" {
		cfg.VerifySignatures = false // unsigned test records, no etcd for keys
	} else {
		// The records are unsigned and their host has no key; the keys
		// are still read, over the same TLS and login.
		cfg.AcceptUnsigned = true
	}
	return cfg
}

func tlsKeys(ca, cert, key string) string {
	return fmt.Sprintf("tls_ca = %s\ntls_cert = %s\ntls_key = %s\n", ca, cert, key)
}

// producerWith is a franz-go producer with extra options (TLS, SASL).
func producerWith(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("unused"),
		kgo.ProducerLinger(5 * time.Millisecond), kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// readyz returns the daemon's /readyz status and body.
func readyz(t *testing.T, d *Daemon) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestKafkaTLS: the broker speaks only TLS and requires a client
// certificate signed by the test CA. The transfer's consumer group reads
// over TLS and its dead-letter producer writes over TLS; a transfer with
// the wrong CA, or without a client certificate, never joins and stores
// nothing.
func TestKafkaTLS(t *testing.T) {
	certs, other := testutil.NewCerts(t), testutil.NewCerts(t)
	kafka := testutil.StartKafka(t, 2, kfake.TLS(certs.ServerTLS(tls.RequireAndVerifyClientCert)))
	clientTLS := kgo.DialTLSConfig(certs.ClientTLS())
	e := &env{t: t, kafka: kafka, es: fakees.New(t), prod: producerWith(t, kafka.Addr(), clientTLS)}
	const n = 500
	e.es.SetItemFault(func(_, id string, _ []byte) int {
		if id == genID("ttls", 7) {
			return 400 // to the dead-letter topic
		}
		return 0
	})
	e.produce("ttls", 0, n)
	dlq := testutil.ConsumeWith(t, kafka.Addr(), []kgo.Opt{clientTLS}, "ttls.dlq")

	// The rejected ones first: they must still have nothing after the good
	// one has done all its work.
	wrongCA := secConfig(t, kafka.Addr(), e.es.URL(), "topics = ttls\ngroup_id = wrong-ca\ntls = true\n"+tlsKeys(other.CA, certs.ClientCert, certs.ClientKey), "", "")
	noCert := secConfig(t, kafka.Addr(), e.es.URL(), "topics = ttls\ngroup_id = no-cert\ntls = true\ntls_ca = "+certs.CA+"\n", "", "")
	plainText := secConfig(t, kafka.Addr(), e.es.URL(), "topics = ttls\ngroup_id = plaintext\n", "", "")
	var bad []*Daemon
	for _, cfg := range []*config.TransferConfig{wrongCA, noCert, plainText} {
		d, _ := e.start(cfg)
		bad = append(bad, d)
	}
	badSince := time.Now()

	good := secConfig(t, kafka.Addr(), e.es.URL(), "topics = ttls\ntls = true\n"+tlsKeys(certs.CA, certs.ClientCert, certs.ClientKey), "", "")
	d, _ := e.start(good)
	e.waitDocs(n-1, 60*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool { return dlq.Len() >= 1 }, testutil.Msg("a dead letter over TLS"))
	e.checkDocs("ttls", n, map[int]bool{7: true})
	if r := dlq.Records()[0]; r.Headers["event.id"] != "gen-ttls-7" || !strings.Contains(r.Headers["dlq.reason"], "400") {
		t.Fatalf("dead letter %+v", r)
	}
	if code, body := readyz(t, d); code != http.StatusOK {
		t.Fatalf("good transfer not ready: %d %s", code, body)
	}
	time.Sleep(time.Until(badSince.Add(4 * time.Second))) // ample time to connect and join
	for i, d := range bad {
		if d.Consumer().Joined() {
			t.Errorf("transfer %d joined the group without a valid TLS setup", i)
		}
		if code, body := readyz(t, d); code != http.StatusServiceUnavailable || !strings.Contains(body, "kafka: not a member") {
			t.Errorf("transfer %d /readyz = %d %q, want 503 for kafka", i, code, body)
		}
	}
	if got := e.es.Count(); got != n-1 {
		t.Errorf("%d documents stored, want %d (from the good transfer only)", got, n-1)
	}
}

// TestKafkaSASL runs the transfer against a broker that requires SASL,
// once per mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), with the
// password taken from the environment: it consumes and dead-letters
// through the authenticated connections. A wrong password never joins.
func TestKafkaSASL(t *testing.T) {
	const user, pass = "logtransfer", "sasl-pw-0123"
	kafka := testutil.StartKafka(t, 2, kfake.EnableSASL(),
		kfake.Superuser("PLAIN", user, pass), kfake.Superuser("SCRAM-SHA-256", user, pass), kfake.Superuser("SCRAM-SHA-512", user, pass))
	auth := kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())
	es := fakees.New(t)
	e := &env{t: t, kafka: kafka, es: es, prod: producerWith(t, kafka.Addr(), auth)}
	t.Setenv("LOGPIPE_TEST_SASL_PASSWORD", pass)
	t.Setenv("LOGPIPE_TEST_SASL_WRONG", "not-the-password")
	es.SetItemFault(func(_, id string, _ []byte) int {
		if strings.HasSuffix(id, "-3") {
			return 400
		}
		return 0
	})

	wrong := secConfig(t, kafka.Addr(), es.URL(), "topics = sasl_scram_sha_512\ngroup_id = wrong\nsasl_mechanism = scram-sha-512\nsasl_user = "+user+"\nsasl_password = env:LOGPIPE_TEST_SASL_WRONG\n", "", "")
	noAuth := secConfig(t, kafka.Addr(), es.URL(), "topics = sasl_scram_sha_512\ngroup_id = noauth\n", "", "")
	var bad []*Daemon
	for _, cfg := range []*config.TransferConfig{wrong, noAuth} {
		d, _ := e.start(cfg)
		bad = append(bad, d)
	}
	badSince := time.Now()

	const n = 200
	total := 0
	for _, mech := range []string{"plain", "scram-sha-256", "scram-sha-512"} {
		topic := "sasl_" + strings.ReplaceAll(mech, "-", "_")
		t.Run(mech, func(t *testing.T) {
			e.t = t
			e.produce(topic, 0, n)
			dlq := testutil.ConsumeWith(t, kafka.Addr(), []kgo.Opt{auth}, topic+".dlq")
			_, stop := e.start(secConfig(t, kafka.Addr(), es.URL(),
				"topics = "+topic+"\ngroup_id = g-"+mech+"\nsasl_mechanism = "+mech+"\nsasl_user = "+user+"\nsasl_password = env:LOGPIPE_TEST_SASL_PASSWORD\nallow_insecure_auth = true\n", "", "")) // kfake without TLS
			total += n - 1
			e.waitDocs(total, 60*time.Second)
			testutil.Eventually(t, 30*time.Second, func() bool { return dlq.Len() >= 1 }, testutil.Msg("a dead letter over %s", mech))
			e.checkDocs(topic, n, map[int]bool{3: true})
			stop()
		})
	}
	e.t = t
	time.Sleep(time.Until(badSince.Add(4 * time.Second)))
	for i, d := range bad {
		if d.Consumer().Joined() {
			t.Errorf("transfer %d joined without the right credentials", i)
		}
	}
	if got := es.IndexCount("sasl_scram_sha_512-2026.11.23"); got != n-1 {
		t.Errorf("%d documents in the SCRAM-SHA-512 index, want %d", got, n-1)
	}
	// Also check that a wrong PLAIN password fails (PLAIN compares the
	// password itself rather than a proof of it).
	plainClient, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()), kgo.SASL(plain.Auth{User: user, Pass: "nope"}.AsMechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer plainClient.Close()
	if err := plainClient.Ping(t.Context()); err == nil {
		t.Error("the broker accepted a wrong PLAIN password: the test setup proves nothing")
	}
}

// tlsProxy puts an https reverse proxy with the test server certificate in
// front of the fake Elasticsearch (which serves plain http); it requires
// client certificates signed by the test CA.
func tlsProxy(t *testing.T, certs *testutil.Certs, es *fakees.Server) string {
	t.Helper()
	target, err := url.Parse(es.URL())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(target))
	srv.TLS = certs.ServerTLS(tls.RequireAndVerifyClientCert)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the wrong-CA client's failed handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestElasticsearchTLS: the transfer indexes over https through a proxy
// with a certificate from the test CA that requires a client certificate,
// with basic auth (password from a file) or an API key (from the
// environment) arriving at the store; with the wrong CA nothing is sent.
func TestElasticsearchTLS(t *testing.T) {
	certs, other := testutil.NewCerts(t), testutil.NewCerts(t)
	kafka := testutil.StartKafka(t, 1)
	prod := producerWith(t, kafka.Addr())
	pwFile := filepath.Join(t.TempDir(), "es-password")
	if err := os.WriteFile(pwFile, []byte("es-pw-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	apiKey := base64.StdEncoding.EncodeToString([]byte("id:api-key-from-env"))
	t.Setenv("LOGPIPE_TEST_ES_API_KEY", apiKey)

	for _, tc := range []struct {
		name, auth string
		check      func(http.Header) bool
	}{
		{"basic", "username = elastic\npassword = file:" + pwFile + "\n", func(h http.Header) bool {
			u, p, ok := (&http.Request{Header: h}).BasicAuth()
			return ok && u == "elastic" && p == "es-pw-from-file"
		}},
		{"apikey", "api_key = env:LOGPIPE_TEST_ES_API_KEY\n", func(h http.Header) bool {
			return h.Get("Authorization") == "ApiKey "+apiKey
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es := fakees.New(t)
			var rejected atomic.Int64
			es.SetAuthCheck(func(h http.Header) bool {
				if tc.check(h) {
					return true
				}
				rejected.Add(1)
				return false
			})
			proxy := tlsProxy(t, certs, es)
			if !strings.HasPrefix(proxy, "https://127.0.0.1:") {
				t.Fatalf("proxy URL %s", proxy)
			}
			topic := "es_tls_" + tc.name
			e := &env{t: t, kafka: kafka, es: es, prod: prod}
			e.produce(topic, 0, 300)

			// Wrong CA: no request reaches the store, /readyz says why.
			wrong, stopWrong := e.start(secConfig(t, kafka.Addr(), proxy, "topics = "+topic+"\ngroup_id = wrong-"+tc.name+"\n", "",
				tc.auth+"manage_templates = false\nshutdown_timeout = 0\n"+tlsKeys(other.CA, certs.ClientCert, certs.ClientKey)))
			testutil.Eventually(t, 20*time.Second, func() bool {
				code, body := readyz(t, wrong)
				return code == http.StatusServiceUnavailable && strings.Contains(body, "elasticsearch: ") && wrong.Consumer().Joined()
			}, testutil.Msg("the wrong-CA transfer to consume and fail to reach Elasticsearch"))
			// Stopped, it has sent all it ever will: nothing may be there.
			stopWrong()
			if n := len(es.Requests()); n != 0 {
				t.Fatalf("%d requests reached the store through a proxy whose certificate the client should reject: %v", n, es.Requests())
			}

			_, stop := e.start(secConfig(t, kafka.Addr(), proxy, "topics = "+topic+"\ngroup_id = good-"+tc.name+"\n", "",
				tc.auth+tlsKeys(certs.CA, certs.ClientCert, certs.ClientKey)))
			e.waitDocs(300, 60*time.Second)
			e.checkDocs(topic, 300, nil)
			if len(es.Templates()) == 0 {
				t.Error("no index template was installed over https")
			}
			if r := rejected.Load(); r != 0 {
				t.Errorf("%d requests arrived without the right credentials", r)
			}
			stop()
		})
	}
}

// TestDiscoveryOverEtcdTLSWithAuth: topic discovery reads the agents'
// configs from an etcd that serves only https, requires client
// certificates and has auth on; the transfer logs in as its own user. A
// wrong password stops it at start, without printing the password.
func TestDiscoveryOverEtcdTLSWithAuth(t *testing.T) {
	certs := testutil.NewCerts(t)
	etcd := testutil.StartSecureEtcd(t, certs)
	etcd.AddUser("logtransfer", "etcd-pw-xyz", "/logagent/")
	e := newEnv(t, 1)
	etcdKeys := func(pass string) string {
		return "discover_topics = true\naddress = " + etcd.Endpoint() + "\ntimeout = 3s\n" + tlsKeys(certs.CA, certs.ClientCert, certs.ClientKey) +
			"username = logtransfer\npassword = " + pass + "\n"
	}

	l := logrus.New()
	var logs bytes.Buffer
	l.SetOutput(&logs)
	_, err := New(secConfig(t, e.kafka.Addr(), e.es.URL(), "", etcdKeys("wrong-etcd-pw"), ""), Options{}, logrus.NewEntry(l))
	if err == nil || !strings.Contains(err.Error(), "authentication failed") {
		t.Fatalf("New with a wrong etcd password: %v, want an authentication error", err)
	}
	if strings.Contains(err.Error()+logs.String(), "wrong-etcd-pw") {
		t.Fatalf("the password was printed: %v\n%s", err, logs.String())
	}

	d, _ := e.start(secConfig(t, e.kafka.Addr(), e.es.URL(), "", etcdKeys("etcd-pw-xyz"), ""))
	etcd.Put("/logagent/10.0.0.9/collect_config", `[{"path":"/var/log/x.log","topic":"discovered"}]`)
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Join(d.Topics().List(), ",") == "discovered" },
		func() string { return fmt.Sprintf("topic discovered over TLS, have %v", d.Topics().List()) })
	e.produce("discovered", 0, 100)
	e.waitDocs(100, 60*time.Second)
	e.checkDocs("discovered", 100, nil)
}

// status is the daemon's /status body, for failure messages.
func status(t *testing.T, d *Daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.HTTPAddr() + "/status")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
