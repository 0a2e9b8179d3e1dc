// Package devstack runs, in one process, a real etcd server (embedded) and
// a Kafka-protocol broker (kfake) that persists to disk, on fixed loopback
// ports: a local stand-in for the pipeline's infrastructure.
package devstack

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Config says where to listen and keep data.
type Config struct {
	DataDir    string
	EtcdClient string // host:port; empty: no etcd
	EtcdPeer   string // host:port
	KafkaPort  int    // kfake listens on 127.0.0.1; 0: no broker
	Partitions int    // for auto-created topics
	// NoAutoCreate makes the broker refuse to create a topic on first use
	// (auto.create.topics.enable=false): topics must be created first.
	NoAutoCreate bool
}

// Stack is a running etcd + broker.
type Stack struct {
	cfg   Config
	log   *logrus.Entry
	etcd  *embed.Etcd
	kafka *kfake.Cluster
}

// Start starts etcd, then the broker (either may be disabled, so a test
// can stop one without the other).
func Start(cfg Config, log *logrus.Entry) (*Stack, error) {
	s := &Stack{cfg: cfg, log: log}
	if cfg.EtcdClient != "" {
		if err := s.startEtcd(); err != nil {
			return nil, err
		}
	}
	if cfg.KafkaPort != 0 {
		var err error
		opts := []kfake.Opt{
			kfake.Ports(cfg.KafkaPort),
			kfake.DataDir(filepath.Join(cfg.DataDir, "kafka")),
			kfake.DefaultNumPartitions(cfg.Partitions),
		}
		if !cfg.NoAutoCreate {
			opts = append(opts, kfake.AllowAutoTopicCreation())
		}
		s.kafka, err = kfake.NewCluster(opts...)
		if err != nil {
			if s.etcd != nil {
				s.etcd.Close()
			}
			return nil, fmt.Errorf("starting kafka broker: %w", err)
		}
	}
	return s, nil
}

func (s *Stack) startEtcd() error {
	cfg := s.cfg
	ec := embed.NewConfig()
	ec.Name = "devstack"
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	ec.LogLevel = "error"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cu, err := url.Parse("http://" + cfg.EtcdClient)
	if err != nil {
		return fmt.Errorf("etcd client address: %w", err)
	}
	pu, err := url.Parse("http://" + cfg.EtcdPeer)
	if err != nil {
		return fmt.Errorf("etcd peer address: %w", err)
	}
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	s.etcd, err = embed.StartEtcd(ec)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	select {
	case <-s.etcd.Server.ReadyNotify():
		return nil
	case <-time.After(60 * time.Second):
		s.etcd.Close()
		return fmt.Errorf("etcd did not become ready in 60s")
	}
}

// EtcdEndpoint is etcd's client address.
func (s *Stack) EtcdEndpoint() string { return s.cfg.EtcdClient }

// KafkaAddr is the broker's address.
func (s *Stack) KafkaAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.cfg.KafkaPort))
}

// Run blocks until ctx ends, then stops the broker (persisting its data)
// and etcd.
func (s *Stack) Run(ctx context.Context) error {
	var etcdErr <-chan error
	if s.etcd != nil {
		etcdErr = s.etcd.Err()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-etcdErr:
		err = fmt.Errorf("etcd failed: %w", err)
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	if s.etcd != nil {
		s.etcd.Close()
	}
	return err
}
