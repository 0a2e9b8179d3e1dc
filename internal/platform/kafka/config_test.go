package kafka

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// TestSecure checks the sarama settings for every mechanism
// and that sarama accepts them.
func TestSecure(t *testing.T) {
	dir := t.TempDir() // the ini's relative paths are the config package's test files
	tlsKeys4 := "tls_ca = ../config/testdata/tls/ca.pem\ntls_cert = ../config/testdata/tls/client.pem\ntls_key = ../config/testdata/tls/client-key.pem\n"
	for _, mech := range []string{"none", "plain", "scram-sha-256", "scram-sha-512"} {
		ini := "[kafka]\ntls = true\n" + tlsKeys4 + "sasl_mechanism = " + mech + "\n"
		if mech != "none" {
			ini += "sasl_user = agent\nsasl_password = pw\n"
		}
		cfg, err := config.ParseAgent(filepath.Join(dir, "a.ini"), []byte(ini))
		if err != nil {
			t.Fatal(err)
		}
		c := sarama.NewConfig()
		Secure(c, cfg.Kafka.Security)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: sarama rejects the config: %v", mech, err)
		}
		if !c.Net.TLS.Enable || c.Net.TLS.Config == nil || len(c.Net.TLS.Config.Certificates) != 1 {
			t.Errorf("%s: TLS not applied", mech)
		}
		want := map[string]sarama.SASLMechanism{"plain": sarama.SASLTypePlaintext, "scram-sha-256": sarama.SASLTypeSCRAMSHA256, "scram-sha-512": sarama.SASLTypeSCRAMSHA512}[mech]
		if c.Net.SASL.Enable != (mech != "none") || c.Net.SASL.Mechanism != want && mech != "none" {
			t.Errorf("%s: SASL enable=%v mechanism=%q", mech, c.Net.SASL.Enable, c.Net.SASL.Mechanism)
		}
		if mech != "none" && (c.Net.SASL.User != "agent" || c.Net.SASL.Password != "pw") {
			t.Errorf("%s: credentials not applied", mech)
		}
		if strings.HasPrefix(mech, "scram") {
			if c.Net.SASL.SCRAMClientGeneratorFunc == nil {
				t.Fatalf("%s: no SCRAM client", mech)
			}
			cl := c.Net.SASL.SCRAMClientGeneratorFunc()
			if err := cl.Begin("agent", "pw", ""); err != nil {
				t.Errorf("%s: Begin: %v", mech, err)
			}
			if first, err := cl.Step(""); err != nil || !strings.HasPrefix(first, "n,,n=agent,r=") {
				t.Errorf("%s: first message %q, %v", mech, first, err)
			}
		}
	}
	// Plain Kafka (the default) leaves sarama untouched.
	c := sarama.NewConfig()
	Secure(c, config.KafkaSecurity{})
	if c.Net.TLS.Enable || c.Net.SASL.Enable {
		t.Error("default security changed sarama's config")
	}
}

// The config's plain values map onto sarama's.
func TestPlainValuesAsSaramas(t *testing.T) {
	for in, want := range map[config.Compression]sarama.CompressionCodec{"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP,
		"snappy": sarama.CompressionSnappy, "lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD} {
		if got := Codec(in); got != want {
			t.Errorf("Codec(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[config.Acks]sarama.RequiredAcks{config.AcksAll: sarama.WaitForAll, config.AcksLeader: sarama.WaitForLocal, config.AcksNone: sarama.NoResponse} {
		if got := Acks(in); got != want {
			t.Errorf("Acks(%q) = %v, want %v", in, got, want)
		}
	}
	for in, want := range map[config.KafkaVersion]sarama.KafkaVersion{"0.11.0.0": sarama.V0_11_0_0, "0.11.0.2": sarama.V0_11_0_2, "2.8.0": sarama.V2_8_0_0, "3.9.0": sarama.V3_9_0_0} {
		if got := Version(in); got != want {
			t.Errorf("Version(%q) = %v, want %v", in, got, want)
		}
	}
	if InitialOffset("newest") != sarama.OffsetNewest || InitialOffset("oldest") != sarama.OffsetOldest {
		t.Error("initial offsets")
	}
}
