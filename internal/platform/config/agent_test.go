package config

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/platform/security"
)

// badFiles maps every testdata/*.bad.ini to the exact error LoadAgent must
// return for it. The file is loaded as "testdata/<name>", so that is how
// the messages name it.
var badFiles = map[string]string{
	"kafka_plain_skip_verify.bad.ini":   `testdata/kafka_plain_skip_verify.bad.ini:3: [kafka] tls_insecure_skip_verify: with sasl_mechanism plain sends the password to whoever answers, unverified (set tls_ca, use scram-sha-256/512, or set allow_insecure_auth = true)`,
	"etcd_password_skip_verify.bad.ini": `testdata/etcd_password_skip_verify.bad.ini:3: [etcd] tls_insecure_skip_verify: with a password sends it to whoever answers, unverified (set tls_ca, or set allow_insecure_auth = true)`,
	"bad_allowed_paths.bad.ini":         `testdata/bad_allowed_paths.bad.ini:2: [agent] allowed_paths: allowed path "/var/log/[a" is not a valid glob`,
	"unknown_key.bad.ini":               `testdata/unknown_key.bad.ini:3: [kafka] adress: unknown key`,

	"unknown_section.bad.ini": `testdata/unknown_section.bad.ini:4: unknown section [kafak]`,

	"spaced_section.bad.ini": `testdata/spaced_section.bad.ini:3: unknown section [ etcd ]`,

	"key_outside_section.bad.ini": `testdata/key_outside_section.bad.ini:2: address: key outside any section`,

	"duplicate_key.bad.ini": `testdata/duplicate_key.bad.ini:4: [kafka] address: duplicate key (first set on line 2)`,

	"duplicate_key_split_section.bad.ini": `testdata/duplicate_key_split_section.bad.ini:6: [kafka] compression: duplicate key (first set on line 2)`,

	"chan_max_size_not_int.bad.ini": `testdata/chan_max_size_not_int.bad.ini:2: [kafka] chan_max_size: "ten thousand" is not an integer`,

	"out_of_range.bad.ini": `testdata/out_of_range.bad.ini:2: [kafka] chan_max_size: 0 is out of range [1, 10000000]`,

	"size_out_of_range.bad.ini": `testdata/size_out_of_range.bad.ini:2: [agent] max_line_bytes: 1048576 is out of range [1024, 921600]`,

	"size_overflow.bad.ini": `testdata/size_overflow.bad.ini:3: [kafka] buffer_bytes: "17179869185G" is out of range [65536, 1073741824]`,

	"int_too_big.bad.ini": `testdata/int_too_big.bad.ini:2: [kafka] flush_bytes: "99999999999999999999" is out of range [0, 67108864]`,

	"bad_duration.bad.ini": `testdata/bad_duration.bad.ini:2: [etcd] timeout: "5 seconds" is not a duration (e.g. 5s, 250ms)`,

	"duration_out_of_range.bad.ini": `testdata/duration_out_of_range.bad.ini:2: [etcd] timeout: 2m0s is out of range [100ms, 1m0s]`,

	"duration_overflow.bad.ini": `testdata/duration_overflow.bad.ini:3: [etcd] timeout: "18446744074" is out of range [100ms, 1m0s]`,

	"negative_duration.bad.ini": `testdata/negative_duration.bad.ini:2: [agent] shutdown_timeout: -1s is out of range [0s, 10m0s]`,

	"bad_compression.bad.ini": `testdata/bad_compression.bad.ini:2: [kafka] compression: "brotli" is not one of none, gzip, snappy, lz4, zstd`,

	"bad_required_acks.bad.ini": `testdata/bad_required_acks.bad.ini:2: [kafka] required_acks: "2" is not one of all, -1, 1, 0`,

	"bad_log_level.bad.ini": `testdata/bad_log_level.bad.ini:2: [log] level: "verbose" is not one of trace, debug, info, warn, warning, error`,

	"bad_kafka_version.bad.ini": `testdata/bad_kafka_version.bad.ini:2: [kafka] version: "2.8" is not a Kafka version (e.g. 2.8.0)`,

	"old_kafka_version.bad.ini": `testdata/old_kafka_version.bad.ini:2: [kafka] version: 0.10.2 is too old: record headers need 0.11.0 or newer`,

	"old_kafka_version_4part.bad.ini": `testdata/old_kafka_version_4part.bad.ini:2: [kafka] version: 0.10.2.1 is too old: record headers need 0.11.0 or newer`,

	"collect_key_no_placeholder.bad.ini": `testdata/collect_key_no_placeholder.bad.ini:2: [etcd] collect_log_key: "/logagent/collect_config" must start with / and contain exactly one %s (the agent's IP)`,

	"collect_key_two_verbs.bad.ini": `testdata/collect_key_two_verbs.bad.ini:2: [etcd] collect_log_key: "/logagent/%s/%d" must start with / and contain exactly one %s (the agent's IP)`,

	"collect_key_relative.bad.ini":        `testdata/collect_key_relative.bad.ini:2: [etcd] collect_log_key: "logagent/%s/collect_config" must start with / and contain exactly one %s (the agent's IP)`,
	"metrics_key_same_as_collect.bad.ini": `testdata/metrics_key_same_as_collect.bad.ini:2: [etcd] metrics_key: "/logagent/%s/collect_config" must start with /, contain exactly one %s (the agent's IP) and differ from collect_log_key`,

	"keys_key_not_last.bad.ini": `testdata/keys_key_not_last.bad.ini:2: [etcd] keys_key: "/logagent/keys/%s/key" must start with / and end with /%s (the agent's IP)`,

	"bad_ip.bad.ini": `testdata/bad_ip.bad.ini:2: [agent] ip: "10.0.0.256" is not an IP address`,

	"bad_address.bad.ini": `testdata/bad_address.bad.ini:2: [etcd] address: "localhost": want host:port`,

	"bad_port.bad.ini": `testdata/bad_port.bad.ini:2: [kafka] address: "kafka1:99999": bad port "99999"`,

	"missing_host.bad.ini": `testdata/missing_host.bad.ini:2: [kafka] address: ":9092": missing host`,

	"empty_address.bad.ini": `testdata/empty_address.bad.ini:2: [kafka] address: must not be empty`,

	"empty_data_dir.bad.ini": `testdata/empty_data_dir.bad.ini:2: [agent] data_dir: must not be empty`,

	"bad_http_addr.bad.ini": `testdata/bad_http_addr.bad.ini:2: [http] addr: "9731": want host:port (empty host listens on every interface)`,

	"unclosed_section.bad.ini": `testdata/unclosed_section.bad.ini:4: syntax error: unclosed section`,

	"missing_delimiter.bad.ini": `testdata/missing_delimiter.bad.ini:3: syntax error: key-value delimiter not found`,

	// Transport security and secrets: bad combinations, unreadable or
	// malformed files, unresolvable secrets. Secret values never appear.
	"sasl_no_user.bad.ini": `testdata/sasl_no_user.bad.ini:2: [kafka] sasl_mechanism: scram-sha-256 needs sasl_user`,

	"sasl_user_without_mechanism.bad.ini": strings.Join([]string{
		`testdata/sasl_user_without_mechanism.bad.ini:2: [kafka] sasl_user: is set but sasl_mechanism is none`,
		`testdata/sasl_user_without_mechanism.bad.ini:3: [kafka] sasl_password: is set but sasl_mechanism is none`,
	}, "\n"),

	"bad_sasl_mechanism.bad.ini": `testdata/bad_sasl_mechanism.bad.ini:2: [kafka] sasl_mechanism: "gssapi" is not one of none, plain, scram-sha-256, scram-sha-512`,

	"tls_cert_without_key.bad.ini": `testdata/tls_cert_without_key.bad.ini:3: [kafka] tls_cert: needs tls_key (the client certificate's private key)`,

	"tls_ca_missing.bad.ini": `testdata/tls_ca_missing.bad.ini:3: [kafka] tls_ca: reading CA bundle: open testdata/tls/no-such-ca.pem: no such file or directory`,

	"tls_ca_not_pem.bad.ini": `testdata/tls_ca_not_pem.bad.ini:3: [kafka] tls_ca: testdata/good.ini holds no PEM certificate`,

	"tls_ca_without_tls.bad.ini": `testdata/tls_ca_without_tls.bad.ini:2: [kafka] tls_ca: is set but TLS is off (set tls = true)`,

	"tls_key_is_cert.bad.ini": `testdata/tls_key_is_cert.bad.ini:4: [kafka] tls_key: testdata/tls/client.pem and testdata/tls/ca.pem: tls: found a certificate rather than a key in the PEM for the private key`,

	"tls_insecure_with_ca.bad.ini": `testdata/tls_insecure_with_ca.bad.ini:4: [kafka] tls_insecure_skip_verify: true ignores tls_ca: set one or the other`,

	"etcd_http_with_tls.bad.ini": `testdata/etcd_http_with_tls.bad.ini:2: [etcd] address: "http://etcd1:2379" is plain http but tls = true: use https:// or no scheme`,

	"etcd_https_tls_off.bad.ini": `testdata/etcd_https_tls_off.bad.ini:3: [etcd] tls: is false but address "https://etcd1:2379" uses https`,

	"etcd_tls_key_without_cert.bad.ini": `testdata/etcd_tls_key_without_cert.bad.ini:3: [etcd] tls_key: needs tls_cert (the client certificate)`,

	"etcd_user_without_password.bad.ini": `testdata/etcd_user_without_password.bad.ini:2: [etcd] username: needs password`,

	"secret_env_unset.bad.ini": `testdata/secret_env_unset.bad.ini:3: [etcd] password: environment variable LOGPIPE_TEST_SURELY_UNSET is not set`,

	"secret_file_missing.bad.ini": `testdata/secret_file_missing.bad.ini:4: [kafka] sasl_password: reading secret: open testdata/tls/no-such-secret: no such file or directory`,

	"address_with_credentials.bad.ini": `testdata/address_with_credentials.bad.ini:2: [etcd] address: "http://xxxxx@etcd1:2379": credentials in an address are not allowed (use the username and password keys)`,

	// Unknown sections and keys come first, in file order, then every
	// value error in the order the keys are decoded.
	"several_errors.bad.ini": strings.Join([]string{
		`testdata/several_errors.bad.ini:3: [kafka] adress: unknown key`,
		`testdata/several_errors.bad.ini:13: unknown section [metrics]`,
		`testdata/several_errors.bad.ini:4: [kafka] chan_max_size: "lots" is not an integer`,
		`testdata/several_errors.bad.ini:5: [kafka] compression: "brotli" is not one of none, gzip, snappy, lz4, zstd`,
		`testdata/several_errors.bad.ini:8: [etcd] timeout: 0s is out of range [100ms, 1m0s]`,
		`testdata/several_errors.bad.ini:11: [agent] ip: "not-an-ip" is not an IP address`,
	}, "\n"),
}

