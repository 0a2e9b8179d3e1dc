package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
)

// Consumer is logtransfer's [kafka].
type Consumer struct {
	Brokers []string
	GroupID string
	// Topics are always consumed; discovery adds to them.
	Topics  []string
	Version KafkaVersion
	// InitialOffset is where a partition without a committed offset is
	// read from: "oldest" or "newest".
	InitialOffset string
	// DLQSuffix names the dead-letter topic: <topic><suffix>.
	DLQSuffix string
	// QuarantineSuffix names the quarantine topic, where records that fail
	// the origin check go: <topic><suffix>.
	QuarantineSuffix string
	// SessionTimeout is how long the group waits for a silent member
	// (e.g. a killed instance) before giving its partitions to others.
	SessionTimeout time.Duration
	// InstanceID enables static group membership: an instance restarted
	// with the same id takes its partitions back at once, without a
	// rebalance or waiting out the session timeout.
	InstanceID string
	// Security is TLS and SASL towards the brokers, for the consumer
	// group and the dead-letter producer alike.
	Security KafkaSecurity
}

// Discovery is logtransfer's [etcd].
type Discovery struct {
	Endpoints []string
	Timeout   time.Duration
	Enabled   bool
	// CollectKey is the agents' key pattern; only keys matching it are
	// read as collect configs.
	CollectKey string
	// MetricsKey is the agents' host metrics key pattern (its topics are
	// discovered too); it shares CollectKey's prefix, which is watched.
	MetricsKey string
	// Pattern, if set, is what a discovered topic must match (besides
	// never starting with _ or .).
	Pattern *regexp.Regexp
	// Security is TLS and user/password towards etcd.
	Security EtcdSecurity
	// Pipelines watches custom processing pipelines under PipelinesKey.
	Pipelines    bool
	PipelinesKey string
	// KeysKey is the agents' signing keys' pattern (see [etcd] keys_key
	// of logagent); the transfer watches every key under its prefix.
	KeysKey string
	// ElectionKey is the prefix the transfers elect their leader under
	// (retention, index templates) when they use etcd; "" (or no etcd):
	// each acts alone.
	ElectionKey string
	// ElectionTTL is the leader's lease: how long a dead leader keeps the
	// lead.
	ElectionTTL time.Duration
	// RetentionKey is where operators set retention without a restart
	// (JSON: default_days, topics); "": the ini's only.
	RetentionKey string
}

// ES is logtransfer's [es].
type ES struct {
	URLs     []string
	Username string
	Password Secret
	APIKey   Secret
	// TLS applies to the https:// URLs.
	TLS           TLS
	Workers       int
	BulkActions   int
	BulkBytes     int
	FlushInterval time.Duration
	Index         string
	// Pipeline is an Elasticsearch ingest pipeline every bulk request names
	// ("": none).
	Pipeline        string
	ManageTemplates bool
	// Headers are extra HTTP headers on every request (ES-compatible
	// stores such as VictoriaLogs take their options this way).
	Headers         map[string]string
	RetryBackoffMax time.Duration
	ShutdownTimeout time.Duration
	// MaxFuture and MaxAge bound how far a record's index-time stamp may
	// be after or before the record's own Kafka timestamp and still choose
	// its daily index (0: no bound); beyond, the Kafka timestamp chooses.
	MaxFuture, MaxAge time.Duration
}

// IndexSettings are what the transfer gives the indices of a topic: set
// in its index template, so they apply to the indices created after.
type IndexSettings struct {
	Shards, Replicas int
	// RefreshInterval is how soon a document is searchable (-1: only on
	// an explicit refresh).
	RefreshInterval time.Duration
	// RetentionDays deletes a topic's indices once every day they can
	// hold is older than this many days (0: kept for ever).
	RetentionDays int
}

// Indices are [index] and its per-topic overrides, [index.<topic>].
type Indices struct {
	Default  IndexSettings
	PerTopic map[string]IndexSettings // by topic as written in the section name
	// RetentionEvery is the time between two retention sweeps.
	RetentionEvery time.Duration
}

// For is topic's settings.
func (x Indices) For(topic string) IndexSettings {
	if s, ok := x.PerTopic[topic]; ok {
		return s
	}
	return x.Default
}

