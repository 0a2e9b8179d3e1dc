package config

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// Kafka holds the producer side of [kafka].
type Kafka struct {
	Brokers []string
	// ChanMaxSize bounds the channel between the tailers and the producer.
	ChanMaxSize int
	// BufferBytes bounds the bytes of events between read and Kafka ack
	// (channel plus in flight), so a Kafka outage cannot grow memory.
	BufferBytes  int
	Compression  Compression
	RequiredAcks Acks
	Version      KafkaVersion
	// FlushInterval and FlushBytes shape the produce requests.
	FlushInterval time.Duration
	FlushBytes    int
	// RetryBackoffMax caps the backoff between re-sends of a failed event.
	RetryBackoffMax time.Duration
	// Security is TLS and SASL towards the brokers.
	Security KafkaSecurity
}

// Etcd is [etcd].
type Etcd struct {
	Endpoints []string
	Timeout   time.Duration
	// CollectKey is a fmt pattern with one %s for the agent's IP.
	CollectKey string
	// MetricsKey is where the agent's host metrics config is (a fmt
	// pattern with one %s for the agent's IP).
	MetricsKey string
	// InventoryKey is where the agent keeps its status alive under a
	// lease (a fmt pattern with one %s for the agent's IP).
	InventoryKey string
	// InventoryTTL is the inventory lease (an agent that dies is gone
	// from the inventory after it); InventoryRefresh is how often the
	// entry is rewritten when nothing but progress changed.
	InventoryTTL, InventoryRefresh time.Duration
	// KeysKey is where the agent's signing keys are (a fmt pattern with
	// one %s for the agent's IP); the agent creates its document there
	// when there is none.
	KeysKey string
	// Security is TLS and user/password towards etcd.
	Security EtcdSecurity
}

// Agent is [agent].
type Agent struct {
	// Sign signs every record with the agent's key (see package keyring),
	// so the transfer can tell them from forgeries.
	Sign         bool
	IP           string
	Hostname     string
	DataDir      string
	MaxLineBytes int
	// PollInterval is how often an idle file is checked for growth,
	// rotation and truncation.
	PollInterval time.Duration
	// ScanInterval is how often globs are expanded to find new files.
	ScanInterval time.Duration
	// RotateWait is how long a rotated-away file is still followed after
	// it stopped growing (writers that reopen late); later writes are
	// still picked up, within a minute.
	RotateWait time.Duration
	// MaxFiles bounds the files tailed at once.
	MaxFiles int
	// ShutdownTimeout bounds the wait for in-flight events at exit.
	ShutdownTimeout time.Duration
	// MemoryLimit is the memory the agent aims to stay under (a soft limit
	// for the Go runtime; the garbage collector works harder near it).
	MemoryLimit int
	// AllowedPaths are the globs (** for any depth) a collect entry, and
	// the real path of every file opened, must match.
	AllowedPaths []string
	// AllowHardLinks lets the agent read files with more than one hard
	// link (refused by default: a link makes any file look like a log).
	AllowHardLinks bool
}

// Log is [log].
type Log struct {
	Level  string
	Format string
}

// HTTP is [http].
type HTTP struct {
	// Addr serves /metrics, /healthz and /readyz; empty disables.
	Addr string
	// Pprof serves /debug/pprof (off by default: profiles and the
	// command line are for operators, not for whoever reaches the port).
	Pprof bool
}

func decodeHTTP(c *iniFile, def string) HTTP {
	h := HTTP{Addr: c.Str("http", "addr", def), Pprof: c.Bool("http", "pprof", false)}
	if h.Addr != "" {
		if err := checkListenAddr(h.Addr); err != nil {
			c.Fail("http", "addr", "%q: %v", h.Addr, err)
		}
	}
	return h
}

// AgentConfig is the whole of logagent.ini.
type AgentConfig struct {
	Path  string
	Kafka Kafka
	Etcd  Etcd
	Agent Agent
	Log   Log
	HTTP  HTTP
	// Settings are the effective settings, defaults included and secrets
	// redacted (logagent test config).
	Settings []Setting
}

// maxRecordOverhead is room for headers on top of the largest value.
const maxRecordOverhead = 16 << 10

// MaxRecordBytes is the largest record logagent produces: an event of at
// most MaxLineBytes plus headers. Lines and multiline events are cut to stay
// under it, so Kafka can never reject a record as too large.
func (a Agent) MaxRecordBytes() int { return a.MaxLineBytes + maxRecordOverhead }

func validIP(s string) bool { return net.ParseIP(s) != nil }

// LoadAgent reads and validates a logagent ini file.
func LoadAgent(path string) (*AgentConfig, error) {
	c, err := loadINI(path)
	if err != nil {
		return nil, err
	}
	return decodeAgent(c)
}