func TestLoadAgentBadFiles(t *testing.T) {
	for name, want := range badFiles {
		t.Run(name, func(t *testing.T) {
			cfg, err := LoadAgent("testdata/" + name)
			if err == nil {
				t.Fatalf("LoadAgent(%s) = %+v, want error\n%s", name, cfg, want)
			}
			if cfg != nil {
				t.Errorf("LoadAgent(%s) returned a config along with the error", name)
			}
			if got := err.Error(); got != want {
				t.Errorf("LoadAgent(%s) error:\n got: %s\nwant: %s", name, got, want)
			}
			if strings.Contains(err.Error(), "not-printed") {
				t.Errorf("LoadAgent(%s) error quotes a secret: %s", name, err)
			}
		})
	}
}

// TestBadFilesListed keeps badFiles and testdata in step: a new bad file
// without an expected error, or a stale table entry, fails.
func TestBadFilesListed(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.ini")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk, inTable []string
	for _, f := range files {
		onDisk = append(onDisk, filepath.Base(f))
	}
	for name := range badFiles {
		inTable = append(inTable, name)
	}
	sort.Strings(onDisk)
	sort.Strings(inTable)
	if !reflect.DeepEqual(onDisk, inTable) {
		t.Errorf("testdata/*.bad.ini and badFiles differ:\n disk: %v\ntable: %v", onDisk, inTable)
	}
}

