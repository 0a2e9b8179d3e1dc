package agent

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
	"github.com/logpipe/logpipe/internal/platform/probe"
)

// TestOutput checks, step by step, that the agent can reach what cfg names
// (logagent test output): etcd, with its TLS and auth, and the agent's
// keys there; the collect and host metrics configs stored for it; Kafka,
// with its TLS and SASL, and every topic those configs name. It prints a
// line a step and returns the first failure.
func TestOutput(ctx context.Context, cfg *config.AgentConfig, w io.Writer) error {
	r := probe.New(w)
	ip := cfg.Agent.IP
	r.Section("agent")
	r.Step("IP", func() (string, error) {
		if ip != "" {
			return ip + " ([agent] ip or -ip)", nil
		}
		var err error
		if ip, err = DetectIP(cfg.Etcd.Endpoints); err != nil {
			return "", err
		}
		return ip + " (the address that reaches etcd)", nil
	})
	var topics []string
	if r.Failed == nil {
		collectKey, metricsKey := cfg.Etcd.CollectKeyFor(ip), cfg.Etcd.MetricsKeyFor(ip)
		vals := r.Etcd(ctx, cfg.Etcd.Endpoints, cfg.Etcd.Timeout, cfg.Etcd.Security, []string{collectKey, metricsKey})
		if v, ok := vals[collectKey]; ok {
			r.Step("collect config", func() (string, error) {
				entries, err := collectconf.Parse(v)
				if err != nil {
					return "", fmt.Errorf("the collect config at %s is invalid (the agent would keep its last good one): %w", collectKey, err)
				}
				for _, e := range entries {
					topics = append(topics, e.Topic)
				}
				return fmt.Sprintf("%d entries", len(entries)), nil
			})
		}
		if v, ok := vals[metricsKey]; ok {
			r.Step("host metrics config", func() (string, error) {
				m, err := metricsconf.Parse(v)
				if err != nil {
					return "", fmt.Errorf("the host metrics config at %s is invalid: %w", metricsKey, err)
				}
				if m.Topic != "" {
					topics = append(topics, m.Topic)
					return "to topic " + m.Topic, nil
				}
				return "no Kafka output", nil
			})
		}
	}
	slices.Sort(topics)
	r.Kafka(ctx, cfg.Kafka.Brokers, cfg.Kafka.Version, cfg.Kafka.Security, cfg.Etcd.Timeout, slices.Compact(topics))
	return r.Done()
}
