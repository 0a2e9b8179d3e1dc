package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/logpipe/logpipe/internal/platform/security"
)

// Secret is a password or API key from the config, already resolved from
// its env: or file: reference. It prints as "[redacted]" with every fmt
// verb, in logrus fields and in JSON, so logging a config struct cannot
// leak it; Reveal returns the value for the one place that needs it.
type Secret struct{ v string }

// NewSecret wraps v.
func NewSecret(v string) Secret { return Secret{v: v} }

// Reveal returns the secret.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether no secret is set.
func (s Secret) IsZero() bool { return s.v == "" }

// String is "[redacted]", or "" when unset.
func (s Secret) String() string {
	if s.v == "" {
		return ""
	}
	return "[redacted]"
}

// Format makes every verb (%v, %+v, %#v, %s, %q, %x...) print String.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalText keeps the secret out of JSON (logrus' JSON formatter, status
// pages).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// TLS is a client TLS setup read from a section's tls_* keys. The loader
// reads and checks the files once, at start, so a missing or malformed
// file stops the daemon with the key at fault.
type TLS struct {
	Enabled bool
	security.Files
	config *tls.Config
}

// NewTLS reads f (for callers that do not load an ini file, such as
// logctl). Errors are *security.FileError.
func NewTLS(f security.Files) (TLS, error) {
	c, err := f.Config()
	if err != nil {
		return TLS{}, err
	}
	return TLS{Enabled: true, Files: f, config: c}, nil
}

// Config returns the client *tls.Config, or nil when TLS is off. Each call
// returns a copy.
func (t TLS) Config() *tls.Config {
	if !t.Enabled {
		return nil
	}
	if t.config == nil {
		// Built by hand rather than loaded: read the files now. If they
		// are bad, every handshake fails with the reason rather than
		// falling back to anything weaker.
		c, err := t.Files.Config()
		if err != nil {
			return &tls.Config{MinVersion: tls.VersionTLS12, VerifyConnection: func(tls.ConnectionState) error { return err }}
		}
		return c
	}
	return t.config.Clone()
}

// SASL is the Kafka SASL setup.
type SASL struct {
	// Mechanism is "" (none), "plain", "scram-sha-256" or "scram-sha-512".
	Mechanism string
	User      string
	Password  Secret
}

// KafkaSecurity is TLS and SASL for every Kafka client of a daemon (the
// agent's producer; the transfer's consumer group and dead-letter
// producer).
type KafkaSecurity struct {
	TLS  TLS
	SASL SASL
}

// EtcdSecurity is TLS and user/password authentication for etcd.
type EtcdSecurity struct {
	TLS      TLS
	Username string
	Password Secret
}

// Secret reads a secret-bearing key: a literal, env:NAME or file:/path.
// Errors name the key and the variable or file, never the value.
func (c *iniFile) Secret(section, key string) Secret {
	s := c.secretValue(section, key)
	c.note(section, key, s.String())
	return s
}

func (c *iniFile) secretValue(section, key string) Secret {
	v, ok := c.raw(section, key)
	if !ok || v == "" {
		return Secret{}
	}
	s, err := security.ResolveSecret(v)
	if err != nil {
		c.errorf(section, key, "%v", err)
		return Secret{}
	}
	return Secret{v: s}
}

var tlsKeys = []string{"tls_ca", "tls_cert", "tls_key", "tls_server_name", "tls_insecure_skip_verify"}

// TLS reads section's tls_* keys. enabled says whether the section uses
// TLS; when it does not, any tls_* key set is an error explaining why
// (off names how TLS is switched on).
func (c *iniFile) TLS(section string, enabled bool, off string) TLS {
	var t TLS
	t.CA = c.Str(section, "tls_ca", "")
	t.Cert = c.Str(section, "tls_cert", "")
	t.Key = c.Str(section, "tls_key", "")
	t.ServerName = c.Str(section, "tls_server_name", "")
	t.InsecureSkipVerify = c.Bool(section, "tls_insecure_skip_verify", false)
	if !enabled {
		set := map[string]bool{"tls_ca": t.CA != "", "tls_cert": t.Cert != "", "tls_key": t.Key != "",
			"tls_server_name": t.ServerName != "", "tls_insecure_skip_verify": t.InsecureSkipVerify}
		for _, k := range tlsKeys {
			if set[k] {
				c.Fail(section, k, "is set but TLS is off (%s)", off)
			}
		}
		return TLS{}
	}
	t.Enabled = true
	bad := false
	if t.Cert != "" && t.Key == "" {
		c.Fail(section, "tls_cert", "needs tls_key (the client certificate's private key)")
		bad = true
	}
	if t.Key != "" && t.Cert == "" {
		c.Fail(section, "tls_key", "needs tls_cert (the client certificate)")
		bad = true
	}
	if t.InsecureSkipVerify && t.CA != "" {
		c.Fail(section, "tls_insecure_skip_verify", "true ignores tls_ca: set one or the other")
		bad = true
	}
	if bad {
		return t
	}
	cfg, err := t.Files.Config()
	if err != nil {
		key := "tls_cert"
		var fe *security.FileError
		if errors.As(err, &fe) {
			key = map[string]string{security.FieldCA: "tls_ca", security.FieldCert: "tls_cert", security.FieldKey: "tls_key"}[fe.Field]
		}
		c.Fail(section, key, "%v", err)
		return t
	}
	t.config = cfg
	return t
}