func TestLoadAgentGood(t *testing.T) {
	t.Setenv("LOGPIPE_TEST_ETCD_PASSWORD", "etcd-secret")
	cfg, err := LoadAgent("testdata/good.ini")
	if err != nil {
		t.Fatal(err)
	}
	// The TLS configurations were built from the files at load time.
	for name, tc := range map[string]*tls.Config{"kafka": cfg.Kafka.Security.TLS.Config(), "etcd": cfg.Etcd.Security.TLS.Config()} {
		if tc == nil || tc.RootCAs == nil || len(tc.Certificates) != 1 || tc.ServerName != name+".internal" || tc.InsecureSkipVerify {
			t.Errorf("%s TLS config %+v", name, tc)
		}
	}
	cfg.Kafka.Security.TLS.config, cfg.Etcd.Security.TLS.config = nil, nil
	files := func(serverName string) security.Files {
		return security.Files{CA: "testdata/tls/ca.pem", Cert: "testdata/tls/client.pem", Key: "testdata/tls/client-key.pem", ServerName: serverName}
	}
	want := &AgentConfig{
		Path: "testdata/good.ini",
		Kafka: Kafka{
			Brokers:         []string{"kafka1:9092", "kafka2:9093", "kafka3:9094"},
			ChanMaxSize:     20000,
			BufferBytes:     32 << 20,
			Compression:     "zstd",
			RequiredAcks:    AcksLeader,
			Version:         "3.6.0",
			FlushInterval:   50 * time.Millisecond,
			FlushBytes:      1 << 20,
			RetryBackoffMax: 30 * time.Second,
			Security: KafkaSecurity{
				TLS:  TLS{Enabled: true, Files: files("kafka.internal")},
				SASL: SASL{Mechanism: "scram-sha-512", User: "logagent", Password: NewSecret("kafka-secret")},
			},
		},
		Etcd: Etcd{
			Endpoints:    []string{"etcd1:2379", "https://etcd2:2379"},
			Timeout:      3 * time.Second,
			CollectKey:   "/agents/%s/collect",
			MetricsKey:   "/logagent/%s/metrics_config",
			InventoryKey: "/agents/live/%s", InventoryTTL: 10 * time.Second, InventoryRefresh: time.Minute, KeysKey: "/logagent/keys/%s",
			Security: EtcdSecurity{
				TLS:      TLS{Enabled: true, Files: files("etcd.internal")},
				Username: "logagent",
				Password: NewSecret("etcd-secret"),
			},
		},
		Agent: Agent{Sign: true,
			IP:              "10.0.0.7",
			Hostname:        "web-7",
			DataDir:         "/var/lib/logagent",
			MaxLineBytes:    512 << 10,
			PollInterval:    100 * time.Millisecond,
			ScanInterval:    5 * time.Second,
			RotateWait:      5 * time.Second,
			MaxFiles:        10000,
			ShutdownTimeout: 20 * time.Second,
			MemoryLimit:     256 << 20,
			AllowedPaths:    []string{"/var/log/**", "/srv/*/logs/*.log"},
		},
		Log:  Log{Level: "debug", Format: "json"},
		HTTP: HTTP{Addr: ":9732"},
	}
	want.Settings = cfg.Settings // TestEffectiveSettings
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("LoadAgent(good.ini):\n got: %+v\nwant: %+v", cfg, want)
	}
	if got, want := cfg.Etcd.CollectKeyFor("10.0.0.7"), "/agents/10.0.0.7/collect"; got != want {
		t.Errorf("CollectKeyFor = %q, want %q", got, want)
	}
	if got, want := cfg.Agent.MaxRecordBytes(), 512<<10+16<<10; got != want {
		t.Errorf("MaxRecordBytes = %d, want %d", got, want)
	}
}

