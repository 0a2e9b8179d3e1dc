package kafka

import (
	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/security"
)

// Secure sets s (TLS, SASL) on a sarama config.
func Secure(c *sarama.Config, s config.KafkaSecurity) {
	if t := s.TLS.Config(); t != nil {
		c.Net.TLS.Enable = true
		c.Net.TLS.Config = t
	}
	switch s.SASL.Mechanism {
	case "plain":
		c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	case "scram-sha-256":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return security.NewSCRAMClient(security.SHA256) }
	case "scram-sha-512":
		c.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		c.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return security.NewSCRAMClient(security.SHA512) }
	default:
		return
	}
	c.Net.SASL.Enable = true
	c.Net.SASL.Handshake = true
	c.Net.SASL.User = s.SASL.User
	c.Net.SASL.Password = s.SASL.Password.Reveal()
}

// Codec is c as sarama's codec (none for anything else).
func Codec(c config.Compression) sarama.CompressionCodec {
	switch c {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

// Acks is a as sarama's required acks.
func Acks(a config.Acks) sarama.RequiredAcks {
	switch a {
	case config.AcksLeader:
		return sarama.WaitForLocal
	case config.AcksNone:
		return sarama.NoResponse
	}
	return sarama.WaitForAll
}

// Version is v as sarama's version (the config checked it; 2.8.0 if it
// does not parse).
func Version(v config.KafkaVersion) sarama.KafkaVersion {
	kv, err := sarama.ParseKafkaVersion(string(v))
	if err != nil {
		return sarama.V2_8_0_0
	}
	return kv
}

// InitialOffset is "oldest" or "newest" as sarama's offset.
func InitialOffset(s string) int64 {
	if s == "newest" {
		return sarama.OffsetNewest
	}
	return sarama.OffsetOldest
}
