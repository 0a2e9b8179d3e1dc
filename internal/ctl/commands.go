package ctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// commands is logctl's command tree: per-command help (--help exits 0),
// shell completion (logctl completion bash|zsh|fish|powershell), the
// global flags on every command.
func (c *cmd) commands() *cobra.Command {
	var endpoints string
	root := &cobra.Command{
		Use:   "logctl",
		Short: "The operator's command line for the pipeline's etcd state and its daemons",
		Long: `logctl reads and writes what the agents and transfers take from etcd (collect
configs, host metrics configs, pipelines, signing keys), validating with the
daemons' own parsers before anything is written, and shows what they are doing
(live agents, transfers, indices). etcdctl keeps working as the plain alternative.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(*cobra.Command, []string) {
			c.endpoints = config.SplitList(endpoints)
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	f := root.PersistentFlags()
	f.StringVar(&endpoints, "endpoints", envOr("ETCDCTL_ENDPOINTS", "127.0.0.1:2379"), "etcd endpoints, comma separated (like etcdctl)")
	f.StringVar(&c.keyPattern, "key-pattern", "/logagent/%s/collect_config", "collect config key; %s is the agent IP")
	f.StringVar(&c.metricsPattern, "metrics-key-pattern", "/logagent/%s/metrics_config", "host metrics config key; %s is the agent IP")
	f.DurationVar(&c.timeout, "timeout", defaultTimeout, "etcd request timeout")
	f.StringVar(&c.agentsPrefix, "agents-prefix", "/logagent/agents/", "where agents keep their inventory entries")
	f.BoolVar(&c.json, "json", false, "print agents, transfers and status as JSON")
	f.StringVar(&c.keysPrefix, "keys-prefix", "/logagent/keys/", "where the agents' signing keys live (the prefix of [etcd] keys_key)")
	f.StringVar(&c.transfer, "transfer", envOr("LOGCTL_TRANSFER", "http://127.0.0.1:9732"), "a transfer's HTTP address, for indices (or LOGCTL_TRANSFER)")
	f.StringVar(&c.pipelinesPrefix, "pipelines-prefix", "/logtransfer/pipelines/", "where custom pipelines live in etcd (logtransfer's [etcd] pipelines_key)")
	f.StringVar(&c.electionKey, "election-key", "/logtransfer/leader", "the transfers' election (logtransfer's [etcd] election_key)")
	c.etcd = etcdFlags{
		cacert: f.String("cacert", "", "verify etcd's certificate with this CA bundle; enables TLS (or ETCDCTL_CACERT)"),
		cert:   f.String("cert", "", "client certificate for etcd TLS (or ETCDCTL_CERT)"),
		key:    f.String("key", "", "client key for etcd TLS (or ETCDCTL_KEY)"),
		user:   f.String("user", "", "etcd user as name:password, or name with the password in ETCDCTL_PASSWORD (or ETCDCTL_USER)"),
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err.Error()) })

	run := func(fn func([]string) error) func(*cobra.Command, []string) error {
		return func(_ *cobra.Command, args []string) error { return fn(args) }
	}
	leaf := func(use, short string, fn func([]string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, RunE: run(fn), DisableFlagsInUseLine: true}
	}
	// A group run bare shows its help; with an unknown subcommand it is a
	// usage error.
	group := func(use, short string) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath()))
			}
			_ = cmd.Help()
			return usageError(cmd.CommandPath() + " needs a subcommand")
		}}
	}
	root.AddCommand(
		leaf("agents", "List the live agents (from their inventory leases)", c.agents),
		leaf("transfers", "List the live transfers (from their election leases) and which one leads", c.transfers),
		leaf("status <ip>", "The files one agent follows: state, acked offset, bytes behind", c.status),
	)
	for _, k := range []struct {
		name, what string
		kind       func() kind
	}{{"config", "collect config", c.collectKind}, {"metrics", "host metrics config", c.metricsKind}} {
		g := group(k.name, "Read, validate and write agents' "+k.what+"s")
		g.AddCommand(
			leaf("get <ip>", "Print the "+k.what+" of the agent at <ip>", func(a []string) error { return c.get(k.kind(), a) }),
			leaf("put <ip> [file|-]", "Validate a "+k.what+" (file or stdin) and write it", func(a []string) error { return c.put(k.kind(), a) }),
			leaf("validate <ip> [file]", "Validate a file, or the "+k.what+" stored for <ip>", func(a []string) error { return c.validate(k.kind(), a) }),
		)
		if k.name == "config" {
			g.AddCommand(
				leaf("add <ip> <entry-json>", "Add one entry to the collect config of <ip> (or replace the one with its path and topic), leaving the others as they are",
					c.configAdd),
				leaf("remove <ip> <path> [topic]", "Remove the entries of <path> (of <topic> only, if given) from the collect config of <ip>", c.configRemove),
			)
		}
		root.AddCommand(g)
	}
	keys := &cobra.Command{Use: "keys", Short: "The agents' signing key ids (never the secrets), and invalid key documents",
		RunE: run(func(a []string) error { return c.keysCmd(a) }), Args: cobra.NoArgs}
	keys.AddCommand(
		leaf("rotate <ip>", "Give the agent at <ip> a new signing key; the old ones still verify", func(a []string) error {
			return c.keysCmd(append([]string{"rotate"}, a...))
		}),
		leaf("retire <ip>", "Drop every key of <ip> but its signing one (once Kafka holds nothing older)", func(a []string) error {
			return c.keysCmd(append([]string{"retire"}, a...))
		}),
	)
	root.AddCommand(keys)
	var expired bool
	indices := &cobra.Command{Use: "indices", Short: "The indices of the topics a transfer serves, and what its retention makes of each (asks the transfer at --transfer; deletes nothing)",
		RunE: func(_ *cobra.Command, args []string) error {
			if expired {
				args = append(args, "--expired")
			}
			return c.indices(args)
		}}
	indices.Flags().BoolVar(&expired, "expired", false, "only the indices retention would delete now")
	root.AddCommand(indices)
	to := &traceOpts{}
	trace := &cobra.Command{Use: "trace <ip> <path> [offset|line-text]",
		Short: "Follow one line end to end: read by the agent, its Kafka record, the transfer's commit, its document or dead letter",
		Long: `trace finds one line of a file an agent follows: the line at a byte offset, the
last one holding a text, or the last one read. It shows where the agent is in the
file (acknowledged by Kafka or not), the line's record in Kafka (topic, partition,
offset, event id), whether the transfer's group committed past it, and then its
document (index and _id) or, when there is none, its record in the dead-letter or
quarantine topic with the reason. Kafka and the search engine are asked directly
(--kafka, --es); the agent through its inventory entry in etcd.`,
		DisableFlagsInUseLine: true,
		RunE:                  func(_ *cobra.Command, args []string) error { return c.trace(to, args) }}
	tf := trace.Flags()
	tf.StringVar(&to.brokers, "kafka", envOr("LOGCTL_KAFKA", "127.0.0.1:9092"), "Kafka brokers, comma separated (or LOGCTL_KAFKA)")
	tf.StringVar(&to.es, "es", envOr("LOGCTL_ES", "http://127.0.0.1:9200"), "the search engine's URL (or LOGCTL_ES)")
	tf.StringVar(&to.group, "group", "logtransfer", "the transfers' consumer group ([kafka] group_id)")
	tf.IntVar(&to.scan, "scan", 200000, "read at most this many of the newest records of each partition")
	tf.StringVar(&to.dlqSuffix, "dlq-suffix", ".dlq", "the dead-letter topics' suffix ([kafka] dlq_suffix)")
	tf.StringVar(&to.quarSuffix, "quarantine-suffix", ".quarantine", "the quarantine topics' suffix")
	root.AddCommand(trace)
	tp := &tapOpts{}
	tap := &cobra.Command{Use: "tap <ip> [path] | tap --topic T",
		Short: "Follow the records flowing now, as they sit in Kafka with their headers (Ctrl-C stops)",
		Long: `tap reads every partition from its end and prints each record as it arrives: topic,
partition and offset, timestamp, key, headers and the line itself (control
characters escaped). With an agent's IP it reads the topics of the agent's collect
config and shows that host's records (of one file, with a path); with --topic, every
record of the topics named.`,
		DisableFlagsInUseLine: true,
		RunE: func(_ *cobra.Command, args []string) error {
			tp.jsonOut = c.json
			return c.tap(tp, args)
		}}
	tpf := tap.Flags()
	tpf.StringVar(&tp.brokers, "kafka", envOr("LOGCTL_KAFKA", "127.0.0.1:9092"), "Kafka brokers, comma separated (or LOGCTL_KAFKA)")
	tpf.StringSliceVar(&tp.topics, "topic", nil, "tap these topics, every host's records")
	tpf.IntVar(&tp.count, "count", 0, "stop after this many records (0: at Ctrl-C)")
	root.AddCommand(tap)
	top := &topOpts{}
	topCmd := &cobra.Command{Use: "top", Short: "Live per-agent and per-file rates (bytes Kafka acknowledged a second) and lag (bytes behind)",
		Long: `top scrapes every live agent's /metrics (the address its inventory entry publishes)
twice, an interval apart, and shows per file the bytes Kafka acknowledged a second
and the bytes still behind, and per agent the totals, again every interval until
Ctrl-C (--once: one table).`,
		Args: cobra.NoArgs, RunE: func(_ *cobra.Command, args []string) error { return c.top(top, args) }}
	topCmd.Flags().DurationVar(&top.interval, "interval", 5*time.Second, "time between two scrapes")
	topCmd.Flags().BoolVar(&top.once, "once", false, "print one table and exit")
	root.AddCommand(topCmd)
	pipe := group("pipeline", "The transfer's processing pipelines: built-in and custom (in etcd)")
	for _, p := range []struct{ use, short, sub string }{
		{"list", "The built-in and custom processing pipelines (custom ones checked)", "list"},
		{"get <name>", "Print a custom pipeline", "get"},
		{"put <name> [file|-]", "Validate a custom pipeline (a JSON list of processors) and write it", "put"},
		{"test <name> [file|-]", "Run sample lines through a pipeline; print the documents it would index", "test"},
	} {
		pipe.AddCommand(leaf(p.use, p.short, func(a []string) error { return c.pipelineCmd(p.sub, a) }))
	}
	root.AddCommand(pipe)
	return root
}

// longFlags rewrites the single-dash long flags logctl has always taken
// (-endpoints x, -json) into the double-dash form the command framework
// parses, leaving everything after "--", arguments and short flags alone.
func longFlags(root *cobra.Command, args []string) []string {
	known := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		c.PersistentFlags().VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	known["help"] = true
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if known[name] {
				a = "-" + a
			}
		}
		out = append(out, a)
	}
	return out
}