// writeINI writes content to a fresh file and returns its path.
func writeINI(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "logagent.ini")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func loadString(t *testing.T, content string) *AgentConfig {
	t.Helper()
	cfg, err := LoadAgent(writeINI(t, content))
	if err != nil {
		t.Fatalf("LoadAgent(%q): %v", content, err)
	}
	return cfg
}

func TestLoadAgentDefaults(t *testing.T) {
	for _, content := range []string{
		"",
		"\n\n",
		"# only a comment\n; and another\n",
		// Known sections without keys are fine too.
		"[kafka]\n[etcd]\n[agent]\n[log]\n[http]\n",
	} {
		path := writeINI(t, content)
		cfg, err := LoadAgent(path)
		if err != nil {
			t.Fatalf("LoadAgent(%q): %v", content, err)
		}
		want := &AgentConfig{
			Path: path,
			Kafka: Kafka{
				Brokers:         []string{"127.0.0.1:9092"},
				ChanMaxSize:     10000,
				BufferBytes:     16 << 20,
				Compression:     "lz4",
				RequiredAcks:    AcksAll,
				Version:         "2.8.0",
				FlushInterval:   10 * time.Millisecond,
				FlushBytes:      1 << 20,
				RetryBackoffMax: 10 * time.Second,
			},
			Etcd: Etcd{
				Endpoints:    []string{"127.0.0.1:2379"},
				Timeout:      5 * time.Second,
				CollectKey:   "/logagent/%s/collect_config",
				MetricsKey:   "/logagent/%s/metrics_config",
				InventoryKey: "/logagent/agents/%s", InventoryTTL: 10 * time.Second, InventoryRefresh: time.Minute, KeysKey: "/logagent/keys/%s",
			},
			Agent: Agent{Sign: true,
				DataDir:         "data/logagent",
				MaxLineBytes:    262144,
				PollInterval:    250 * time.Millisecond,
				ScanInterval:    2 * time.Second,
				RotateWait:      5 * time.Second,
				MaxFiles:        10000,
				ShutdownTimeout: 10 * time.Second,
				MemoryLimit:     64 << 20,
				AllowedPaths:    []string{"/var/log/**"},
			},
			Log:  Log{Level: "info", Format: "text"},
			HTTP: HTTP{Addr: "127.0.0.1:9731"},
		}
		want.Settings = cfg.Settings
		if !reflect.DeepEqual(cfg, want) {
			t.Errorf("LoadAgent(%q):\n got: %+v\nwant: %+v", content, cfg, want)
		}
	}
}