// kafkaSecurity reads [kafka] tls* and sasl_* (the same keys for both
// daemons).
func kafkaSecurity(c *iniFile) KafkaSecurity {
	var s KafkaSecurity
	s.TLS = c.TLS("kafka", c.Bool("kafka", "tls", false), "set tls = true")
	mech := c.Enum("kafka", "sasl_mechanism", "none", "none", "plain", "scram-sha-256", "scram-sha-512")
	insecure := c.Bool("kafka", "allow_insecure_auth", false)
	user := c.Str("kafka", "sasl_user", "")
	pass := c.Secret("kafka", "sasl_password")
	passSet := c.nonEmpty("kafka", "sasl_password")
	if mech == "none" {
		if user != "" {
			c.Fail("kafka", "sasl_user", "is set but sasl_mechanism is none")
		}
		if passSet {
			c.Fail("kafka", "sasl_password", "is set but sasl_mechanism is none")
		}
		return s
	}
	var missing []string
	if user == "" {
		missing = append(missing, "sasl_user")
	}
	if !passSet {
		missing = append(missing, "sasl_password")
	}
	if len(missing) > 0 {
		c.Fail("kafka", "sasl_mechanism", "%s needs %s", mech, strings.Join(missing, " and "))
	}
	if mech == "plain" && len(missing) == 0 && !pass.IsZero() && !insecure {
		switch {
		case !s.TLS.Enabled:
			c.Fail("kafka", "sasl_mechanism", "plain without tls = true sends the password in cleartext (enable tls, use scram-sha-256/512, or set allow_insecure_auth = true)")
		case s.TLS.InsecureSkipVerify:
			c.Fail("kafka", "tls_insecure_skip_verify", "with sasl_mechanism plain sends the password to whoever answers, unverified (set tls_ca, use scram-sha-256/512, or set allow_insecure_auth = true)")
		}
	}
	s.SASL = SASL{Mechanism: mech, User: user, Password: pass}
	return s
}

// etcdSecurity reads [etcd] tls* and username/password; endpoints decide
// the default of tls (on when any is https://).
func etcdSecurity(c *iniFile, endpoints []string) EtcdSecurity {
	var https, plain []string
	for _, ep := range endpoints {
		switch {
		case strings.HasPrefix(ep, "https://"):
			https = append(https, ep)
		case strings.HasPrefix(ep, "http://"):
			plain = append(plain, ep)
		}
	}
	on := c.Bool("etcd", "tls", len(https) > 0)
	if !on && len(https) > 0 {
		c.Fail("etcd", "tls", "is false but address %q uses https", redactURL(https[0]))
	}
	if on && len(plain) > 0 {
		c.Fail("etcd", "address", "%q is plain http but tls = true: use https:// or no scheme", redactURL(plain[0]))
	}
	s := EtcdSecurity{TLS: c.TLS("etcd", on, "set tls = true or use https:// addresses")}
	s.Username = c.Str("etcd", "username", "")
	insecure := c.Bool("etcd", "allow_insecure_auth", false)
	s.Password = c.Secret("etcd", "password")
	passSet := c.nonEmpty("etcd", "password")
	if s.Username != "" && !passSet {
		c.Fail("etcd", "username", "needs password")
	}
	if s.Username == "" && passSet {
		c.Fail("etcd", "password", "needs username")
	}
	if s.Username != "" && !s.Password.IsZero() && !insecure {
		switch {
		case !on:
			c.Fail("etcd", "password", "is sent in cleartext without TLS (set tls = true or use https:// addresses, or set allow_insecure_auth = true)")
		case s.TLS.InsecureSkipVerify:
			c.Fail("etcd", "tls_insecure_skip_verify", "with a password sends it to whoever answers, unverified (set tls_ca, or set allow_insecure_auth = true)")
		}
	}
	return s
}

// nonEmpty reports whether section/key is set to something (a secret
// whose reference failed to resolve counts: its error is reported once).
func (c *iniFile) nonEmpty(section, key string) bool {
	v, ok := c.raw(section, key)
	return ok && v != ""
}

// redactURL hides the user information of a URL-ish string for error
// messages.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	if at < 0 {
		return u
	}
	start := 0
	if i := strings.Index(u, "://"); i >= 0 && i < at {
		start = i + 3
	}
	return u[:start] + "xxxxx" + u[at:]
}