// TransferConfig is the whole of logtransfer.ini.
type TransferConfig struct {
	Path      string
	ini       *iniFile // where each key was set (Where)
	Kafka     Consumer
	Discovery Discovery
	ES        ES
	Indices   Indices
	Log       Log
	HTTP      HTTP
	// MemoryLimit is the memory logtransfer aims to stay under (a soft
	// limit for the Go runtime, see cmd/logtransfer).
	MemoryLimit int
	// DataDir keeps the last good custom pipelines, so a transfer started
	// while etcd is unreachable knows them at once.
	DataDir string
	// Settings are the effective settings, defaults included and secrets
	// redacted (logtransfer test config).
	Settings []Setting
	// VerifySignatures checks every record's signature against its
	// agent's key and quarantines those that fail.
	VerifySignatures bool
	// AcceptUnsigned lets unsigned records through (agents older than
	// signing, other producers), except those claiming a host that signs.
	AcceptUnsigned bool
}

// LoadTransfer reads and validates a logtransfer ini file.
func LoadTransfer(path string) (*TransferConfig, error) {
	c, err := loadINI(path)
	if err != nil {
		return nil, err
	}
	return decodeTransfer(c)
}

// ParseTransfer is LoadTransfer on bytes; name is used in error messages.
func ParseTransfer(name string, data []byte) (*TransferConfig, error) {
	c, err := parseINI(name, data)
	if err != nil {
		return nil, err
	}
	return decodeTransfer(c)
}

// DefaultIndex is the index name pattern: the topic and the event's day.
const DefaultIndex = "%{topic}-%{+2006.01.02}"