func TestLoadAgentValues(t *testing.T) {
	f := func(content string, check func(*AgentConfig) (got, want any)) {
		t.Helper()
		got, want := check(loadString(t, content))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("LoadAgent(%q): got %#v, want %#v", content, got, want)
		}
	}
	brokers := func(c *AgentConfig) (any, any) { return c.Kafka.Brokers, []string{"a:1", "b:2", "c:3"} }
	f("[kafka]\naddress = a:1;b:2, c:3\n", brokers)
	f("[kafka]\naddress=a:1,,b:2;;c:3;\n", brokers)
	f("[kafka]\naddress = a:1;b:2, c:3 ; the brokers\n", brokers)
	f("[kafka]\naddress = a:1;b:2, c:3 # the brokers\n", brokers)

	// " ;" starts a comment, a ';' inside a value does not.
	f("[kafka]\nchan_max_size = 5 ; comment\n", func(c *AgentConfig) (any, any) { return c.Kafka.ChanMaxSize, 5 })
	f("[kafka]\nchan_max_size = 5 # comment\n", func(c *AgentConfig) (any, any) { return c.Kafka.ChanMaxSize, 5 })
	f("[agent]\nhostname = web;7\n", func(c *AgentConfig) (any, any) { return c.Agent.Hostname, "web;7" })

	// The seed's timeout=5 means seconds.
	f("[etcd]\ntimeout=5\n", func(c *AgentConfig) (any, any) { return c.Etcd.Timeout, 5 * time.Second })
	f("[etcd]\ntimeout = 1500ms\n", func(c *AgentConfig) (any, any) { return c.Etcd.Timeout, 1500 * time.Millisecond })
	f("[agent]\nshutdown_timeout = 0\n", func(c *AgentConfig) (any, any) { return c.Agent.ShutdownTimeout, time.Duration(0) })

	// Size suffixes are powers of two, with or without "i" and a space.
	for _, tc := range []struct {
		v    string
		want int
	}{
		{"32MiB", 32 << 20}, {"32MB", 32 << 20}, {"32M", 32 << 20}, {"32 mib", 32 << 20},
		{"65536", 64 << 10}, {"64KiB", 64 << 10}, {"64k", 64 << 10}, {"1GiB", 1 << 30}, {"1G", 1 << 30},
	} {
		f("[kafka]\nbuffer_bytes = "+tc.v+"\n[agent]\nmemory_limit = 4GiB\n", func(c *AgentConfig) (any, any) { return c.Kafka.BufferBytes, tc.want })
	}

	for v, want := range map[string]Compression{
		"none": "none", "gzip": "gzip", "snappy": "snappy",
		"LZ4": "lz4", "zstd": "zstd",
	} {
		f("[kafka]\ncompression = "+v+"\n", func(c *AgentConfig) (any, any) { return c.Kafka.Compression, want })
	}
	for v, want := range map[string]Acks{
		"all": AcksAll, "ALL": AcksAll, "-1": AcksAll,
		"1": AcksLeader, "0": AcksNone,
	} {
		f("[kafka]\nrequired_acks = "+v+"\n", func(c *AgentConfig) (any, any) { return c.Kafka.RequiredAcks, want })
	}

	// 0.11.0 is the oldest version with record headers, written either way.
	f("[kafka]\nversion = 0.11.0\n", func(c *AgentConfig) (any, any) { return c.Kafka.Version, KafkaVersion("0.11.0.0") })
	f("[kafka]\nversion = 0.11.0.2\n", func(c *AgentConfig) (any, any) { return c.Kafka.Version, KafkaVersion("0.11.0.2") })
	f("[kafka]\nversion = 3.9.0\n", func(c *AgentConfig) (any, any) { return c.Kafka.Version, KafkaVersion("3.9.0") })

	f("[agent]\nip = ::1\n", func(c *AgentConfig) (any, any) { return c.Agent.IP, "::1" })
	f("[agent]\ndata_dir = ./var//data/\n", func(c *AgentConfig) (any, any) { return c.Agent.DataDir, "var/data" })
	f("[kafka]\naddress = [::1]:9092\n", func(c *AgentConfig) (any, any) { return c.Kafka.Brokers, []string{"[::1]:9092"} })
	f("[log]\nlevel = WARN\n", func(c *AgentConfig) (any, any) { return c.Log.Level, "warn" })

	// An empty addr disables the HTTP server; port 0 picks a free port.
	f("[http]\naddr =\n", func(c *AgentConfig) (any, any) { return c.HTTP.Addr, "" })
	f("[http]\naddr = 127.0.0.1:0\n", func(c *AgentConfig) (any, any) { return c.HTTP.Addr, "127.0.0.1:0" })

	// Windows line endings and a UTF-8 byte order mark are accepted.
	f("\ufeff[kafka]\r\nchan_max_size = 7\r\n", func(c *AgentConfig) (any, any) { return c.Kafka.ChanMaxSize, 7 })
}

