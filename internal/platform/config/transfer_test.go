package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// transferBadFiles maps every testdata/transfer/*.bad.ini to the exact
// error LoadTransfer must give.
var transferBadFiles = map[string]string{
	"es_creds_skip_verify.bad.ini": `testdata/transfer/es_creds_skip_verify.bad.ini:5: [es] tls_insecure_skip_verify: with credentials sends them to whoever answers, unverified (set tls_ca, or set allow_insecure_auth = true)`,
	"quarantine_is_dlq.bad.ini":    `testdata/transfer/quarantine_is_dlq.bad.ini:3: [kafka] quarantine_suffix: ".dlq" must be non-empty, legal in a topic name and not dlq_suffix`,
	"unknown_key.bad.ini":          `testdata/transfer/unknown_key.bad.ini:3: [kafka] group: unknown key`,
	"no_topics.bad.ini":            `testdata/transfer/no_topics.bad.ini: [kafka] topics: no topics to consume: list them here or set [etcd] discover_topics = true`,
	"bad_topic.bad.ini":            `testdata/transfer/bad_topic.bad.ini:2: [kafka] topics: topic "web log" is not a legal Kafka topic name (letters, digits, '.', '_', '-')`,
	"bad_initial_offset.bad.ini":   `testdata/transfer/bad_initial_offset.bad.ini:3: [kafka] initial_offset: "latest" is not one of oldest, newest`,
	"bad_es_url.bad.ini":           `testdata/transfer/bad_es_url.bad.ini:4: [es] address: "ftp://es:9200" is not an http(s) URL`,
	"zero_workers.bad.ini":         `testdata/transfer/zero_workers.bad.ini:4: [es] workers: 0 is out of range [1, 1024]`,
	"auth_both.bad.ini":            `testdata/transfer/auth_both.bad.ini:5: [es] api_key: set either username/password or api_key, not both`,
	"bad_headers.bad.ini":          `testdata/transfer/bad_headers.bad.ini:4: [es] headers: "VL-Msg-Field message": want Name: value; Name2: value2`,
	"bad_bool.bad.ini":             `testdata/transfer/bad_bool.bad.ini:4: [etcd] discover_topics: "maybe" is not a boolean (true or false)`,
	"short_session.bad.ini":        `testdata/transfer/short_session.bad.ini:3: [kafka] session_timeout: 1s is out of range [6s, 5m0s]`,
	"bad_flush.bad.ini":            `testdata/transfer/bad_flush.bad.ini:5: [es] flush_interval: "soon" is not a duration (e.g. 5s, 250ms)`,

	"es_tls_ca_http.bad.ini":             `testdata/transfer/es_tls_ca_http.bad.ini:5: [es] tls_ca: is set but TLS is off (no address is https://)`,
	"es_tls_ca_not_pem.bad.ini":          `testdata/transfer/es_tls_ca_not_pem.bad.ini:5: [es] tls_ca: testdata/transfer/auth_both.bad.ini holds no PEM certificate`,
	"es_url_credentials.bad.ini":         `testdata/transfer/es_url_credentials.bad.ini:4: [es] address: "https://xxxxx@es:9200": credentials in the URL are not allowed (use username/password or api_key)`,
	"es_api_key_env_unset.bad.ini":       `testdata/transfer/es_api_key_env_unset.bad.ini:5: [es] api_key: environment variable LOGPIPE_TEST_SURELY_UNSET is not set`,
	"es_password_without_user.bad.ini":   `testdata/transfer/es_password_without_user.bad.ini:4: [es] password: needs username`,
	"scram_no_password.bad.ini":          `testdata/transfer/scram_no_password.bad.ini:3: [kafka] sasl_mechanism: scram-sha-512 needs sasl_password`,
	"kafka_tls_key_without_cert.bad.ini": `testdata/transfer/kafka_tls_key_without_cert.bad.ini:4: [kafka] tls_key: needs tls_cert (the client certificate)`,
	"etcd_password_without_user.bad.ini": `testdata/transfer/etcd_password_without_user.bad.ini:4: [etcd] password: needs username`,
	"etcd_tls_ca_missing.bad.ini":        `testdata/transfer/etcd_tls_ca_missing.bad.ini:4: [etcd] tls_ca: reading CA bundle: open testdata/tls/missing-ca.pem: no such file or directory`,
}

func TestTransferBadConfigs(t *testing.T) {
	files, err := filepath.Glob("testdata/transfer/*.bad.ini")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, p := range files {
		want, ok := transferBadFiles[filepath.Base(p)]
		if !ok {
			t.Errorf("%s has no expected error in transferBadFiles", p)
			continue
		}
		_, err := LoadTransfer(p)
		if err == nil {
			t.Errorf("%s: loaded without error", p)
			continue
		}
		if err.Error() != want {
			t.Errorf("%s:\n got %s\nwant %s", p, err, want)
		}
		if strings.Contains(err.Error(), "not-printed") {
			t.Errorf("%s: error quotes a secret: %s", p, err)
		}
	}
	if len(files) != len(transferBadFiles) {
		t.Errorf("%d files, %d expectations", len(files), len(transferBadFiles))
	}
}

