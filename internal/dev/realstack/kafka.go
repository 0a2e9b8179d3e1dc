package realstack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// KafkaOptions configure a KRaft cluster of combined broker+controller
// nodes on 127.0.0.1.
type KafkaOptions struct {
	Dir             string            // data, configs, logs and PID files; kept across restarts
	Nodes           int               // 1 (default) or 3
	BrokerPorts     []int             // one per node
	ControllerPorts []int             // one per node
	Partitions      int               // num.partitions for auto-created topics (default 3)
	Props           map[string]string // extra or overriding server properties
	HeapMB          int               // per node (default 256)
	Detach          bool              // the JVMs outlive this process (devstack)
}

// Kafka is a running (or stopped) Apache Kafka cluster.
type Kafka struct {
	d     *Dist
	o     KafkaOptions
	nodes []*Process
}

// NewKafka prepares a cluster; Start runs it.
func NewKafka(d *Dist, o KafkaOptions) (*Kafka, error) {
	if o.Nodes == 0 {
		o.Nodes = 1
	}
	if o.Nodes != 1 && o.Nodes != 3 {
		return nil, fmt.Errorf("kafka cluster of %d nodes: want 1 or 3", o.Nodes)
	}
	if len(o.BrokerPorts) != o.Nodes || len(o.ControllerPorts) != o.Nodes {
		return nil, fmt.Errorf("kafka cluster of %d nodes needs %d broker and controller ports", o.Nodes, o.Nodes)
	}
	if strings.ContainsAny(o.Dir, ",\\") {
		// log.dirs is a comma-separated list: such a path would be split.
		return nil, fmt.Errorf("kafka directory %q contains a comma or backslash, which Kafka's log.dirs cannot hold", o.Dir)
	}
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.HeapMB == 0 {
		o.HeapMB = 256
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", o.Dir, err)
	}
	o.Dir = dir
	k := &Kafka{d: d, o: o, nodes: make([]*Process, o.Nodes)}
	for i := range k.nodes {
		k.nodes[i] = FromPIDFile(k.nodeDir(i), "kafka")
	}
	return k, nil
}

// Addrs are the brokers' host:port, in node order.
func (k *Kafka) Addrs() []string {
	a := make([]string, k.o.Nodes)
	for i, p := range k.o.BrokerPorts {
		a[i] = "127.0.0.1:" + strconv.Itoa(p)
	}
	return a
}

// Bootstrap is the comma-separated broker list for an ini file.
func (k *Kafka) Bootstrap() string { return strings.Join(k.Addrs(), ",") }

// NodeID is the broker id of node i.
func (k *Kafka) NodeID(i int) int32 { return int32(i + 1) }

// NodeIndex is the node of broker id, or -1.
func (k *Kafka) NodeIndex(id int32) int {
	if id < 1 || int(id) > k.o.Nodes {
		return -1
	}
	return int(id) - 1
}

func (k *Kafka) nodeDir(i int) string { return filepath.Join(k.o.Dir, fmt.Sprintf("node%d", i+1)) }

func (k *Kafka) properties(i int) string {
	p := map[string]string{
		"process.roles":                    "broker,controller",
		"node.id":                          strconv.Itoa(i + 1),
		"listeners":                        fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", k.o.BrokerPorts[i], k.o.ControllerPorts[i]),
		"advertised.listeners":             fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", k.o.BrokerPorts[i], k.o.ControllerPorts[i]),
		"controller.listener.names":        "CONTROLLER",
		"inter.broker.listener.name":       "PLAINTEXT",
		"listener.security.protocol.map":   "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
		"log.dirs":                         filepath.Join(k.nodeDir(i), "data"),
		"num.partitions":                   strconv.Itoa(k.o.Partitions),
		"group.initial.rebalance.delay.ms": "0",
		// Small machines: few threads, small segments.
		"num.network.threads":               "2",
		"num.io.threads":                    "2",
		"num.recovery.threads.per.data.dir": "1",
		"background.threads":                "2",
		"log.segment.bytes":                 strconv.Itoa(64 << 20),
		"log.retention.check.interval.ms":   "60000",
		// No deletion by age: tests write records with fixed timestamps
		// (a day in November 2026, lines of 2019), and with the default 7
		// days the retention check deleted them between produce and fetch
		// (the consumer's offset then out of range, nothing to index).
		"log.retention.ms":           "-1",
		"controlled.shutdown.enable": "true",
	}
	rf := strconv.Itoa(k.o.Nodes)
	isr := "1"
	if k.o.Nodes == 3 {
		isr = "2"
		var voters []string
		for j := 0; j < k.o.Nodes; j++ {
			voters = append(voters, fmt.Sprintf("%d@127.0.0.1:%d", j+1, k.o.ControllerPorts[j]))
		}
		p["controller.quorum.voters"] = strings.Join(voters, ",")
	} else {
		p["controller.quorum.bootstrap.servers"] = fmt.Sprintf("127.0.0.1:%d", k.o.ControllerPorts[0])
	}
	for _, key := range []string{"offsets.topic.replication.factor", "transaction.state.log.replication.factor",
		"share.coordinator.state.topic.replication.factor", "default.replication.factor"} {
		p[key] = rf
	}
	for _, key := range []string{"transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr", "min.insync.replicas"} {
		p[key] = isr
	}
	for key, v := range k.o.Props {
		p[key] = v
	}
	keys := make([]string, 0, len(p))
	for key := range p {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# written by internal/dev/realstack\n")
	for _, key := range keys {
		fmt.Fprintf(&b, "%s=%s\n", key, p[key])
	}
	return b.String()
}

// clusterID is the cluster's id, made once and kept in <dir>/cluster.id.
func (k *Kafka) clusterID() (string, error) {
	f := filepath.Join(k.o.Dir, "cluster.id")
	if b, err := os.ReadFile(f); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("making a cluster id: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := os.MkdirAll(k.o.Dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", k.o.Dir, err)
	}
	return id, os.WriteFile(f, []byte(id+"\n"), 0o644)
}

