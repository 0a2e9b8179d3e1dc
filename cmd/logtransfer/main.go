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
	"syscall"

	"github.com/logpipe/logpipe/internal/config"
	"github.com/logpipe/logpipe/internal/logging"
	"github.com/logpipe/logpipe/internal/transferd"
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
	d, err := transferd.New(cfg, transferd.Options{Version: version}, log)
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
