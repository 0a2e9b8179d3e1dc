// Command logtransfer consumes the agents' Kafka topics with a consumer
// group and indexes every line into Elasticsearch, marking a Kafka offset
// only once Elasticsearch acknowledged its document.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/platform/termsafe"
	"github.com/logpipe/logpipe/internal/transfer/transferd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "test" {
		return runTest(os.Args[2:])
	}
	cfgPath := flag.String("config", "conf/logtransfer.ini", "path of the ini config file")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("logtransfer", version)
		return 0
	}
	cfg, err := config.LoadTransfer(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "logtransfer: invalid config:\n%v\n", err)
		return 2
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format, "logtransfer")
	if err != nil {
		fmt.Fprintf(os.Stderr, "logtransfer: %v\n", err)
		return 2
	}
	if !cfg.HTTP.Pprof && !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate") {
		runtime.MemProfileRate = 0 // as in logagent: nobody can fetch a heap profile
	}
	d, err := transferd.New(cfg, transferd.Options{Version: version, MemoryLimit: tuneGC(cfg.MemoryLimit)}, log)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := d.Run(ctx); err != nil {
		log.WithError(err).Error("exited with error")
		return 1
	}
	return 0
}

// tuneGC lets the heap grow to a soft limit below memory_limit before the
// garbage collector works hard: most of what logtransfer allocates lives
// only until its bulk request is answered, and collecting at the default
// pace cost a tenth of its CPU (bench: 505k docs/s at GOGC 100, 611k at
// 400 under the default 77 MiB soft limit, at a peak RSS of 76 and 91 MB). It
// returns the soft limit for transferd's memtune.Floor, which raises it
// over a large live heap, or 0 when GOMEMLIMIT is set (the environment
// wins, as does GOGC).
func tuneGC(limit int) int64 {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0
	}
	// Leave room for what the runtime does not count (binary, stacks).
	return int64(limit) * 11 / 16
}

const testUsage = `usage: logtransfer test config|output [-config file]

  config   validate the ini file; print the effective settings (secrets
           redacted, each with the line that set it or "default")
  output   connect to etcd, Kafka and the search engine as configured (TLS,
           auth) and check, one line a step, what the transfer would use:
           the engine and its version, the topics, the index templates
Exit status 0 when everything checks out, 1 otherwise.
`

// runTest is "logtransfer test config|output".
func runTest(args []string) int {
	fs := flag.NewFlagSet("logtransfer test", flag.ContinueOnError)
	cfgPath := fs.String("config", "conf/logtransfer.ini", "path of the ini config file")
	fs.Usage = func() { fmt.Fprint(os.Stderr, testUsage); fs.PrintDefaults() }
	if len(args) == 0 || (args[0] != "config" && args[0] != "output") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Print(testUsage)
			return 0
		}
		fs.Usage()
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	cfg, err := config.LoadTransfer(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "logtransfer: invalid config:\n%v\n", err)
		return 1
	}
	if args[0] == "config" {
		fmt.Printf("config %s: OK\n\n", cfg.Path)
		if err := config.WriteSettings(termsafe.Writer{W: os.Stdout}, cfg.Path, cfg.Settings); err != nil {
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if transferd.TestOutput(ctx, cfg, os.Stdout) != nil {
		return 1
	}
	return 0
}
