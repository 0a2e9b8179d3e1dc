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
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/inventory"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
)

// defaultTimeout bounds each etcd request.
const defaultTimeout = 5 * time.Second

// Run executes logctl with args and returns the exit code: 0, 1 when the
// command failed, 2 for a usage error (the help is printed with it).
func Run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	stdout, stderr = safeWriter{stdout}, safeWriter{stderr}
	c := &cmd{stdin: stdin, stdout: stdout, stderr: stderr, timeout: defaultTimeout}
	root := c.commands()
	root.SetArgs(longFlags(root, args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if len(args) == 0 {
		root.SetOut(stderr)
		_ = root.Help()
		return 2
	}
	err := root.Execute()
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.Contains(err.Error(), "arg(s)"):
		fmt.Fprintln(stderr, "logctl:", err)
		fmt.Fprintln(stderr, "(logctl --help, or logctl <command> --help)")
		return 2
	}
	fmt.Fprintln(stderr, "logctl:", err)
	return 1
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
	c.appliedNote(k, args[0])
	return nil
}

// appliedNote says on stderr (stdout stays the value, for a pipe) whether
// the agent at ip applied the value stored, from its inventory entry: the
// revision it runs, or the last one it refused and why.
func (c *cmd) appliedNote(k kind, ip string) {
	resp, err := c.getKey(k.key(ip))
	if err != nil || len(resp.Kvs) == 0 {
		return
	}
	stored := resp.Kvs[0].ModRevision
	inv, err := c.getKey(c.agentsPrefix + ip)
	var r inventory.Report
	if err != nil || len(inv.Kvs) == 0 || json.Unmarshal(inv.Kvs[0].Value, &r) != nil {
		fmt.Fprintf(c.stderr, "# revision %d; the agent at %s is not live, so whether it applied it is unknown\n", stored, ip)
		return
	}
	applied, rejected := r.ConfigRevision, r.ConfigError
	if k.cmd == "metrics" {
		applied, rejected = 0, ""
		if r.Metrics != nil {
			applied, rejected = r.Metrics.Revision, r.Metrics.ConfigError
		}
	}
	switch {
	case applied == stored:
		fmt.Fprintf(c.stderr, "# revision %d: the one the agent at %s applied\n", stored, ip)
	case rejected != "":
		fmt.Fprintf(c.stderr, "# revision %d: NOT applied by the agent at %s, which runs revision %d; it refused the last one put:\n#   %s\n", stored, ip, applied, strings.ReplaceAll(rejected, "\n", "\n#   "))
	default:
		fmt.Fprintf(c.stderr, "# revision %d: the agent at %s runs revision %d (it may not have seen this one yet; its entry is refreshed when it changes)\n", stored, ip, applied)
	}
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
	return c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		summary, err := c.checkFor(ctx, cli, k, args[0], data)
		if err != nil {
			return fmt.Errorf("refusing invalid %s (nothing written):\n%w", k.what, err)
		}
		key := k.key(args[0])
		resp, err := cli.Put(ctx, key, string(bytes.TrimSpace(data)))
		if err != nil {
			return fmt.Errorf("putting %s: %w", key, err)
		}
		fmt.Fprintf(c.stdout, "OK %s: %s, revision %d\n", key, summary, resp.Header.Revision)
		return nil
	})
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
	return c.withEtcd(func(ctx context.Context, cli *clientv3.Client) error {
		summary, err := c.checkFor(ctx, cli, k, args[0], data)
		if err != nil {
			return fmt.Errorf("invalid %s:\n%w", k.what, err)
		}
		fmt.Fprintf(c.stdout, "valid: %s\n", summary)
		return nil
	})
}
