// Package testutil starts the real things tests talk to: an embedded etcd
// server, a kfake Kafka broker over TCP, a Kafka consumer that records
// everything it reads, and the daemons as subprocesses. It is imported
// only by tests.
package testutil

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Eventually polls cond every 20ms until it holds or timeout passes; then
// it fails the test with what(), evaluated at the deadline so it can show
// the state that was not reached.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, what func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", timeout, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Msg is a what() for Eventually from a format, evaluated at the deadline.
func Msg(format string, args ...any) func() string {
	return func() string { return fmt.Sprintf(format, args...) }
}

// FreePort returns a TCP port that was free a moment ago.
//
// It is drawn below the kernel's ephemeral range (32768 and up on Linux),
// not from it: servers that tests stop and start again on the same port
// (etcd, brokers) would otherwise lose it, while stopped, to some process's
// outgoing connection, which takes its local port from that range.
func FreePort(t testing.TB) int {
	t.Helper()
	for i := 0; i < 1000; i++ {
		p := 20000 + rand.IntN(12000)
		if _, taken := handedOut.LoadOrStore(p, true); taken {
			continue // handed to another server of this process, maybe not bound yet
		}
		if !reservePort(p) {
			continue // another test process holds it (its server may be stopped a while)
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// reservePort takes p for this test process among all of them (go test
// runs packages side by side): an exclusive flock on a file named for it,
// held until the process exits (the kernel then releases it, however the
// process ended). A server a test stops and starts again on its port
// would otherwise lose the port, while stopped, to another package's
// FreePort (CI saw kfake's restart fail: "bind: address already in use").
// Where the lock directory cannot be used, every port counts as free.
func reservePort(p int) bool {
	dir := filepath.Join(os.TempDir(), "logpipe-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(p)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return !errors.Is(err, syscall.EWOULDBLOCK)
	}
	heldPorts.Store(p, f) // kept open: the lock lasts as long as the process
	return true
}

// heldPorts keeps the lock files of reservePort open.
var heldPorts sync.Map

// handedOut is every port FreePort returned in this test process: a port
// is free when asked for but bound only later (a JVM takes seconds), so
// two calls must never return the same one (the fault suite's Kafka
// failed to bind its broker port this way). Test-only process state.
var handedOut sync.Map

// Etcd is an embedded single-node etcd that can be stopped and restarted
// on the same ports and data.
type Etcd struct {
	t          testing.TB
	cfg        *embed.Config
	mu         sync.Mutex
	e          *embed.Etcd
	clientPort int
}

// StartEtcd starts etcd in t.TempDir(); it stops at test cleanup.
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	cfg.Name = "test"
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e := &Etcd{t: t, cfg: cfg}
	// Another process may take a free port before etcd binds it (test
	// packages run side by side): the first start picks new ones then.
	for i := 0; ; i++ {
		cp, pp := FreePort(t), FreePort(t)
		cu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(cp))
		pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(pp))
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
		e.clientPort = cp
		err := e.start(1)
		if err == nil {
			break
		}
		if i == 20 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatalf("starting etcd: %v", err)
		}
	}
	t.Cleanup(e.Stop)
	return e
}

// Start (re)starts the server.
func (e *Etcd) Start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.e != nil {
		return
	}
	if err := e.start(50); err != nil { // the port may linger briefly after a stop
		e.t.Fatalf("starting etcd: %v", err)
	}
}

// start makes up to attempts tries, 100 ms apart, and waits until the
// server is ready. Called with e.mu held, or before e is shared.
func (e *Etcd) start(attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			time.Sleep(100 * time.Millisecond)
		}
		if e.e, err = embed.StartEtcd(e.cfg); err == nil {
			break
		}
	}
	if err != nil {
		e.e = nil
		return err
	}
	select {
	case <-e.e.Server.ReadyNotify():
		return nil
	case <-time.After(30 * time.Second):
		return errors.New("etcd did not become ready")
	}
}

// Stop stops the server (data is kept).
func (e *Etcd) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.e != nil {
		e.e.Close()
		e.e = nil
	}
}

// Endpoint is host:port of the client listener.
func (e *Etcd) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(e.clientPort) }

// Client returns a client; it is closed at cleanup.
func (e *Etcd) Client() *clientv3.Client {
	e.t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// Put writes key=value, failing the test on error.
func (e *Etcd) Put(key, value string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client().Put(ctx, key, value); err != nil {
		e.t.Fatalf("etcd put %s: %v", key, err)
	}
}

// Delete removes key.
func (e *Etcd) Delete(key string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.Client().Delete(ctx, key); err != nil {
		e.t.Fatalf("etcd delete %s: %v", key, err)
	}
}

// Kafka is a kfake broker on a fixed port that persists to a directory,
// so it can be stopped and restarted with its data.
type Kafka struct {
	t    testing.TB
	port int
	opts []kfake.Opt
	mu   sync.Mutex
	c    *kfake.Cluster
}

// StartKafka starts a one-broker kfake cluster that auto-creates topics
// with partitions partitions.
func StartKafka(t testing.TB, partitions int, extra ...kfake.Opt) *Kafka {
	t.Helper()
	k := &Kafka{t: t, port: FreePort(t)}
	k.opts = append([]kfake.Opt{
		kfake.Ports(k.port),
		kfake.DataDir(filepath.Join(t.TempDir(), "kafka")),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	}, extra...)
	k.Start()
	t.Cleanup(k.Stop)
	return k
}

// Start (re)starts the broker.
func (k *Kafka) Start() {
	k.t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		return
	}
	var err error
	for i := 0; i < 50; i++ {
		k.c, err = kfake.NewCluster(k.opts...)
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	k.t.Fatalf("starting kfake: %v", err)
}

// Stop stops the broker, keeping its data.
func (k *Kafka) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// Addr is the broker's host:port.
func (k *Kafka) Addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// Record is a consumed Kafka record.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Timestamp time.Time
}