// ParseAgent is LoadAgent on bytes; name is used in error messages.
func ParseAgent(name string, data []byte) (*AgentConfig, error) {
	c, err := parseINI(name, data)
	if err != nil {
		return nil, err
	}
	return decodeAgent(c)
}

func decodeAgent(c *iniFile) (*AgentConfig, error) {
	cfg := &AgentConfig{Path: c.path}
	k := &cfg.Kafka
	k.Brokers = c.HostPorts("kafka", "address", []string{"127.0.0.1:9092"})
	k.ChanMaxSize = c.Int("kafka", "chan_max_size", 10000, 1, 10_000_000)
	k.BufferBytes = c.Int("kafka", "buffer_bytes", 16<<20, 64<<10, 1<<30)
	k.Compression = compression(c, "kafka", "compression", "lz4")
	k.RequiredAcks = requiredAcks(c, "kafka", "required_acks", "all")
	k.Version = kafkaVersion(c, "kafka", "version", "2.8.0")
	k.FlushInterval = c.Duration("kafka", "flush_interval", 10*time.Millisecond, 0, time.Minute)
	k.FlushBytes = c.Int("kafka", "flush_bytes", 1<<20, 0, 64<<20)
	k.RetryBackoffMax = c.Duration("kafka", "retry_backoff_max", 10*time.Second, 10*time.Millisecond, 10*time.Minute)
	k.Security = kafkaSecurity(c)

	e := &cfg.Etcd
	e.Endpoints = c.HostPorts("etcd", "address", []string{"127.0.0.1:2379"})
	e.Timeout = c.Duration("etcd", "timeout", 5*time.Second, 100*time.Millisecond, time.Minute)
	e.CollectKey = c.Str("etcd", "collect_log_key", "/logagent/%s/collect_config")
	if strings.Count(e.CollectKey, "%s") != 1 || strings.Count(e.CollectKey, "%") != 1 || !strings.HasPrefix(e.CollectKey, "/") {
		c.Fail("etcd", "collect_log_key", "%q must start with / and contain exactly one %%s (the agent's IP)", e.CollectKey)
	}
	e.MetricsKey = c.Str("etcd", "metrics_key", "/logagent/%s/metrics_config")
	if strings.Count(e.MetricsKey, "%s") != 1 || strings.Count(e.MetricsKey, "%") != 1 || !strings.HasPrefix(e.MetricsKey, "/") || e.MetricsKey == e.CollectKey {
		c.Fail("etcd", "metrics_key", "%q must start with /, contain exactly one %%s (the agent's IP) and differ from collect_log_key", e.MetricsKey)
	}
	e.InventoryKey = c.Str("etcd", "inventory_key", "/logagent/agents/%s")
	e.InventoryTTL = c.Duration("etcd", "inventory_ttl", 10*time.Second, 5*time.Second, 10*time.Minute)
	e.InventoryRefresh = c.Duration("etcd", "inventory_refresh", time.Minute, 10*time.Second, time.Hour)
	if strings.Count(e.InventoryKey, "%s") != 1 || strings.Count(e.InventoryKey, "%") != 1 || !strings.HasPrefix(e.InventoryKey, "/") {
		c.Fail("etcd", "inventory_key", "%q must start with / and contain exactly one %%s (the agent's IP)", e.InventoryKey)
	}
	e.KeysKey = keysKey(c)
	e.Security = etcdSecurity(c, e.Endpoints)

	a := &cfg.Agent
	a.Sign = c.Bool("agent", "sign", true)
	a.IP = c.Str("agent", "ip", "")
	a.Hostname = c.Str("agent", "hostname", "")
	a.DataDir = c.Str("agent", "data_dir", "./data/logagent")
	a.MaxLineBytes = c.Int("agent", "max_line_bytes", 256<<10, 1<<10, 900<<10)
	a.PollInterval = c.Duration("agent", "poll_interval", 250*time.Millisecond, 10*time.Millisecond, 10*time.Second)
	a.ScanInterval = c.Duration("agent", "scan_interval", 2*time.Second, 100*time.Millisecond, 5*time.Minute)
	a.RotateWait = c.Duration("agent", "rotate_wait", 5*time.Second, 100*time.Millisecond, time.Hour)
	a.MaxFiles = c.Int("agent", "max_files", 10000, 1, 1000000)
	a.ShutdownTimeout = c.Duration("agent", "shutdown_timeout", 10*time.Second, 0, 10*time.Minute)
	a.MemoryLimit = c.Int("agent", "memory_limit", 64<<20, 16<<20, 1<<40)
	if k.BufferBytes > a.MemoryLimit/3 {
		c.Fail("kafka", "buffer_bytes", "%d is more than a third of [agent] memory_limit (%d): raise memory_limit too", k.BufferBytes, a.MemoryLimit)
	}
	if a.IP != "" && !validIP(a.IP) {
		c.Fail("agent", "ip", "%q is not an IP address", a.IP)
	}
	a.AllowedPaths = c.List("agent", "allowed_paths", []string{"/var/log/**"})
	a.AllowHardLinks = c.Bool("agent", "allow_hard_links", false)
	if _, err := pathguard.New(a.AllowedPaths); err != nil {
		c.Fail("agent", "allowed_paths", "%v", err)
	}
	if a.DataDir == "" {
		c.Fail("agent", "data_dir", "must not be empty")
	} else if !filepath.IsAbs(a.DataDir) {
		// Relative to the working directory, like the seed's ./conf paths.
		a.DataDir = filepath.Clean(a.DataDir)
	}

	cfg.Log = decodeLog(c)
	cfg.HTTP = decodeHTTP(c, "127.0.0.1:9731")
	if err := c.finish(); err != nil {
		return nil, err
	}
	cfg.Settings = c.eff
	return cfg, nil
}