// TestParseAgentErrors covers inputs that are awkward to keep as files.
func TestParseAgentErrors(t *testing.T) {
	f := func(content, want string) {
		t.Helper()
		cfg, err := ParseAgent("x.ini", []byte(content))
		if err == nil {
			t.Fatalf("ParseAgent(%q) = %+v, want error %q", content, cfg, want)
		}
		if err.Error() != want {
			t.Errorf("ParseAgent(%q) error:\n got: %s\nwant: %s", content, err, want)
		}
	}
	// A byte order mark must not shift or hide line numbers.
	f("\ufeff[kafka]\nadress = a:1\n", "x.ini:2: [kafka] adress: unknown key")
	f("\ufeff[kafka]\naddress = a:1\naddress = b:2\n", "x.ini:3: [kafka] address: duplicate key (first set on line 2)")
	f("[kafka]\r\nchan_max_size = x\r\n", `x.ini:2: [kafka] chan_max_size: "x" is not an integer`)
	// The line of a syntax error is the line itself, not an earlier line
	// that happens to contain the same text.
	f("[kafka]\n# [etcd\n[etcd\n", "x.ini:3: syntax error: unclosed section")
	f("[kafka]\naddress = a:1\n= b:2\n", "x.ini:3: syntax error: empty key name")
	// Keys are case-sensitive, as are sections.
	f("[kafka]\nAddress = a:1\n", "x.ini:2: [kafka] Address: unknown key")
	f("[Kafka]\naddress = a:1\n", "x.ini:1: unknown section [Kafka]")
	f("[kafka]\n[extra]\n", "x.ini:2: unknown section [extra]")
}

func TestLoadAgentMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.ini")
	_, err := LoadAgent(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadAgent(missing) = %v, want a not-exist error", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name %s", err, path)
	}
}

