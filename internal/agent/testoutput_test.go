package agent

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// logagent test output, against an etcd with TLS (client certificates) and
// auth, and a Kafka-protocol broker: every step passes when the config is
// right, and each way of getting it wrong stops the run at the step at
// fault with a reason that says what to change.
func TestTestOutputStopsAtTheStepAtFault(t *testing.T) {
	certs := testutil.NewCerts(t)
	etcd := testutil.StartSecureEtcd(t, certs)
	kafka := testutil.StartKafka(t, 3)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "web_log", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	root := etcd.Client("root", etcd.RootPassword)
	put := func(k, v string) {
		if _, err := root.Put(context.Background(), k, v); err != nil {
			t.Fatal(err)
		}
	}
	put("/logagent/10.0.0.7/collect_config", `[{"path":"/var/log/a.log","topic":"web_log"}]`)
	put("/logagent/10.0.0.8/collect_config", `[{"path":"/var/log/a.log","topic":"no_such_topic"}]`)
	put("/logagent/10.0.0.9/collect_config", `[{"path":"relative.log","topic":"web_log"}]`)
	other := testutil.NewCerts(t)
	ini := func(ip, etcdAddr, ca, password string) *config.AgentConfig {
		cfg, err := config.ParseAgent("test.ini", []byte(fmt.Sprintf(`[kafka]
address = %s
[etcd]
address = %s
timeout = 3s
tls = true
tls_ca = %s
tls_cert = %s
tls_key = %s
username = root
password = %s
[agent]
ip = %s
`, kafka.Addr(), etcdAddr, ca, certs.ClientCert, certs.ClientKey, password, ip)))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  *config.AgentConfig
		want []string // in the output, in order; the last is the failure ("" passes)
	}{
		{"everything right", ini("10.0.0.7", etcd.Endpoint(), certs.CA, etcd.RootPassword),
			[]string{"TLS handshake", "ok", "CN=localhost", "verified", "etcd API", "ok    etcd 3.", "auth", "authenticated as root",
				"read /logagent/10.0.0.7/collect_config", "collect config", "1 entries", "Kafka API and auth", "topic web_log", "3 partitions", "all checks passed"}},
		{"a wrong password", ini("10.0.0.7", etcd.Endpoint(), certs.CA, "not-the-password"),
			[]string{"TLS handshake", "ok", "auth", "FAIL", `etcd refused user "root" (check username and password)`}},
		{"a certificate from another CA", ini("10.0.0.7", etcd.Endpoint(), other.CA, etcd.RootPassword),
			[]string{"TLS handshake", "FAIL", "is not signed by the configured CA (tls_ca)"}},
		{"an unknown topic", ini("10.0.0.8", etcd.Endpoint(), certs.CA, etcd.RootPassword),
			[]string{"collect config", "ok", "topic no_such_topic", "FAIL", `topic "no_such_topic" does not exist in Kafka`}},
		{"an invalid collect config", ini("10.0.0.9", etcd.Endpoint(), certs.CA, etcd.RootPassword),
			[]string{"collect config", "FAIL", "is invalid (the agent would keep its last good one)"}},
		{"nothing listening", ini("10.0.0.7", fmt.Sprintf("https://127.0.0.1:%d", testutil.FreePort(t)), certs.CA, etcd.RootPassword),
			[]string{"TCP 127.0.0.1:", "FAIL", "connection refused"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := TestOutput(ctx, tc.cfg, &out)
			t.Logf("logagent test output (%s):\n%s", tc.name, out.String())
			last := tc.want[len(tc.want)-1]
			if (err == nil) != (last == "all checks passed") {
				t.Fatalf("error %v", err)
			}
			if w := testutil.MissingInOrder(out.String(), tc.want...); w != "" {
				t.Fatalf("output lacks %q (in order) after what came before", w)
			}
			if err != nil && !strings.Contains(out.String(), "FAILED: ") {
				t.Error("a failed run does not end with FAILED")
			}
		})
	}
}