func decodeLog(c *iniFile) Log {
	return Log{
		Level:  c.Enum("log", "level", "info", "trace", "debug", "info", "warn", "warning", "error"),
		Format: c.Enum("log", "format", "text", "text", "json"),
	}
}

// Compression is a Kafka compression codec: "none", "gzip", "snappy",
// "lz4" or "zstd".
type Compression string

func compression(c *iniFile, section, key, def string) Compression {
	return Compression(c.Enum(section, key, def, "none", "gzip", "snappy", "lz4", "zstd"))
}

// Acks is how many replicas acknowledge a produce request.
type Acks string

// The acknowledgements a producer can ask for (required_acks all or -1,
// 1, 0).
const (
	AcksAll    Acks = "all"    // every in-sync replica
	AcksLeader Acks = "leader" // the partition's leader alone
	AcksNone   Acks = "none"   // none: the request is not answered
)

func requiredAcks(c *iniFile, section, key, def string) Acks {
	switch c.Enum(section, key, def, "all", "-1", "1", "0") {
	case "1":
		return AcksLeader
	case "0":
		return AcksNone
	}
	return AcksAll
}

// KafkaVersion is the Kafka protocol version the clients speak, in
// sarama's form: "2.8.0" from 1.0 on, "0.11.0.2" before.
type KafkaVersion string

// kafkaVersion accepts 0.11.0 or newer: record headers, which carry the
// event metadata, need the v2 message format.
func kafkaVersion(c *iniFile, section, key, def string) KafkaVersion {
	v := c.Str(section, key, def)
	parts := strings.Split(v, ".")
	nums := make([]int, 0, 4)
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || p == "" || p[0] == '+' {
			nums = nil
			break
		}
		nums = append(nums, n)
	}
	switch {
	case len(nums) == 3 && nums[0] == 0:
		// four parts before 1.0 (0.11.0.0); accept the three-part name
		// operators write (0.11.0) as well.
		nums = append(nums, 0)
	case len(nums) == 3, len(nums) == 4 && nums[0] == 0:
	default:
		c.Fail(section, key, "%q is not a Kafka version (e.g. 2.8.0)", v)
		return "2.8.0"
	}
	if nums[0] == 0 && nums[1] < 11 {
		c.Fail(section, key, "%s is too old: record headers need 0.11.0 or newer", v)
		return "2.8.0"
	}
	out := make([]string, len(nums))
	for i, n := range nums {
		out[i] = strconv.Itoa(n)
	}
	return KafkaVersion(strings.Join(out, "."))
}

// KeysKeyFor returns the etcd key of ip's signing keys.
func (e Etcd) KeysKeyFor(ip string) string { return fmt.Sprintf(e.KeysKey, ip) }

// keysKey reads [etcd] keys_key, the same for both daemons.
func keysKey(c *iniFile) string {
	k := c.Str("etcd", "keys_key", "/logagent/keys/%s")
	if !strings.HasSuffix(k, "/%s") || strings.Count(k, "%") != 1 || !strings.HasPrefix(k, "/") || k == "/%s" {
		c.Fail("etcd", "keys_key", "%q must start with / and end with /%%s (the agent's IP)", k)
	}
	return k
}

// CollectKeyFor returns the etcd key of ip's collect config.
func (e Etcd) CollectKeyFor(ip string) string { return fmt.Sprintf(e.CollectKey, ip) }

// MetricsKeyFor returns the etcd key of ip's host metrics config.
func (e Etcd) MetricsKeyFor(ip string) string { return fmt.Sprintf(e.MetricsKey, ip) }
