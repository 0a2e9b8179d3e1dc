// Package etcdclient builds the etcd client configuration both daemons
// and logctl use, from the config's plain data.
package etcdclient

import (
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// Config is the etcd client configuration for endpoints with s (TLS, user
// and password). Reconnects back off to at most 2 s (gRPC's default grows
// to 2 minutes), so a daemon is back on etcd within seconds of an outage
// ending. A nil log logs nothing.
func Config(endpoints []string, timeout time.Duration, s config.EtcdSecurity, log *zap.Logger) clientv3.Config {
	if log == nil {
		log = zap.NewNop()
	}
	return clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: timeout,
		TLS:         s.TLS.Config(),
		Username:    s.Username,
		Password:    s.Password.Reveal(),
		Logger:      log,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: timeout,
		})},
	}
}

// New connects to etcd as Config describes (the client dials lazily: an
// etcd that is down is retried, not an error here).
func New(endpoints []string, timeout time.Duration, s config.EtcdSecurity) (*clientv3.Client, error) {
	return clientv3.New(Config(endpoints, timeout, s, nil))
}
