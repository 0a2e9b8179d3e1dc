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

// RealES is a search node: Elasticsearch or OpenSearch (E.Engine()).
type RealES struct {
	E *realstack.ES
}

// URL is the node's REST address.
func (r *RealES) URL() string { return r.E.URL() }

// StartRealES starts an Elasticsearch node of this test with extra
// settings; it is killed at cleanup.
func StartRealES(t testing.TB, settings map[string]string) *RealES {
	t.Helper()
	return StartRealSearch(t, realstack.Elasticsearch, settings)
}

// StartRealSearch starts a node of engine (realstack.Elasticsearch or
// realstack.OpenSearch; "" is Elasticsearch) with extra settings; it is
// killed at cleanup.
func StartRealSearch(t testing.TB, engine string, settings map[string]string) *RealES {
	t.Helper()
	d := needSearch(t, engine)
	e, err := realstack.NewES(d, realstack.ESOptions{Engine: engine, Dir: t.TempDir(), HTTPPort: FreePort(t), TransportPort: FreePort(t), Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Kill)
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("starting %s: %v", e.Engine(), err)
	}
	return &RealES{E: e}
}

// needSearch is NeedReal, plus OpenSearch's jars when engine is OpenSearch
// (a no-op once they are in the cache).
func needSearch(t testing.TB, engine string) *realstack.Dist {
	t.Helper()
	d := NeedReal(t)
	if engine == realstack.OpenSearch {
		err := d.ProvisionOpenSearch(context.Background(), os.Stderr)
		if errors.Is(err, realstack.ErrNoJava) && os.Getenv("CI") != "true" {
			t.Skipf("real servers: %v", err)
		}
		if err != nil {
			t.Fatalf("real servers: %v", err)
		}
	}
	return d
}

// shared holds the servers started once per test binary.
var shared struct {
	mu     sync.Mutex
	search map[string]*realstack.ES    // by engine
	kafka  map[string]*realstack.Kafka // by name
	dir    string
}

// SharedRealES is one Elasticsearch node for the whole package run (tests
// keep apart by index names); StopShared, called by MainWithBinaries, stops
// it.
func SharedRealES(t testing.TB) *RealES {
	t.Helper()
	return SharedRealSearch(t, realstack.Elasticsearch)
}

// SharedRealSearch is SharedRealES for engine (realstack.Elasticsearch or
// realstack.OpenSearch; "" is Elasticsearch): one node per engine for the
// whole package run.
func SharedRealSearch(t testing.TB, engine string) *RealES {
	t.Helper()
	if engine == "" {
		engine = realstack.Elasticsearch
	}
	d := needSearch(t, engine)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.search[engine] == nil {
		e, err := realstack.NewES(d, realstack.ESOptions{Engine: engine, Dir: sharedDir(t, engine), HTTPPort: FreePort(t), TransportPort: FreePort(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(context.Background()); err != nil {
			e.Kill()
			t.Fatalf("starting %s: %v", engine, err)
		}
		if shared.search == nil {
			shared.search = make(map[string]*realstack.ES)
		}
		shared.search[engine] = e
	}
	return &RealES{E: shared.search[engine]}
}

// SharedRealKafka is one Apache Kafka node (auto-created topics with
// partitions 4) for the whole package run; tests that stop a broker start
// their own with StartRealKafka.
func SharedRealKafka(t testing.TB) *RealKafka {
	t.Helper()
	return SharedRealKafkaFor(t, "kafka")
}

// SharedRealKafkaFor is SharedRealKafka by name: one node per name for
// the whole package run, so that a test run against a second search
// engine meets topics, groups and offsets of its own under the same names.
func SharedRealKafkaFor(t testing.TB, name string) *RealKafka {
	t.Helper()
	d := NeedReal(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.kafka[name] == nil {
		k, err := realstack.NewKafka(d, realstack.KafkaOptions{Dir: sharedDir(t, name), Partitions: 4,
			BrokerPorts: []int{FreePort(t)}, ControllerPorts: []int{FreePort(t)}})
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Start(context.Background()); err != nil {
			k.KillNode(0)
			t.Fatalf("starting kafka: %v", err)
		}
		if shared.kafka == nil {
			shared.kafka = make(map[string]*realstack.Kafka)
		}
		shared.kafka[name] = k
	}
	return &RealKafka{t: t, K: shared.kafka[name]}
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
	for engine, e := range shared.search {
		e.Kill()
		delete(shared.search, engine)
	}
	for name, k := range shared.kafka {
		k.KillNode(0)
		delete(shared.kafka, name)
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
