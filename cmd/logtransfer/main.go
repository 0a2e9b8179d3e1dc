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
	"github.com/logpipe/logpipe/internal/transfer/transferd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run())
}

func run() int {
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
