package realstack

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"testing"
	"time"
)

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ps []int
	// Below the ephemeral range, as testutil.FreePort does: a node
	// restarted on its port must not find it taken by an outgoing connection.
	for len(ps) < n {
		p := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ps = append(ps, p)
	}
	for _, l := range ls {
		l.Close()
	}
	return ps
}

func dist(t *testing.T) *Dist {
	t.Helper()
	src, cache, err := Locate()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Provision(context.Background(), src, cache, testWriter{t})
	if errors.Is(err, ErrNoJava) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

// A single node starts, serves metadata, is stopped cleanly, and comes back
// on its data; a second Provision is a no-op.
func TestKafkaSingleNodeRestart(t *testing.T) {
	d := dist(t)
	start := time.Now()
	if _, err := Provision(context.Background(), d.Src, d.Cache, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("second provisioning took %s", el)
	}
	ps := freePorts(t, 2)
	k, err := NewKafka(d, KafkaOptions{Dir: t.TempDir(), BrokerPorts: ps[:1], ControllerPorts: ps[1:]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop() })
	start = time.Now()
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka %s single node ready in %s", KafkaVersion, time.Since(start))
	if err := k.CreateTopic("t1", 2); err != nil {
		t.Fatal(err)
	}
	if err := k.StopNode(0); err != nil {
		t.Fatal(err)
	}
	if brokerListed(k.Addrs()[0], 1) {
		t.Fatal("stopped broker still answers")
	}
	if err := k.StartNode(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if l, err := k.Leader("t1", 1); err != nil || l != 0 {
		t.Fatalf("leader of t1/1 after restart: %d, %v", l, err)
	}
}

func TestKafkaThreeNodes(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 6)
	k, err := NewKafka(d, KafkaOptions{Dir: t.TempDir(), Nodes: 3, BrokerPorts: ps[:3], ControllerPorts: ps[3:]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Stop() })
	start := time.Now()
	if err := k.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("kafka %s three nodes ready in %s", KafkaVersion, time.Since(start))
	if err := k.CreateTopic("t3", 3); err != nil {
		t.Fatal(err)
	}
	l, err := k.Leader("t3", 0)
	if err != nil {
		t.Fatal(err)
	}
	k.KillNode(l)
	deadline := time.Now().Add(60 * time.Second)
	for {
		nl, err := k.Leader("t3", 0)
		if err == nil && nl >= 0 && nl != l {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new leader after killing node %d: %d, %v", l+1, nl, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("new leader elected %s after the kill", time.Since(deadline.Add(-60*time.Second)))
	start = time.Now()
	if err := k.StartNode(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed node back in %s", time.Since(start))
	start = time.Now()
	if err := k.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster stopped in %s", time.Since(start))
}

func TestESNode(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 2)
	e, err := NewES(d, ESOptions{Dir: t.TempDir(), HTTPPort: ps[0], TransportPort: ps[1]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Stop() })
	start := time.Now()
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("elasticsearch %s ready in %s", ESVersion, time.Since(start))
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if e.Process().Alive() {
		t.Fatal("still running after Stop")
	}
}

// A cluster id that starts with "-" (base64url allows it) still formats.
func TestClusterIDStartingWithDash(t *testing.T) {
	d := dist(t)
	ps := freePorts(t, 2)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/cluster.id", []byte("-AAAAAAAAAAAAAAAAAAAAA\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, err := NewKafka(d, KafkaOptions{Dir: dir, BrokerPorts: ps[:1], ControllerPorts: ps[1:]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.prepare(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}