// prepare writes node i's properties and formats its storage once.
func (k *Kafka) prepare(ctx context.Context, i int) (string, error) {
	dir := k.nodeDir(i)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	props := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(props, []byte(k.properties(i)), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", props, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "meta.properties")); err == nil {
		return props, nil
	}
	id, err := k.clusterID()
	if err != nil {
		return "", err
	}
	// "--cluster-id=<id>": a base64url id may start with "-", which the
	// tool's argument parser would take for an option.
	args := append(k.d.jvmArgs("kafka", 128), "-cp", k.d.KafkaClasspath(), "kafka.tools.StorageTool", "format", "--cluster-id="+id, "-c", props)
	if k.o.Nodes == 1 {
		args = append(args, "--standalone")
	}
	cmd := exec.CommandContext(ctx, k.d.Java, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("formatting kafka storage of node %d: %w\n%s", i+1, err, out)
	}
	return props, nil
}

// Start starts every node that is not running and waits until all brokers
// are registered and unfenced.
func (k *Kafka) Start(ctx context.Context) error {
	for i := range k.nodes {
		if err := k.launch(ctx, i); err != nil {
			return err
		}
	}
	for i := range k.nodes {
		if err := k.waitNode(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// StartNode starts node i (if stopped) and waits until it serves.
func (k *Kafka) StartNode(ctx context.Context, i int) error {
	if err := k.launch(ctx, i); err != nil {
		return err
	}
	return k.waitNode(ctx, i)
}

func (k *Kafka) launch(ctx context.Context, i int) error {
	if p := k.nodes[i]; p != nil && p.Alive() {
		return nil
	}
	props, err := k.prepare(ctx, i)
	if err != nil {
		return err
	}
	args := append(k.d.jvmArgs("kafka", k.o.HeapMB), "-cp", k.d.KafkaClasspath(), "kafka.Kafka", props)
	p, err := startJava(k.d.Java, k.nodeDir(i), "kafka", k.o.Detach, args)
	if err != nil {
		return err
	}
	k.nodes[i] = p
	return nil
}

// waitNode polls until the cluster's metadata, asked of node i itself,
// lists node i as a broker (KRaft lists only unfenced brokers).
func (k *Kafka) waitNode(ctx context.Context, i int) error {
	p := k.nodes[i]
	ctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	addr := k.Addrs()[i]
	for {
		if !p.Alive() {
			return errExited(p)
		}
		if brokerListed(addr, k.NodeID(i)) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka node %d at %s not ready: %w; last lines of %s:\n%s", i+1, addr, ctx.Err(), p.LogPath, p.LogTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func brokerListed(addr string, id int32) bool {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Net.DialTimeout = time.Second
	cfg.Net.ReadTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return false
	}
	defer b.Close()
	md, err := b.GetMetadata(&sarama.MetadataRequest{Version: 7})
	if err != nil {
		return false
	}
	for _, br := range md.Brokers {
		if br.ID() == id {
			return true
		}
	}
	return false
}

// StopNode stops node i cleanly (SIGTERM), keeping its data.
func (k *Kafka) StopNode(i int) error {
	if p := k.nodes[i]; p != nil {
		return p.Stop(60 * time.Second)
	}
	return nil
}

// KillNode SIGKILLs node i.
func (k *Kafka) KillNode(i int) {
	if p := k.nodes[i]; p != nil {
		p.Kill()
	}
}

// Node is node i's process (nil if never started).
func (k *Kafka) Node(i int) *Process { return k.nodes[i] }

// Stop stops every node at once (one by one, the last controller would
// wait for a quorum that is gone), keeping the data.
func (k *Kafka) Stop() error {
	errs := make(chan error, len(k.nodes))
	for i := range k.nodes {
		go func() { errs <- k.StopNode(i) }()
	}
	var first error
	for range k.nodes {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Leader returns the node that leads topic's partition, or -1.
func (k *Kafka) Leader(topic string, partition int32) (int, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	cfg.Metadata.Retry.Max = 2
	cfg.Net.DialTimeout = 2 * time.Second
	c, err := sarama.NewClient(k.Addrs(), cfg)
	if err != nil {
		return -1, fmt.Errorf("connecting to kafka: %w", err)
	}
	defer c.Close()
	if err := c.RefreshMetadata(topic); err != nil {
		return -1, fmt.Errorf("reading metadata of %s: %w", topic, err)
	}
	b, err := c.Leader(topic, partition)
	if err != nil {
		return -1, fmt.Errorf("leader of %s/%d: %w", topic, partition, err)
	}
	return k.NodeIndex(b.ID()), nil
}

// CreateTopic creates topic with partitions and the cluster's replication.
func (k *Kafka) CreateTopic(topic string, partitions int32) error {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	adm, err := sarama.NewClusterAdmin(k.Addrs(), cfg)
	if err != nil {
		return fmt.Errorf("connecting to kafka: %w", err)
	}
	defer adm.Close()
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: int16(k.o.Nodes)}, false)
	if err != nil {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// Describe writes one line per node: id, address, pid or "stopped".
func (k *Kafka) Describe(w io.Writer) {
	for i, p := range k.nodes {
		state := "stopped"
		if p != nil && p.Alive() {
			state = fmt.Sprintf("running (pid %d)", p.PID)
		}
		fmt.Fprintf(w, "kafka node %d  %s  %s  log %s\n", i+1, k.Addrs()[i], state, filepath.Join(k.nodeDir(i), "kafka.log"))
	}
}
