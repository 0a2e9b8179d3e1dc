// Package ctl implements logctl, the operator's command line for the
// pipeline's etcd state. `config put` validates with the agent's own
// parser before writing, so it refuses exactly what an agent would reject,
// with the same message. etcdctl keeps working as the plain alternative.
package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
)

const usage = `usage: logctl [flags] <command>

commands:
  agents                       list live agents (from their inventory leases)
  transfers                    list live transfers (from their election leases) and which one leads
  status <ip>                  the files one agent follows: state, acked offset, bytes behind
  config get <ip>              print the collect config of the agent at <ip>
  config put <ip> [file|-]     validate a collect config (file or stdin) and write it
  config validate <ip> [file]  validate a file, or the config stored for <ip>
  metrics get <ip>             print the host metrics config of the agent at <ip>
  metrics put <ip> [file|-]    validate a host metrics config (file or stdin) and write it
  metrics validate <ip> [file] validate a file, or the host metrics config stored for <ip>
  pipeline list                the built-in and custom processing pipelines (custom ones checked)
  pipeline get <name>          print a custom pipeline
  pipeline put <name> [file|-] validate a custom pipeline (a JSON list of processors) and write it
  pipeline test <name> [file|-] run sample lines through a pipeline; print the documents it would index
  keys                         the agents' signing key ids (never the secrets), and invalid key documents
  keys rotate <ip>             give the agent at <ip> a new signing key; the old ones still verify
  keys retire <ip>             drop every key of <ip> but its signing one (once Kafka holds nothing older)
  indices [--expired]          the indices of the topics a transfer serves, and what its retention makes
                               of each (asks the transfer at -transfer; deletes nothing)

flags:
`

// Run executes logctl with args and returns the exit code.
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	stdout, stderr = safeWriter{stdout}, safeWriter{stderr}
	fs := flag.NewFlagSet("logctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoints := fs.String("endpoints", envOr("ETCDCTL_ENDPOINTS", "127.0.0.1:2379"), "etcd endpoints, comma separated (like etcdctl)")
	keyPattern := fs.String("key-pattern", "/logagent/%s/collect_config", "collect config key; %s is the agent IP")
	metricsPattern := fs.String("metrics-key-pattern", "/logagent/%s/metrics_config", "host metrics config key; %s is the agent IP")
	timeout := fs.Duration("timeout", 5*time.Second, "etcd request timeout")
	agentsPrefix := fs.String("agents-prefix", "/logagent/agents/", "where agents keep their inventory entries")
	jsonOut := fs.Bool("json", false, "print agents and status as JSON")
	keysPrefix := fs.String("keys-prefix", "/logagent/keys/", "where the agents' signing keys live (the prefix of [etcd] keys_key)")
	transfer := fs.String("transfer", envOr("LOGCTL_TRANSFER", "http://127.0.0.1:9732"), "a transfer's HTTP address, for indices (or LOGCTL_TRANSFER)")
	electionKey := fs.String("election-key", "/logtransfer/leader", "the transfers' election (logtransfer's [etcd] election_key)")
	pipelinesPrefix := fs.String("pipelines-prefix", "/logtransfer/pipelines/", "where custom pipelines live in etcd (logtransfer's [etcd] pipelines_key)")
	etcdSec := etcdFlags{
		cacert: fs.String("cacert", "", "verify etcd's certificate with this CA bundle; enables TLS (or ETCDCTL_CACERT)"),
		cert:   fs.String("cert", "", "client certificate for etcd TLS (or ETCDCTL_CERT)"),
		key:    fs.String("key", "", "client key for etcd TLS (or ETCDCTL_KEY)"),
		user:   fs.String("user", "", "etcd user as name:password, or name with the password in ETCDCTL_PASSWORD (or ETCDCTL_USER)"),
	}
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	c := &cmd{endpoints: config.SplitList(*endpoints), keyPattern: *keyPattern, metricsPattern: *metricsPattern, timeout: *timeout, stdin: stdin, stdout: stdout, stderr: stderr,
		agentsPrefix: *agentsPrefix, json: *jsonOut, transfer: *transfer, pipelinesPrefix: *pipelinesPrefix, keysPrefix: *keysPrefix, electionKey: *electionKey}
	c.etcd = etcdSec
	var err error
	switch rest[0] {
	case "agents":
		err = c.agents(rest[1:])
	case "transfers":
		err = c.transfers(rest[1:])
	case "status":
		err = c.status(rest[1:])
	case "config", "metrics":
		if len(rest) < 2 {
			fs.Usage()
			return 2
		}
		k := c.collectKind()
		if rest[0] == "metrics" {
			k = c.metricsKind()
		}
		switch sub, args := rest[1], rest[2:]; sub {
		case "get":
			err = c.get(k, args)
		case "put":
			err = c.put(k, args)
		case "validate":
			err = c.validate(k, args)
		default:
			fs.Usage()
			return 2
		}
	case "keys":
		err = c.keysCmd(rest[1:])
	case "indices":
		err = c.indices(rest[1:])
	case "pipeline":
		if len(rest) < 2 {
			fs.Usage()
			return 2
		}
		err = c.pipelineCmd(rest[1], rest[2:])
	default:
		fs.Usage()
		return 2
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "logctl:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "logctl:", err)
		return 1
	}
	return 0
}