func decodeTransfer(c *iniFile) (*TransferConfig, error) {
	cfg := &TransferConfig{Path: c.path, ini: c}
	k := &cfg.Kafka
	k.Brokers = c.HostPorts("kafka", "address", []string{"127.0.0.1:9092"})
	k.GroupID = c.Str("kafka", "group_id", "logtransfer")
	if k.GroupID == "" {
		c.Fail("kafka", "group_id", "must not be empty")
	}
	if _, ok := c.raw("kafka", "topics"); ok {
		k.Topics = c.List("kafka", "topics", nil)
	} else {
		c.note("kafka", "topics", "")
	}
	for _, t := range k.Topics {
		if err := collectconf.ValidTopic(t); err != nil {
			c.Fail("kafka", "topics", "%v", err)
		}
	}
	k.Version = kafkaVersion(c, "kafka", "version", "2.8.0")
	k.InitialOffset = c.Enum("kafka", "initial_offset", "oldest", "oldest", "newest")
	k.SessionTimeout = c.Duration("kafka", "session_timeout", 10*time.Second, 6*time.Second, 5*time.Minute)
	k.InstanceID = c.Str("kafka", "instance_id", "")
	k.DLQSuffix = c.Str("kafka", "dlq_suffix", ".dlq")
	if k.DLQSuffix == "" || collectconf.ValidTopic("x"+k.DLQSuffix) != nil {
		c.Fail("kafka", "dlq_suffix", "%q must be non-empty and legal in a topic name", k.DLQSuffix)
	}
	k.QuarantineSuffix = c.Str("kafka", "quarantine_suffix", ".quarantine")
	if k.QuarantineSuffix == "" || k.QuarantineSuffix == k.DLQSuffix || collectconf.ValidTopic("x"+k.QuarantineSuffix) != nil {
		c.Fail("kafka", "quarantine_suffix", "%q must be non-empty, legal in a topic name and not dlq_suffix", k.QuarantineSuffix)
	}
	k.Security = kafkaSecurity(c)

	d := &cfg.Discovery
	d.Enabled = c.Bool("etcd", "discover_topics", false)
	d.Endpoints = c.HostPorts("etcd", "address", []string{"127.0.0.1:2379"})
	d.Timeout = c.Duration("etcd", "timeout", 5*time.Second, 100*time.Millisecond, time.Minute)
	d.CollectKey = c.Str("etcd", "collect_log_key", "/logagent/%s/collect_config")
	if strings.Count(d.CollectKey, "%s") != 1 || strings.Count(d.CollectKey, "%") != 1 || !strings.HasPrefix(d.CollectKey, "/") || strings.HasPrefix(d.CollectKey, "/%s") {
		c.Fail("etcd", "collect_log_key", "%q must start with a /-prefix and contain exactly one %%s (the agent's IP)", d.CollectKey)
	}
	d.MetricsKey = c.Str("etcd", "metrics_key", "/logagent/%s/metrics_config")
	collectPrefix, _, _ := strings.Cut(d.CollectKey, "%s")
	if strings.Count(d.MetricsKey, "%s") != 1 || strings.Count(d.MetricsKey, "%") != 1 || !strings.HasPrefix(d.MetricsKey, collectPrefix) || d.MetricsKey == d.CollectKey {
		c.Fail("etcd", "metrics_key", "%q must start with collect_log_key's prefix %q, contain exactly one %%s (the agent's IP) and differ from collect_log_key", d.MetricsKey, collectPrefix)
	}
	if p := c.Str("etcd", "discover_pattern", ""); p != "" {
		re, err := regexp.Compile("^(?:" + p + ")$")
		if err != nil {
			c.Fail("etcd", "discover_pattern", "%v", err)
		}
		d.Pattern = re
	}
	d.KeysKey = keysKey(c)
	d.Pipelines = c.Bool("etcd", "pipelines", d.Enabled)
	d.PipelinesKey = c.Str("etcd", "pipelines_key", "/logtransfer/pipelines/")
	if !strings.HasPrefix(d.PipelinesKey, "/") || !strings.HasSuffix(d.PipelinesKey, "/") {
		c.Fail("etcd", "pipelines_key", "%q must start and end with /", d.PipelinesKey)
	}
	d.RetentionKey = c.Str("etcd", "retention_key", "/logtransfer/retention")
	if d.RetentionKey != "" && (!strings.HasPrefix(d.RetentionKey, "/") || strings.HasSuffix(d.RetentionKey, "/")) {
		c.Fail("etcd", "retention_key", "%q must start with / and not end with one", d.RetentionKey)
	}
	d.ElectionKey = c.Str("etcd", "election_key", "/logtransfer/leader")
	if d.ElectionKey != "" && (!strings.HasPrefix(d.ElectionKey, "/") || strings.HasSuffix(d.ElectionKey, "/")) {
		c.Fail("etcd", "election_key", "%q must start with / and not end with one", d.ElectionKey)
	}
	d.ElectionTTL = c.Duration("etcd", "election_ttl", 10*time.Second, 2*time.Second, 5*time.Minute)
	d.Security = etcdSecurity(c, d.Endpoints)
	if !d.Enabled && len(k.Topics) == 0 {
		c.Fail("kafka", "topics", "no topics to consume: list them here or set [etcd] discover_topics = true")
	}

	e := &cfg.ES
	e.URLs = c.List("es", "address", []string{"http://127.0.0.1:9200"})
	https := false
	for i, u := range e.URLs {
		if !strings.Contains(u, "://") {
			u = "http://" + u
			e.URLs[i] = u
		}
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || (pu.Scheme != "http" && pu.Scheme != "https") {
			c.Fail("es", "address", "%q is not an http(s) URL", redactURL(u))
			continue
		}
		if pu.User != nil {
			c.Fail("es", "address", "%q: credentials in the URL are not allowed (use username/password or api_key)", redactURL(u))
		}
		https = https || pu.Scheme == "https"
	}
	e.TLS = c.TLS("es", https, "no address is https://")
	e.Username = c.Str("es", "username", "")
	e.Password = c.Secret("es", "password")
	e.APIKey = c.Secret("es", "api_key")
	passSet, keySet := c.nonEmpty("es", "password"), c.nonEmpty("es", "api_key")
	if keySet && e.Username != "" {
		c.Fail("es", "api_key", "set either username/password or api_key, not both")
	}
	if e.Username != "" && !passSet {
		c.Fail("es", "username", "needs password")
	}
	if e.Username == "" && passSet {
		c.Fail("es", "password", "needs username")
	}
	// (Only for credentials that are otherwise valid: one error at a time.)
	validCreds := (e.Username != "" && !e.Password.IsZero() && !keySet) || (!e.APIKey.IsZero() && e.Username == "")
	if insecure := c.Bool("es", "allow_insecure_auth", false); validCreds && !insecure {
		for _, u := range e.URLs {
			if strings.HasPrefix(u, "http://") {
				c.Fail("es", "address", "%q is plain http: the credentials would cross the network in cleartext (use https://, or set allow_insecure_auth = true)", redactURL(u))
				break
			}
		}
		if e.TLS.InsecureSkipVerify {
			c.Fail("es", "tls_insecure_skip_verify", "with credentials sends them to whoever answers, unverified (set tls_ca, or set allow_insecure_auth = true)")
		}
	}
	e.Workers = c.Int("es", "workers", 16, 1, 1024)
	e.BulkActions = c.Int("es", "bulk_actions", 1000, 1, 100000)
	e.BulkBytes = c.Int("es", "bulk_bytes", 5<<20, 1<<10, 100<<20)
	e.FlushInterval = c.Duration("es", "flush_interval", time.Second, time.Millisecond, time.Minute)
	e.Index = c.Str("es", "index", DefaultIndex) // parsed by the transfer (see TransferConfig.Where)
	e.Pipeline = c.Str("es", "pipeline", "")
	if strings.ContainsFunc(e.Pipeline, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(e.Pipeline) > 512 {
		c.Fail("es", "pipeline", "%q is not an ingest pipeline id (no spaces or control characters, at most 512 bytes)", e.Pipeline)
	}
	e.ManageTemplates = c.Bool("es", "manage_templates", true)
	e.MaxFuture = c.Duration("es", "max_future", 24*time.Hour, 0, 366*24*time.Hour)
	e.MaxAge = c.Duration("es", "max_age", 7*24*time.Hour, 0, 100*366*24*time.Hour)
	e.Headers = map[string]string{}
	if v, ok := c.raw("es", "headers"); ok {
		var names []string
		defer func() { c.note("es", "headers", strings.Join(names, "; ")) }()
		for _, part := range strings.Split(v, ";") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			name, val, found := strings.Cut(part, ":")
			name = strings.TrimSpace(name)
			if !found || name == "" || strings.ContainsAny(name, " \t") {
				c.Fail("es", "headers", "%q: want Name: value; Name2: value2", part)
				continue
			}
			e.Headers[name] = strings.TrimSpace(val)
			names = append(names, name+": [redacted]") // may carry a token
		}
	}
	e.RetryBackoffMax = c.Duration("es", "retry_backoff_max", 30*time.Second, 10*time.Millisecond, 10*time.Minute)
	e.ShutdownTimeout = c.Duration("es", "shutdown_timeout", 10*time.Second, 0, 10*time.Minute)

	cfg.Indices = decodeIndices(c)

	cfg.MemoryLimit = c.Int("transfer", "memory_limit", 112<<20, 32<<20, 1<<40)
	cfg.DataDir = c.Str("transfer", "data_dir", "./data/logtransfer")
	if cfg.DataDir == "" {
		c.Fail("transfer", "data_dir", "must not be empty")
	} else {
		cfg.DataDir = filepath.Clean(cfg.DataDir)
	}
	cfg.VerifySignatures = c.Bool("transfer", "verify_signatures", true)
	cfg.AcceptUnsigned = c.Bool("transfer", "accept_unsigned", false)
	cfg.Log = decodeLog(c)
	cfg.HTTP = decodeHTTP(c, "127.0.0.1:9732")
	if err := c.finish(); err != nil {
		return nil, err
	}
	cfg.Settings = c.eff
	return cfg, nil
}

