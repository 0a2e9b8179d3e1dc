// Package metricsconf is the schema of an agent's host metrics config, the
// JSON object an operator puts at /logagent/<ip>/metrics_config, and its
// validation. The agent, the transfer's topic discovery and logctl parse
// it here, so they accept and reject exactly the same documents.
//
//	{"interval": "10s", "topic": "host_metrics", "prometheus": true,
//	 "influx": {"url": "http://influx:8086/write?db=telegraf"}}
package metricsconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
)

// Bounds of the config.
const (
	MaxBytes        = 16 << 10
	MinInterval     = time.Second
	MaxInterval     = time.Hour
	DefaultInterval = 10 * time.Second
	// DefaultMaxPoints bounds the InfluxDB points an agent holds while
	// InfluxDB is unreachable (the oldest go first, counted): about 150
	// collections of a small host.
	DefaultMaxPoints = 10000
	MaxMaxPoints     = 1000000
	// TokenEnvPrefix is what the environment variable a token names must
	// start with: a config writer can name variables the agent was given
	// for this, and no other (AWS_SECRET_ACCESS_KEY would otherwise go to
	// any URL the writer chooses).
	TokenEnvPrefix = "LOGPIPE_"
)

// Config is a validated metrics config. The zero Config (no outputs)
// collects nothing.
type Config struct {
	Interval   time.Duration
	Topic      string // "" for none
	Prometheus bool
	Influx     *Influx // nil for none
}

// Influx is where points are pushed.
type Influx struct {
	// URL is the write endpoint: InfluxDB 1.x /write?db=… or 2.x
	// /api/v2/write?org=…&bucket=…, with the precision set by the agent.
	URL string
	// V2 is set for /api/v2/write.
	V2 bool
	// TokenEnv names the environment variable holding the token (sent as
	// "Authorization: Token …"); "" for none.
	TokenEnv  string
	MaxPoints int
}

// Active reports whether anything is collected.
func (c *Config) Active() bool { return c.Topic != "" || c.Prometheus || c.Influx != nil }

// Outputs names the outputs in force ("kafka", "prometheus", "influx").
func (c *Config) Outputs() []string {
	var out []string
	if c.Topic != "" {
		out = append(out, "kafka")
	}
	if c.Prometheus {
		out = append(out, "prometheus")
	}
	if c.Influx != nil {
		out = append(out, "influx")
	}
	return out
}

type rawConfig struct {
	Interval   *string    `json:"interval"`
	Topic      string     `json:"topic"`
	Prometheus bool       `json:"prometheus"`
	Influx     *rawInflux `json:"influx"`
}

type rawInflux struct {
	URL       string `json:"url"`
	Token     string `json:"token"`
	MaxPoints *int   `json:"max_points"`
}

// Parse validates a metrics config whole: every error is reported, and a
// config with any is rejected.
func Parse(data []byte) (*Config, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("metrics config is %d bytes, more than the limit of %d", len(data), MaxBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`metrics config is empty; want a JSON object such as {"interval":"10s","prometheus":true}`)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var raw *rawConfig
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("metrics config is not a JSON object of the expected fields: %w", collectconf.JSONError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("metrics config has trailing data after the JSON object")
	}
	if raw == nil {
		return nil, errors.New("metrics config is null; want a JSON object (delete the key for no host metrics)")
	}
	c := &Config{Interval: DefaultInterval, Topic: raw.Topic, Prometheus: raw.Prometheus}
	var errs []error
	if raw.Interval != nil {
		d, err := time.ParseDuration(*raw.Interval)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("interval %q: want a duration such as \"10s\"", *raw.Interval))
		case d < MinInterval || d > MaxInterval:
			errs = append(errs, fmt.Errorf("interval %s: want %s to %s", d, MinInterval, MaxInterval))
		default:
			c.Interval = d
		}
	}
	if raw.Topic != "" {
		if err := collectconf.ValidTopic(raw.Topic); err != nil {
			errs = append(errs, err)
		}
	}
	if raw.Influx != nil {
		in, err := parseInflux(raw.Influx)
		if err != nil {
			errs = append(errs, fmt.Errorf("influx: %w", err))
		}
		c.Influx = in
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func parseInflux(r *rawInflux) (*Influx, error) {
	var errs []error
	in := &Influx{URL: r.URL, MaxPoints: DefaultMaxPoints}
	u, err := url.Parse(r.URL)
	switch {
	case r.URL == "":
		errs = append(errs, errors.New("url is required (http://host:8086/write?db=NAME or …/api/v2/write?org=ORG&bucket=NAME)"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("url %q: want http or https", r.URL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("url %q has no host", r.URL))
	case u.User != nil:
		errs = append(errs, errors.New("url holds credentials: put the token's environment variable in \"token\" instead"))
	default:
		q := u.Query()
		switch strings.TrimSuffix(u.Path, "/") {
		case "/write":
			if q.Get("db") == "" {
				errs = append(errs, fmt.Errorf("url %q: /write needs ?db=NAME", r.URL))
			}
		case "/api/v2/write":
			in.V2 = true
			if q.Get("bucket") == "" {
				errs = append(errs, fmt.Errorf("url %q: /api/v2/write needs ?bucket=NAME (and org=ORG)", r.URL))
			}
		default:
			errs = append(errs, fmt.Errorf("url %q: the path must be /write (InfluxDB 1.x) or /api/v2/write (2.x)", r.URL))
		}
		if q.Get("precision") != "" {
			errs = append(errs, fmt.Errorf("url %q: leave precision out (the agent sets it)", r.URL))
		}
	}
	if r.Token != "" {
		name, ok := strings.CutPrefix(r.Token, "env:")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("token: want env:%sNAME, the environment variable holding it on the agent's host (a token is never written into etcd)", TokenEnvPrefix))
		case !strings.HasPrefix(name, TokenEnvPrefix) || len(name) == len(TokenEnvPrefix):
			errs = append(errs, fmt.Errorf("token: env:%s is not allowed; the variable's name must start with %s", name, TokenEnvPrefix))
		default:
			in.TokenEnv = name
		}
	}
	if r.MaxPoints != nil {
		if *r.MaxPoints < 1 || *r.MaxPoints > MaxMaxPoints {
			errs = append(errs, fmt.Errorf("max_points %d: want 1 to %d", *r.MaxPoints, MaxMaxPoints))
		} else {
			in.MaxPoints = *r.MaxPoints
		}
	}
	return in, errors.Join(errs...)
}

// ParseTopic returns the topic of a metrics config ("" for none), for the
// transfer's topic discovery: it reads only what it needs, and rejects
// what the agent would reject.
func ParseTopic(data []byte) (string, error) {
	c, err := Parse(data)
	if err != nil {
		return "", err
	}
	return c.Topic, nil
}