func TestTransferDefaults(t *testing.T) {
	cfg, err := ParseTransfer("t.ini", []byte("[etcd]\ndiscover_topics = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	k, e := cfg.Kafka, cfg.ES
	if k.GroupID != "logtransfer" || k.InitialOffset != "oldest" || k.DLQSuffix != ".dlq" || k.SessionTimeout != 10*time.Second || len(k.Topics) != 0 {
		t.Errorf("kafka defaults %+v", k)
	}
	if e.Workers != 16 || e.BulkActions != 1000 || e.BulkBytes != 5<<20 || e.FlushInterval != time.Second || e.Index != DefaultIndex || !e.ManageTemplates ||
		len(e.URLs) != 1 || e.URLs[0] != "http://127.0.0.1:9200" {
		t.Errorf("es defaults %+v", e)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9732" || cfg.Discovery.CollectKey != "/logagent/%s/collect_config" {
		t.Errorf("defaults %+v", cfg)
	}
}

func TestTransferValues(t *testing.T) {
	cfg, err := ParseTransfer("t.ini", []byte(`[kafka]
topics = a;b, c
initial_offset = newest
[es]
address = es1:9200, https://es2:9200/prefix
headers = VL-Msg-Field: message; VL-Stream-Fields: host.name,log.file.path ;
api_key = k
allow_insecure_auth = true
`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cfg.Kafka.Topics, "|") != "a|b|c" || cfg.Kafka.InitialOffset != "newest" {
		t.Errorf("kafka %+v", cfg.Kafka)
	}
	if strings.Join(cfg.ES.URLs, "|") != "http://es1:9200|https://es2:9200/prefix" {
		t.Errorf("urls %v", cfg.ES.URLs)
	}
	if cfg.ES.Headers["VL-Msg-Field"] != "message" || cfg.ES.Headers["VL-Stream-Fields"] != "host.name,log.file.path" || len(cfg.ES.Headers) != 2 {
		t.Errorf("headers %v", cfg.ES.Headers)
	}
}

func TestShippedTransferConfigLoads(t *testing.T) {
	if _, err := LoadTransfer("../../../conf/logtransfer.ini"); err != nil {
		t.Fatalf("conf/logtransfer.ini must stay valid: %v", err)
	}
}

func TestCredentialsInCleartextRefused(t *testing.T) {
	const allow = "allow_insecure_auth = true\n"
	for _, tc := range []struct{ name, ini, allowed, want string }{
		{"es password over http",
			"[kafka]\ntopics = a\n[es]\naddress = http://es:9200\nusername = u\npassword = p4ss\n", allow, `[es] address: "http://es:9200" is plain http`},
		{"es api key over http",
			"[kafka]\ntopics = a\n[es]\naddress = es:9200\napi_key = p4ss\n", allow, `[es] address: "http://es:9200" is plain http`},
		{"sasl plain without tls",
			"[kafka]\ntopics = a\nsasl_mechanism = plain\nsasl_user = u\nsasl_password = p4ss\n", allow, "[kafka] sasl_mechanism: plain without tls = true"},
		{"etcd password without tls",
			"[kafka]\ntopics = a\n[etcd]\nusername = u\npassword = p4ss\n", allow, "[etcd] password: is sent in cleartext"},
	} {
		_, err := ParseTransfer("t.ini", []byte(tc.ini))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "p4ss") {
			t.Errorf("%s: error shows the secret: %v", tc.name, err)
		}
		// The key goes at the end, in the section the credentials are in.
		if _, err := ParseTransfer("t.ini", []byte(tc.ini+tc.allowed)); err != nil {
			t.Errorf("%s with allow_insecure_auth: %v", tc.name, err)
		}
	}
	if _, err := ParseTransfer("t.ini", []byte("[kafka]\ntopics = a\nsasl_mechanism = scram-sha-256\nsasl_user = u\nsasl_password = p4ss\n")); err != nil {
		t.Errorf("scram without tls refused: %v", err)
	}
}

// [index] sets every topic's indices; [index.<topic>] overrides it key by
// key; a bad value or topic name stops the start with its line.
func TestIndexSettingsPerTopic(t *testing.T) {
	const head = "[kafka]\ntopics = web_log\n"
	cfg, err := ParseTransfer("t.ini", []byte(head+"[index]\nreplicas = 0\nretention_days = 7\n[index.web_log]\nshards = 3\nrefresh_interval = 30s\n[index.audit]\nretention_days = 0\nrefresh_interval = -1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for topic, want := range map[string]IndexSettings{
		"web_log": {Shards: 3, Replicas: 0, RefreshInterval: 30 * time.Second, RetentionDays: 7},
		"audit":   {Shards: 1, Replicas: 0, RefreshInterval: -time.Second, RetentionDays: 0},
		"other":   {Shards: 1, Replicas: 0, RefreshInterval: time.Second, RetentionDays: 7},
	} {
		if got := cfg.Indices.For(topic); got != want {
			t.Errorf("%s: %+v, want %+v", topic, got, want)
		}
	}
	def, err := ParseTransfer("t.ini", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if got := def.Indices.For("x"); got != (IndexSettings{Shards: 1, Replicas: 1, RefreshInterval: time.Second}) {
		t.Errorf("defaults %+v", got)
	}
	for _, bad := range []struct{ ini, want string }{
		{"[index]\nreplicas = -1\n", "t.ini:4: [index] replicas"},
		{"[index]\nrefresh_interval = 0s\n", "t.ini:4: [index] refresh_interval"},
		{"[index.web_log]\nshards = 0\n", "t.ini:4: [index.web_log] shards"},
		{"[index.web_log]\nretention = 7\n", "t.ini:4: [index.web_log] retention: unknown key"},
		{"[index.bad topic]\nshards = 2\n", "[index.bad topic]"},
	} {
		_, err := ParseTransfer("t.ini", []byte(head+bad.ini))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want one with %q", bad.ini, err, bad.want)
		}
	}
}