type usageError string

func (u usageError) Error() string { return string(u) }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type cmd struct {
	endpoints      []string
	keyPattern     string
	metricsPattern string
	timeout        time.Duration
	stdin          io.Reader
	stdout, stderr io.Writer
	etcd           etcdFlags
	agentsPrefix   string
	json           bool
	// pipelinesPrefix is where custom pipelines live.
	// transfer is a transfer's HTTP address (indices).
	transfer        string
	pipelinesPrefix string
	// electionKey is the transfers' election (logctl transfers).
	electionKey string
	// keysPrefix is where the agents' key documents live.
	keysPrefix string
}

// kind is one of the per-agent configs logctl manages: where it lives and
// how the agent parses it (check returns a summary of a valid one).
type kind struct {
	cmd, what string
	pattern   string
	check     func([]byte) (string, error)
}

func (k kind) key(ip string) string { return fmt.Sprintf(k.pattern, ip) }

func (c *cmd) collectKind() kind {
	return kind{cmd: "config", what: "collect config", pattern: c.keyPattern, check: func(data []byte) (string, error) {
		entries, err := collectconf.Parse(data)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d entries, topics %s", len(entries), strings.Join(collectconf.Topics(entries), ", ")), nil
	}}
}

func (c *cmd) metricsKind() kind {
	return kind{cmd: "metrics", what: "host metrics config", pattern: c.metricsPattern, check: func(data []byte) (string, error) {
		m, err := metricsconf.Parse(data)
		if err != nil {
			return "", err
		}
		outputs := strings.Join(m.Outputs(), ", ")
		if outputs == "" {
			outputs = "none (nothing is collected)"
		}
		s := fmt.Sprintf("every %s, outputs %s", m.Interval, outputs)
		if m.Topic != "" {
			s += ", topic " + m.Topic
		}
		return s, nil
	}}
}

func (c *cmd) client() (*clientv3.Client, error) {
	cfg, err := c.etcd.clientConfig(c.endpoints, c.timeout, zap.NewNop())
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd: %w", err)
	}
	return cli, nil
}

// withEtcd runs f with a client and a context bounded by -timeout.
func (c *cmd) withEtcd(f func(ctx context.Context, cli *clientv3.Client) error) error {
	cli, err := c.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return f(ctx, cli)
}

// getKey reads key (with opts, e.g. a prefix).
func (c *cmd) getKey(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	var resp *clientv3.GetResponse
	err := c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		var err error
		if resp, err = cli.Get(ctx, key, opts...); err != nil {
			return fmt.Errorf("getting %s: %w", key, err)
		}
		return nil
	})
	return resp, err
}

// putKey writes data, trimmed, to key and returns the revision it made.
func (c *cmd) putKey(key string, data []byte) (int64, error) {
	var rev int64
	err := c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		resp, err := cli.Put(ctx, key, string(bytes.TrimSpace(data)))
		if err != nil {
			return fmt.Errorf("putting %s: %w", key, err)
		}
		rev = resp.Header.Revision
		return nil
	})
	return rev, err
}

func (c *cmd) fetch(k kind, ip string) ([]byte, bool, error) {
	resp, err := c.getKey(k.key(ip))
	if err != nil {
		return nil, false, err
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	return resp.Kvs[0].Value, true, nil
}

func (c *cmd) get(k kind, args []string) error {
	if len(args) != 1 {
		return usageError(k.cmd + " get <ip>")
	}
	v, ok, err := c.fetch(k, args[0])
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%s is not set", k.key(args[0]))
	}
	var out bytes.Buffer
	if json.Indent(&out, v, "", "  ") != nil {
		out.Reset()
		out.Write(v)
	}
	fmt.Fprintln(c.stdout, strings.TrimSpace(out.String()))
	return nil
}

func (c *cmd) read(args []string) ([]byte, error) {
	if len(args) == 0 || args[0] == "-" {
		b, err := io.ReadAll(c.stdin)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return b, nil
}

func (c *cmd) put(k kind, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError(k.cmd + " put <ip> [file|-]")
	}
	data, err := c.read(args[1:])
	if err != nil {
		return err
	}
	summary, err := k.check(data)
	if err != nil {
		return fmt.Errorf("refusing invalid %s (nothing written):\n%w", k.what, err)
	}
	rev, err := c.putKey(k.key(args[0]), data)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "OK %s: %s, revision %d\n", k.key(args[0]), summary, rev)
	return nil
}

func (c *cmd) validate(k kind, args []string) error {
	if len(args) < 1 || len(args) > 2 {
		return usageError(k.cmd + " validate <ip> [file]")
	}
	var data []byte
	var err error
	if len(args) == 2 {
		data, err = c.read(args[1:])
	} else {
		var ok bool
		data, ok, err = c.fetch(k, args[0])
		if err == nil && !ok {
			err = fmt.Errorf("%s is not set", k.key(args[0]))
		}
	}
	if err != nil {
		return err
	}
	summary, err := k.check(data)
	if err != nil {
		return fmt.Errorf("invalid %s:\n%w", k.what, err)
	}
	fmt.Fprintf(c.stdout, "valid: %s\n", summary)
	return nil
}
