package testutil

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/logpipe/logpipe/internal/dev/realstack"
)

// Broker is a Kafka broker a test can stop and start again on its data:
// kfake (*Kafka) or Apache Kafka (*RealKafka).
type Broker interface {
	Addr() string // bootstrap list, comma-separated
	Start()
	Stop()
}

// realDist provisions the real servers once per test binary.
var realDist struct {
	once sync.Once
	d    *realstack.Dist
	err  error
}

// NeedReal is the provisioned server jars. Without Java or Maven the test
// is skipped, except under CI=true, where a real server that cannot be had
// is a failure.
func NeedReal(t testing.TB) *realstack.Dist {
	t.Helper()
	realDist.once.Do(func() {
		src, cache, err := realstack.Locate()
		if err != nil {
			realDist.err = err
			return
		}
		realDist.d, realDist.err = realstack.Provision(context.Background(), src, cache, os.Stderr)
	})
	if realDist.err != nil {
		if errors.Is(realDist.err, realstack.ErrNoJava) && os.Getenv("CI") != "true" {
			t.Skipf("real servers: %v", realDist.err)
		}
		t.Fatalf("real servers: %v", realDist.err)
	}
	return realDist.d
}

// RealKafkaOpts shape a test cluster.
type RealKafkaOpts struct {
	Nodes      int               // 1 (default) or 3
	Partitions int               // of auto-created topics (default 4)
	Props      map[string]string // extra broker properties
}

// RealKafka is an Apache Kafka cluster of this test, in t.TempDir(); it is
// stopped at cleanup.
type RealKafka struct {
	t testing.TB
	K *realstack.Kafka
}

// StartRealKafka starts a cluster and waits until every broker serves.
func StartRealKafka(t testing.TB, o RealKafkaOpts) *RealKafka {
	t.Helper()
	return StartRealKafkaOn(t, 0, o)
}

// StartRealKafkaOn is StartRealKafka with the first broker on port (0: any).
func StartRealKafkaOn(t testing.TB, port int, o RealKafkaOpts) *RealKafka {
	t.Helper()
	d := NeedReal(t)
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.Partitions == 0 {
		o.Partitions = 4
	}
	ko := realstack.KafkaOptions{Dir: t.TempDir(), Nodes: o.Nodes, Partitions: o.Partitions, Props: o.Props}
	for i := 0; i < o.Nodes; i++ {
		if i == 0 && port != 0 {
			ko.BrokerPorts = append(ko.BrokerPorts, port)
			ko.ControllerPorts = append(ko.ControllerPorts, FreePort(t))
			continue
		}
		ko.BrokerPorts = append(ko.BrokerPorts, FreePort(t))
		ko.ControllerPorts = append(ko.ControllerPorts, FreePort(t))
	}
	k, err := realstack.NewKafka(d, ko)
	if err != nil {
		t.Fatal(err)
	}
	r := &RealKafka{t: t, K: k}
	t.Cleanup(func() {
		for i := 0; i < o.Nodes; i++ {
			k.KillNode(i) // test data: no need for a clean shutdown
		}
	})
	r.Start()
	return r
}

// Addr is the bootstrap list.
func (r *RealKafka) Addr() string { return r.K.Bootstrap() }

// Start (re)starts every node and waits until all serve.
func (r *RealKafka) Start() {
	r.t.Helper()
	if err := r.K.Start(context.Background()); err != nil {
		r.t.Fatalf("starting kafka: %v", err)
	}
}

// Stop stops every node cleanly (SIGTERM), keeping the log directories.
func (r *RealKafka) Stop() {
	r.t.Helper()
	if err := r.K.Stop(); err != nil {
		r.t.Fatalf("stopping kafka: %v", err)
	}
}

// RealES is an Elasticsearch node.
type RealES struct {
	E *realstack.ES
}

// URL is the node's REST address.
func (r *RealES) URL() string { return r.E.URL() }

// StartRealES starts a search node of this test with extra settings; it is
// killed at cleanup.
func StartRealES(t testing.TB, settings map[string]string) *RealES {
	t.Helper()
	d := NeedReal(t)
	e, err := realstack.NewES(d, realstack.ESOptions{Dir: t.TempDir(), HTTPPort: FreePort(t), TransportPort: FreePort(t), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Kill)
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("starting elasticsearch: %v", err)
	}
	return &RealES{E: e}
}

// shared holds the servers started once per test binary.
var shared struct {
	mu    sync.Mutex
	es    *realstack.ES
	kafka *realstack.Kafka
	dir   string
}

// SharedRealES is one search node for the whole package run (tests keep
// apart by index names); StopShared, called by MainWithBinaries, stops it.
func SharedRealES(t testing.TB) *RealES {
	t.Helper()
	d := NeedReal(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.es == nil {
		e, err := realstack.NewES(d, realstack.ESOptions{Dir: sharedDir(t, "es"), HTTPPort: FreePort(t), TransportPort: FreePort(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			e.Kill()
			t.Fatalf("starting elasticsearch: %v", err)
		}
		shared.es = e
	}
	return &RealES{E: shared.es}
}

// SharedRealKafka is one Apache Kafka node (auto-created topics with
// partitions 4) for the whole package run; tests that stop a broker start
// their own with StartRealKafka.
func SharedRealKafka(t testing.TB) *RealKafka {
	t.Helper()
	d := NeedReal(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kafka == nil {
		k, err := realstack.NewKafka(d, realstack.KafkaOptions{Dir: sharedDir(t, "kafka"), Partitions: 4,
			BrokerPorts: []int{FreePort(t)}, ControllerPorts: []int{FreePort(t)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Start(context.Background()); err != nil {
			k.KillNode(0)
			t.Fatalf("starting kafka: %v", err)
		}
		shared.kafka = k
	}
	return &RealKafka{t: t, K: shared.kafka}
}

func sharedDir(t testing.TB, name string) string {
	if shared.dir == "" {
		d, err := os.MkdirTemp("", "logpipe-real")
		if err != nil {
			t.Fatal(err)
		}
		shared.dir = d
	}
	return shared.dir + "/" + name
}

// StopShared kills the shared servers and removes their data.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.es != nil {
		shared.es.Kill()
		shared.es = nil
	}
	if shared.kafka != nil {
		shared.kafka.KillNode(0)
		shared.kafka = nil
	}
	if shared.dir != "" && !strings.Contains(shared.dir, "..") {
		os.RemoveAll(shared.dir)
		shared.dir = ""
	}
}

var (
	_ Broker = (*Kafka)(nil)
	_ Broker = (*RealKafka)(nil)
)