func TestBool(t *testing.T) {
	c, err := parseINI("b.ini", []byte("[s]\na = yes\nb = OFF\nc = 1\nd = False\ne = maybe\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := []bool{c.Bool("s", "a", false), c.Bool("s", "b", true), c.Bool("s", "c", false),
		c.Bool("s", "d", true), c.Bool("s", "e", true), c.Bool("s", "unset", true)}
	if want := []bool{true, false, true, false, true, true}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bool = %v, want %v", got, want)
	}
	want := `b.ini:6: [s] e: "maybe" is not a boolean (true or false)`
	if err := c.finish(); err == nil || err.Error() != want {
		t.Errorf("finish() = %v, want %s", err, want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"0", 0, false},
		{"-3", -3, false},
		{"10", 10, false},
		{"1k", 1 << 10, false},
		{"2 KiB", 2 << 10, false},
		{"3MB", 3 << 20, false},
		{"4gib", 4 << 30, false},
		{"8589934591G", 8589934591 << 30, false},
		{"8589934592G", 0, true}, // 2^63: overflows
		{"-8589934593G", 0, true},
		{"", 0, true},
		{"K", 0, true},
		{"1.5M", 0, true},
		{"1TB", 0, true},
		{"12x", 0, true},
	} {
		got, err := parseSize(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":               nil,
		" ; , ":          nil,
		"a":              {"a"},
		"a:1;b:2, c:3":   {"a:1", "b:2", "c:3"},
		" a ;; b ,, c ,": {"a", "b", "c"},
	} {
		if got := SplitList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("SplitList(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestShippedAgentConfigLoads(t *testing.T) {
	cfg, err := LoadAgent("../../../conf/logagent.ini")
	if err != nil {
		t.Fatalf("conf/logagent.ini must stay valid: %v", err)
	}
	if cfg.Kafka.ChanMaxSize != 10000 || cfg.HTTP.Addr != "127.0.0.1:9731" {
		t.Fatalf("shipped config drifted from the documented defaults: %+v", cfg)
	}
}

// A syntax error names the line, never its text: a password on a line that
// lost its "=" must not reach the log.
func TestSyntaxErrorDoesNotEchoTheLine(t *testing.T) {
	for _, ini := range []string{
		"[kafka]\nsasl_password hunter2-secret\n",
		"[kafka]\n[sasl hunter2-secret\n",
		"[kafka]\n= hunter2-secret\n",
	} {
		_, err := ParseAgent("x.ini", []byte(ini))
		if err == nil {
			t.Fatalf("%q parsed", ini)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("the error repeats the line's text: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "x.ini:2: syntax error: ") {
			t.Fatalf("the error does not name the line: %v", err)
		}
	}
}

// The effective settings are every key the file may hold, with the value
// in force (the file's, at its line, or the default) and no secret: what
// logagent test config prints.
func TestEffectiveSettings(t *testing.T) {
	t.Setenv("LOGPIPE_TEST_ETCD_PASSWORD", "etcd-secret")
	cfg, err := LoadAgent("testdata/good.ini")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteSettings(&b, cfg.Path, cfg.Settings); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{"kafka-secret", "etcd-secret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("a secret is printed:\n%s", out)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^sasl_password = \[redacted\] +; testdata/good\.ini:21$`),
		regexp.MustCompile(`(?m)^password = \[redacted\] +; testdata/good\.ini:34$`),
		regexp.MustCompile(`(?m)^poll_interval = 100ms +; testdata/good\.ini:41$`),
		regexp.MustCompile(`(?m)^rotate_wait = 5s +; default$`),
		regexp.MustCompile(`(?m)^\[etcd\]$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("no line matching %s in:\n%s", want, out)
		}
	}
	// Every key set in the file is among the settings, at its line.
	seen := map[string]int{}
	for _, s := range cfg.Settings {
		seen[s.Section+"."+s.Key] = s.Line
	}
	section := ""
	for i, line := range strings.Split(string(readFileT(t, "testdata/good.ini")), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		case line == "" || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "#"):
		default:
			k, _, _ := strings.Cut(line, "=")
			if got := seen[section+"."+strings.TrimSpace(k)]; got != i+1 {
				t.Errorf("%s.%s (line %d) shown at line %d", section, strings.TrimSpace(k), i+1, got)
			}
		}
	}
}

func readFileT(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