// Where names the file, line, section and key of a setting, as the
// loader's errors do, for a value the daemon checks itself (the index
// pattern, which the transfer parses): "logtransfer.ini:4: [es] index".
func (c *TransferConfig) Where(section, key string) string {
	if c.ini == nil {
		return fmt.Sprintf("%s: [%s] %s", c.Path, section, key)
	}
	return c.ini.where(section, key)
}

// decodeIndices reads [index], then every [index.<topic>], each key of
// which falls back to [index]'s.
func decodeIndices(c *iniFile) Indices {
	read := func(section string, def IndexSettings) IndexSettings {
		x := IndexSettings{
			Shards:          c.Int(section, "shards", def.Shards, 1, 1024),
			Replicas:        c.Int(section, "replicas", def.Replicas, 0, 64),
			RefreshInterval: c.Duration(section, "refresh_interval", def.RefreshInterval, -time.Second, time.Hour),
			RetentionDays:   c.Int(section, "retention_days", def.RetentionDays, 0, 100*366),
		}
		if r := x.RefreshInterval; r != def.RefreshInterval && (r < 0 && r != -time.Second || r >= 0 && r < time.Millisecond) {
			c.Fail(section, "refresh_interval", "%s: want at least 1ms, or -1 (refresh only when asked)", r)
			x.RefreshInterval = def.RefreshInterval
		}
		return x
	}
	x := Indices{Default: read("index", IndexSettings{Shards: 1, Replicas: 1, RefreshInterval: time.Second}), PerTopic: map[string]IndexSettings{},
		RetentionEvery: c.Duration("index", "retention_interval", time.Hour, time.Second, 24*time.Hour)}
	for _, s := range c.f.Sections() {
		topic, ok := strings.CutPrefix(s.Name(), "index.")
		if !ok {
			continue
		}
		if err := collectconf.ValidTopic(topic); err != nil {
			c.used[lineKey(s.Name(), "")] = true // reported here, not again as unknown
			c.Fail(s.Name(), "", "%v", err)
			continue
		}
		x.PerTopic[topic] = read(s.Name(), x.Default)
	}
	return x
}
