// Command logagent tails the log files an operator lists in etcd and ships
// every line to Kafka, resuming exactly where Kafka last acknowledged.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/logpipe/logpipe/internal/agent"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/platform/termsafe"
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
	cfgPath := flag.String("config", "conf/logagent.ini", "path of the ini config file")
	ip := flag.String("ip", "", "IP this agent's etcd key is named after (overrides [agent] ip and detection)")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("logagent", version)
		return 0
	}

	cfg, err := config.LoadAgent(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "logagent: invalid config:\n%v\n", err)
		return 2
	}
	if *ip != "" {
		if net.ParseIP(*ip) == nil {
			fmt.Fprintf(os.Stderr, "logagent: -ip %q is not an IP address\n", *ip)
			return 2
		}
		cfg.Agent.IP = *ip
	}
	log, err := logging.New(os.Stderr, cfg.Log.Level, cfg.Log.Format, "logagent")
	if err != nil {
		fmt.Fprintf(os.Stderr, "logagent: %v\n", err)
		return 2
	}
	tuneGC(cfg.Agent.MemoryLimit)
	if !cfg.HTTP.Pprof && !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate") {
		// Nobody can fetch a heap profile: stop sampling allocations for
		// it (its stack records stay for the process's life). An
		// operator's GODEBUG memprofilerate=N is left in place.
		runtime.MemProfileRate = 0
	}
	idleGC := 25 // see tuneGC and internal/platform/memtune
	if os.Getenv("GOGC") != "" {
		idleGC = 0
	}
	a, err := agent.New(cfg, agent.Options{Version: version, IdleGCPercent: idleGC}, log)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		log.WithError(err).Error("exited with error")
		return 1
	}
	return 0
}

const testUsage = `usage: logagent test config|output [-config file] [-ip address]

  config   validate the ini file; print the effective settings (secrets
           redacted, each with the line that set it or "default")
  output   connect to etcd and Kafka as configured (TLS, auth) and check, one
           line a step, what the agent would use: its keys, configs, topics
Exit status 0 when everything checks out, 1 otherwise.
`

// runTest is "logagent test config|output".
func runTest(args []string) int {
	fs := flag.NewFlagSet("logagent test", flag.ContinueOnError)
	cfgPath := fs.String("config", "conf/logagent.ini", "path of the ini config file")
	ip := fs.String("ip", "", "IP this agent's etcd key is named after (overrides [agent] ip and detection)")
	fs.Usage = func() { fmt.Fprint(os.Stderr, testUsage); fs.PrintDefaults() }
	if len(args) == 0 || (args[0] != "config" && args[0] != "output") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fs.SetOutput(os.Stdout)
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
	cfg, err := config.LoadAgent(*cfgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "logagent: invalid config:\n%v\n", err)
		return 1
	}
	if *ip != "" {
		if net.ParseIP(*ip) == nil {
			fmt.Fprintf(os.Stderr, "logagent: -ip %q is not an IP address\n", *ip)
			return 1
		}
		cfg.Agent.IP = *ip
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
	if agent.TestOutput(ctx, cfg, os.Stdout) != nil {
		return 1
	}
	return 0
}

// tuneGC lets the heap grow to a soft limit below memory_limit before the
// garbage collector works hard: at full speed most of the agent's memory is
// short-lived events, and collecting them at the default pace costs a
// quarter of its CPU. GOGC and GOMEMLIMIT in the environment still win.
func tuneGC(limit int) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Leave room for what the runtime does not count (binary, stacks).
		debug.SetMemoryLimit(int64(limit) * 11 / 16)
	}
}
