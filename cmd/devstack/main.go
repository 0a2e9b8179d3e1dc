// Command devstack runs a real etcd and a Kafka-protocol broker (kfake,
// persisted to disk) in one process on fixed loopback ports, for local
// development and the demo. It is not a production Kafka: "devstack real"
// starts and stops Apache Kafka and Elasticsearch themselves (see real.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/logpipe/logpipe/internal/dev/devstack"
	"github.com/logpipe/logpipe/internal/platform/logging"
)

func main() {
	os.Exit(run())
}

func run() int {
	if len(os.Args) > 1 && os.Args[1] == "real" {
		return runReal(os.Args[2:], os.Stdout, os.Stderr)
	}
	var cfg devstack.Config
	flag.StringVar(&cfg.DataDir, "data", "./.demo/devstack", "directory for etcd and broker data (kept across restarts)")
	flag.StringVar(&cfg.EtcdClient, "etcd", "127.0.0.1:2379", "etcd client address (empty: run no etcd)")
	flag.StringVar(&cfg.EtcdPeer, "etcd-peer", "127.0.0.1:2380", "etcd peer address")
	flag.IntVar(&cfg.KafkaPort, "kafka-port", 9092, "broker port on 127.0.0.1 (0: run no broker)")
	flag.IntVar(&cfg.Partitions, "partitions", 3, "partitions of auto-created topics")
	flag.BoolVar(&cfg.NoAutoCreate, "no-auto-create", false, "refuse to create topics on first use (auto.create.topics.enable=false); create them with an admin client")
	flag.Parse()
	log, _ := logging.New(os.Stderr, "info", "text", "devstack")
	s, err := devstack.Start(cfg, log)
	if err != nil {
		log.WithError(err).Error("cannot start")
		return 1
	}
	if cfg.EtcdClient != "" {
		fmt.Printf("etcd:  %s   (ETCDCTL_API=3 etcdctl --endpoints=%s ...)\n", s.EtcdEndpoint(), s.EtcdEndpoint())
	}
	if cfg.KafkaPort != 0 {
		fmt.Printf("kafka: %s   (kcat -b %s -L)\n", s.KafkaAddr(), s.KafkaAddr())
	}
	fmt.Printf("data:  %s\n", cfg.DataDir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.WithError(err).Error("stopped with error")
		return 1
	}
	log.Info("stopped")
	return 0
}
