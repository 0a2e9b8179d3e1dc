package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/logpipe/logpipe/internal/dev/realstack"
)

const realUsage = `usage: devstack real <command> [flags] [kafka|kafka3|es|opensearch ...]

Runs the real servers, assembled from Maven Central jars, as background JVM
processes started and stopped by PID, with logs in files under -dir:

  kafka   one Apache Kafka %s node (KRaft, broker+controller)
  kafka3  a three-node Apache Kafka cluster (replication factor 3,
          min.insync.replicas=2)
  es      one Elasticsearch %s node with HTTP
  opensearch
          one OpenSearch %s node with HTTP (on the same ports as es: one
          search engine at a time; its jars are resolved when first named)

commands:
  provision [opensearch]  resolve the jars with Maven (once; offline afterwards);
                      OpenSearch's only when named
  start  [servers]    start (default: kafka es) and wait until ready
  stop   [servers]    stop cleanly by PID (default: all that ran under -dir)
  status [servers]    show addresses, PIDs and log files (default: as stop)

flags:
`

type realFlags struct {
	dir, src, cache   string
	kafkaPort, esPort int
	partitions        int
	autoCreate        bool
	kafkaHeap, esHeap int
	esSettings        string
	kafkaProps        string
}

// runReal is "devstack real ...".
func runReal(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("devstack real", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, realUsage, realstack.KafkaVersion, realstack.ESVersion, realstack.OpenSearchVersion)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	cmd := args[0]
	var f realFlags
	src, cache, _ := realstack.Locate()
	fs.StringVar(&f.dir, "dir", "./.demo/real", "directory for the servers' data, logs and PID files")
	fs.StringVar(&f.src, "src", src, "scripts/realstack (poms, launcher, log configs)")
	fs.StringVar(&f.cache, "cache", cache, "where Maven puts the jars")
	fs.IntVar(&f.kafkaPort, "kafka-port", 9092, "first broker port (kafka3 uses it and the next two; controllers listen 1000 above)")
	fs.IntVar(&f.esPort, "es-port", 9200, "search node HTTP port (transport: 100 above)")
	fs.IntVar(&f.partitions, "partitions", 3, "partitions of auto-created topics")
	fs.BoolVar(&f.autoCreate, "auto-create-topics", true, "auto.create.topics.enable")
	fs.IntVar(&f.kafkaHeap, "kafka-heap-mb", 256, "heap of each Kafka node")
	fs.IntVar(&f.esHeap, "es-heap-mb", 0, "heap of the search node (0: 384 for es, 256 for opensearch)")
	fs.StringVar(&f.kafkaProps, "kafka-props", "", "extra broker properties, comma-separated key=value")
	fs.StringVar(&f.esSettings, "es-settings", "", "extra node settings, comma-separated key=value")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	servers := fs.Args()
	for _, s := range servers {
		if s != "kafka" && s != "kafka3" && s != "es" && s != "opensearch" {
			fmt.Fprintf(stderr, "unknown server %q (want kafka, kafka3, es or opensearch)\n", s)
			return 2
		}
	}
	if f.src == "" {
		fmt.Fprintln(stderr, "scripts/realstack not found: run from the repository or pass -src")
		return 2
	}
	ctx := context.Background()
	d, err := realstack.Provision(ctx, f.src, f.cache, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "provisioning the real servers: %v\n", err)
		return 1
	}
	for _, s := range servers {
		if s == "opensearch" {
			if err := d.ProvisionOpenSearch(ctx, stderr); err != nil {
				fmt.Fprintf(stderr, "provisioning opensearch: %v\n", err)
				return 1
			}
		}
	}
	switch cmd {
	case "provision":
		fmt.Fprintf(stdout, "kafka %s and elasticsearch %s ready in %s\n", realstack.KafkaVersion, realstack.ESVersion, d.Cache)
		return 0
	case "start":
		if len(servers) == 0 {
			servers = []string{"kafka", "es"}
		}
	case "stop", "status":
		if len(servers) == 0 {
			servers = []string{"kafka", "kafka3", "es"}
			if _, err := os.Stat(filepath.Join(f.dir, "opensearch")); err == nil {
				servers = append(servers, "opensearch")
			}
		}
	default:
		fs.Usage()
		return 2
	}
	code := 0
	for _, s := range servers {
		if err := realOne(ctx, d, &f, cmd, s, stdout); err != nil {
			fmt.Fprintf(stderr, "%s %s: %v\n", cmd, s, err)
			code = 1
		}
	}
	return code
}

func splitKV(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			m[k] = v
		}
	}
	return m
}

func realOne(ctx context.Context, d *realstack.Dist, f *realFlags, cmd, server string, out io.Writer) error {
	type runner interface {
		Start(context.Context) error
		Stop() error
		Describe(io.Writer)
	}
	var r runner
	switch server {
	case "kafka", "kafka3":
		n := 1
		if server == "kafka3" {
			n = 3
		}
		o := realstack.KafkaOptions{Dir: filepath.Join(f.dir, server), Nodes: n, Partitions: f.partitions,
			HeapMB: f.kafkaHeap, Detach: true, Props: splitKV(f.kafkaProps)}
		o.Props["auto.create.topics.enable"] = fmt.Sprint(f.autoCreate)
		for i := 0; i < n; i++ {
			o.BrokerPorts = append(o.BrokerPorts, f.kafkaPort+i)
			o.ControllerPorts = append(o.ControllerPorts, f.kafkaPort+1000+i)
		}
		k, err := realstack.NewKafka(d, o)
		if err != nil {
			return err
		}
		r = k
	case "es", "opensearch":
		engine := realstack.Elasticsearch
		if server == "opensearch" {
			engine = realstack.OpenSearch
		}
		e, err := realstack.NewES(d, realstack.ESOptions{Engine: engine, Dir: filepath.Join(f.dir, server), HTTPPort: f.esPort,
			TransportPort: f.esPort + 100, HeapMB: f.esHeap, Detach: true, Settings: splitKV(f.esSettings)})
		if err != nil {
			return err
		}
		r = e
	}
	switch cmd {
	case "start":
		if err := r.Start(ctx); err != nil {
			return err
		}
	case "stop":
		if err := r.Stop(); err != nil {
			return err
		}
	}
	r.Describe(out)
	return nil
}
