package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/etcdclient"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

// Etcd checks the etcd endpoints, then the API (its version), the
// configured auth, and reads each key (what the daemon would read first).
// It returns what each key holds (absent keys left out) for the checks
// after it; nil once a step failed.
func (r *Run) Etcd(ctx context.Context, endpoints []string, timeout time.Duration, sec config.EtcdSecurity, keys []string) map[string][]byte {
	r.Section("etcd %s", strings.Join(endpoints, ", "))
	for _, ep := range endpoints {
		r.Endpoint(ctx, ep, sec.TLS.Config(), timeout)
	}
	if r.Failed != nil {
		return nil
	}
	// With a username the client authenticates as it is made.
	cli, err := etcdclient.New(endpoints, timeout, sec)
	if err != nil {
		name := "etcd client"
		if sec.Username != "" {
			name = "auth"
		}
		r.Step(name, func() (string, error) { return "", explainEtcd(err, sec) })
		return nil
	}
	defer cli.Close()
	r.Step("etcd API", func() (string, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		st, err := cli.Status(cctx, cli.Endpoints()[0])
		if err != nil {
			return "", explainEtcd(err, sec)
		}
		return fmt.Sprintf("etcd %s, member %x, raft leader %x", st.Version, st.Header.MemberId, st.Leader), nil
	})
	r.Step("auth", func() (string, error) {
		if sec.Username == "" {
			return "none (no username set)", nil
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if _, err := cli.Get(cctx, "/", clientv3CountOnly()...); err != nil && !isPermission(err) {
			return "", explainEtcd(err, sec)
		}
		return "authenticated as " + sec.Username, nil
	})
	out := map[string][]byte{}
	for _, k := range keys {
		r.Step("read "+k, func() (string, error) {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			resp, err := cli.Get(cctx, k)
			if err != nil {
				return "", explainEtcd(err, sec)
			}
			if len(resp.Kvs) == 0 {
				return "absent (nothing put there yet)", nil
			}
			out[k] = resp.Kvs[0].Value
			return fmt.Sprintf("%d bytes, revision %d", len(resp.Kvs[0].Value), resp.Kvs[0].ModRevision), nil
		})
	}
	if r.Failed != nil {
		return nil
	}
	return out
}

// Kafka checks the brokers, then the API and auth (a client's first
// metadata request), and that each topic exists.
func (r *Run) Kafka(ctx context.Context, brokers []string, version config.KafkaVersion, sec config.KafkaSecurity, timeout time.Duration, topics []string) {
	r.Section("Kafka %s", strings.Join(brokers, ", "))
	for _, b := range brokers {
		r.Endpoint(ctx, b, sec.TLS.Config(), timeout)
	}
	if r.Failed != nil {
		return
	}
	c := sarama.NewConfig()
	c.ClientID = "logpipe-test-output"
	c.Version = kafka.Version(version)
	c.Net.DialTimeout, c.Net.ReadTimeout, c.Net.WriteTimeout = timeout, timeout, timeout
	c.Metadata.Retry.Max = 0
	c.Metadata.AllowAutoTopicCreation = false
	kafka.NoMetrics(c)
	kafka.Secure(c, sec)
	var client sarama.Client
	r.Step("Kafka API and auth", func() (string, error) {
		cl, err := sarama.NewClient(brokers, c)
		if err != nil {
			return "", explainKafka(err, sec)
		}
		client = cl
		ctrl, err := cl.Controller()
		if err != nil {
			return "", fmt.Errorf("finding the controller: %w", err)
		}
		auth := "no SASL"
		if sec.SASL.Mechanism != "" {
			auth = "SASL " + sec.SASL.Mechanism + " as " + sec.SASL.User
		}
		return fmt.Sprintf("%d brokers, controller %d (%s), protocol version %s, %s", len(cl.Brokers()), ctrl.ID(), ctrl.Addr(), c.Version, auth), nil
	})
	if client == nil {
		return
	}
	defer client.Close()
	if len(topics) == 0 {
		r.Step("topics", func() (string, error) { return "none named yet", nil })
	}
	for _, t := range topics {
		r.Step("topic "+t, func() (string, error) {
			ps, err := client.Partitions(t)
			if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				return "", fmt.Errorf("topic %q does not exist in Kafka (create it, or let the brokers auto-create topics)", t)
			}
			if err != nil {
				return "", fmt.Errorf("reading topic %q: %w", t, err)
			}
			return fmt.Sprintf("%d partitions", len(ps)), nil
		})
	}
}

func explainKafka(err error, sec config.KafkaSecurity) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "SASL") || errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return fmt.Errorf("SASL %s as %q refused (check sasl_user and sasl_password): %w", sec.SASL.Mechanism, sec.SASL.User, err)
	case errors.Is(err, sarama.ErrOutOfBrokers) && sec.SASL.Mechanism != "":
		// A broker that refuses SASL credentials closes the connection.
		return fmt.Errorf("the brokers closed the connection: SASL %s as %q refused (check sasl_user and sasl_password), or TLS on one side only: %w",
			sec.SASL.Mechanism, sec.SASL.User, err)
	case errors.Is(err, sarama.ErrOutOfBrokers):
		return fmt.Errorf("no broker answered the Kafka protocol (a TLS listener without tls = true, or the other way round?): %w", err)
	}
	return fmt.Errorf("connecting: %w", err)
}

func explainEtcd(err error, sec config.EtcdSecurity) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "authentication failed") || strings.Contains(msg, "invalid user ID or password"):
		return fmt.Errorf("etcd refused user %q (check username and password): %w", sec.Username, err)
	case strings.Contains(msg, "user name is empty") || strings.Contains(msg, "user name not found"):
		return fmt.Errorf("etcd requires a user (set username and password): %w", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("no answer in time (the endpoint speaks another protocol, or TLS is on one side only?): %w", err)
	}
	return err
}

func clientv3CountOnly() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithCountOnly(), clientv3.WithLimit(1)}
}

// isPermission reports an etcd answer that proves authentication worked
// (the user may read only some keys).
func isPermission(err error) bool { return strings.Contains(err.Error(), "permission denied") }