// Consumer reads topics from the start in the background and keeps every
// record.
type Consumer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	recs   []Record
}

// Consume starts a consumer of topics on addr; it stops at cleanup.
func Consume(t testing.TB, addr string, topics ...string) *Consumer {
	t.Helper()
	return ConsumeWith(t, addr, nil, topics...)
}

func (c *Consumer) loop(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		fs := c.cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			h := make(map[string]string, len(r.Headers))
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			c.mu.Lock()
			c.recs = append(c.recs, Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: h, Timestamp: r.Timestamp})
			c.mu.Unlock()
		})
	}
}

// Close stops the consumer.
func (c *Consumer) Close() {
	c.cancel()
	<-c.done
	c.cl.Close()
}

// Records returns a copy of everything consumed so far.
func (c *Consumer) Records() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record(nil), c.recs...)
}

// Fence proves absence by an event, not a wait: it produces a record of
// its own to topic (with the consumer's client and credentials) and waits
// until the consumer reads it, then returns the records of topic read
// before it. A record sent before the fence is among them.
func (c *Consumer) Fence(t testing.TB, topic string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mark := fmt.Sprintf("fence-%d", rand.Uint64())
	// The topic may not exist (nobody wrote to it): created, or left as it is.
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, 1, 1
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	if _, err := req.RequestWith(ctx, c.cl); err != nil {
		t.Fatalf("creating %s for a fence: %v", topic, err)
	}
	if err := c.cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(mark)}).FirstErr(); err != nil {
		t.Fatalf("producing a fence to %s: %v", topic, err)
	}
	var before []Record
	Eventually(t, 30*time.Second, func() bool {
		before = before[:0]
		for _, r := range c.Records() {
			if r.Topic != topic {
				continue
			}
			if string(r.Value) == mark {
				return true
			}
			before = append(before, r)
		}
		return false
	}, Msg("the fence read back from %s", topic))
	return before
}

// Len is the number of records consumed so far.
func (c *Consumer) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// MainWithBinaries is a TestMain body: it builds the main packages (e.g.
// "./cmd/logagent") into a temporary directory, stores their paths in bins
// by base name, runs the tests and removes the binaries.
func MainWithBinaries(m *testing.M, bins map[string]string, pkgs ...string) {
	dir, err := os.MkdirTemp("", "logpipe-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, pkg := range pkgs {
		p, err := BuildBinary(pkg, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
		bins[filepath.Base(pkg)] = p
	}
	captureSaramaLog()
	code := m.Run()
	StopShared()
	os.RemoveAll(dir)
	os.Exit(code)
}

// BuildBinary builds a main package (e.g. "./cmd/logagent", relative to
// the module root) into dir and returns the path.
func BuildBinary(pkg, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	mod := strings.TrimSpace(string(b))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not in a module")
	}
	return filepath.Dir(mod), nil
}

// MetricValue returns the value of the counter or gauge name whose labels
// include labels, or -1 if there is none.
func MetricValue(g prometheus.Gatherer, name string, labels map[string]string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Untyped != nil:
				return m.GetUntyped().GetValue()
			}
		}
	}
	return -1
}

// OpenFDs counts this process's open descriptors whose target starts with
// prefix (Linux /proc).
func OpenFDs(t testing.TB, prefix string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, prefix) {
			n++
		}
	}
	return n
}

// CheckMetricsListed fails the test unless every metric in listFile (one
// name per line, # comments) that starts with prefix is exported by g.
func CheckMetricsListed(t testing.TB, g prometheus.Gatherer, listFile, prefix string) {
	t.Helper()
	data, err := os.ReadFile(listFile)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		name := strings.TrimSpace(line)
		if name == "" || strings.HasPrefix(name, "#") || !strings.HasPrefix(name, prefix) {
			continue
		}
		n++
		if !have[name] {
			t.Errorf("%s lists %s, which is not exported", listFile, name)
		}
	}
	if n == 0 {
		t.Errorf("%s lists no %s* metrics", listFile, prefix)
	}
}

// Main is a TestMain body for packages without binaries to build: it runs
// the tests, then stops the shared real servers.
func Main(m *testing.M) {
	captureSaramaLog()
	code := m.Run()
	StopShared()
	os.Exit(code)
}

// Cluster is the running broker, for control functions (fault injection).
func (k *Kafka) Cluster() *kfake.Cluster {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.c
}
