package transferd

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/config"
)

// logtransfer test output against a Kafka-protocol broker and a search
// engine that wants a password: every step passes when the config is
// right; a wrong password stops at the engine's auth, an unknown topic at
// Kafka's.
func TestTestOutputStopsAtTheStepAtFault(t *testing.T) {
	kafka := testutil.StartKafka(t, 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), &kgo.Record{Topic: "web_log", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	es := fakees.New(t)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("elastic:right"))
	es.SetAuthCheck(func(h http.Header) bool { return h.Get("Authorization") == want })
	cfg := func(topics, password string) *config.TransferConfig {
		c, err := config.ParseTransfer("test.ini", []byte(fmt.Sprintf(`[kafka]
address = %s
topics = %s
[etcd]
discover_topics = false
[es]
address = %s
username = elastic
password = %s
allow_insecure_auth = true
[transfer]
verify_signatures = false
`, kafka.Addr(), topics, es.URL(), password)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  *config.TransferConfig
		want []string
	}{
		{"everything right", cfg("web_log", "right"), []string{"Kafka API and auth", "ok", "topic web_log", "2 partitions", "search engine",
			"TCP", "ok", "search API and auth", "ok    Elasticsearch " + fakees.Version + ", as elastic (a version the tests do not run",
			"template for web_log", "logpipe-web_log for web_log-*: not installed yet", "all checks passed"}},
		{"a wrong password", cfg("web_log", "wrong"), []string{"search API and auth", "FAIL", "the engine refused the credentials"}},
		{"an unknown topic", cfg("web_log, no_such_topic", "right"), []string{"topic web_log", "ok", "topic no_such_topic", "FAIL", "does not exist in Kafka"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var out bytes.Buffer
			err := TestOutput(ctx, tc.cfg, &out)
			t.Logf("logtransfer test output (%s):\n%s", tc.name, out.String())
			if (err == nil) != (tc.want[len(tc.want)-1] == "all checks passed") {
				t.Fatalf("error %v", err)
			}
			if w := testutil.MissingInOrder(out.String(), tc.want...); w != "" {
				t.Fatalf("output lacks %q (in order) after what came before", w)
			}
		})
	}
}

// Kafka with SASL: the right password passes the auth step and says as
// whom; a wrong one stops there with what to check.
func TestTestOutputChecksKafkaSASL(t *testing.T) {
	const user, pass = "logtransfer", "transfer-sasl-pw-7"
	kafka := testutil.StartKafka(t, 2, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", user, pass))
	es := fakees.New(t)
	for _, tc := range []struct {
		password string
		want     []string
	}{
		{pass, []string{"Kafka API and auth", "ok", "SASL scram-sha-512 as logtransfer", "topic sasl_topic"}},
		{"not-the-password", []string{"Kafka API and auth", "FAIL", `SASL scram-sha-512 as "logtransfer" refused (check sasl_user and sasl_password)`}},
	} {
		cfg, err := config.ParseTransfer("test.ini", []byte(fmt.Sprintf(`[kafka]
address = %s
topics = sasl_topic
sasl_mechanism = scram-sha-512
sasl_user = %s
sasl_password = %s
allow_insecure_auth = true
[es]
address = %s
[transfer]
verify_signatures = false
`, kafka.Addr(), user, tc.password, es.URL())))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var out bytes.Buffer
		err = TestOutput(ctx, cfg, &out)
		cancel()
		t.Logf("logtransfer test output (password %q):\n%s", tc.password, out.String())
		if strings.Contains(out.String(), tc.password) {
			t.Errorf("the password is printed")
		}
		if w := testutil.MissingInOrder(out.String(), tc.want...); w != "" {
			t.Fatalf("output lacks %q (in order) after what came before", w)
		}
		// The right password gets past auth (the topic, never written,
		// does not exist: the next step's failure); the wrong one does not.
		if err == nil || strings.Contains(err.Error(), "Kafka API and auth") != (tc.password != pass) {
			t.Errorf("error %v", err)
		}
	}
}
