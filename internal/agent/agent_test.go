package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/config"
	"github.com/logpipe/logpipe/internal/testutil"
)

type env struct {
	t     *testing.T
	etcd  *testutil.Etcd
	kafka *testutil.Kafka
	dir   string
	data  string
}

func newEnv(t *testing.T) *env {
	return &env{t: t, etcd: testutil.StartEtcd(t), kafka: testutil.StartKafka(t, 3), dir: t.TempDir(), data: t.TempDir()}
}

func (e *env) config(extra string) *config.AgentConfig {
	e.t.Helper()
	ini := fmt.Sprintf(`
[kafka]
address = %s
chan_max_size = 1000
flush_interval = 5ms
[etcd]
address = %s
timeout = 2s
[agent]
ip = 10.1.2.3
hostname = testhost
data_dir = %s
poll_interval = 20ms
scan_interval = 200ms
[http]
addr = 127.0.0.1:0
[log]
level = warn
%s`, e.kafka.Addr(), e.etcd.Endpoint(), e.data, extra)
	cfg, err := config.ParseAgent("test.ini", []byte(ini))
	if err != nil {
		e.t.Fatal(err)
	}
	return cfg
}

// start runs an agent in-process until the returned stop is called.
func (e *env) start(cfg *config.AgentConfig) (*Agent, func()) {
	e.t.Helper()
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	a, err := New(cfg, Options{Version: "test"}, logrus.NewEntry(log))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("agent Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Fatal("agent did not stop")
		}
	}
	e.t.Cleanup(stop)
	return a, stop
}

func appendLines(t *testing.T, path, prefix string, from, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b strings.Builder
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		t.Fatal(err)
	}
}

func TestTwoFilesTwoTopics(t *testing.T) {
	e := newEnv(t)
	a, _ := e.start(e.config(""))
	web, app := filepath.Join(e.dir, "web.log"), filepath.Join(e.dir, "app.log")
	appendLines(t, web, "web", 0, 50)
	appendLines(t, app, "app", 0, 30)
	e.etcd.Put(a.Key(), fmt.Sprintf(`[{"path":%q,"topic":"web_log"},{"path":%q,"topic":"app_log","fields":{"service":"shop"}}]`, web, app))
	cons := testutil.Consume(t, e.kafka.Addr(), "web_log", "app_log")
	appendLines(t, web, "web", 50, 50)
	testutil.Eventually(t, 20*time.Second, func() bool { return cons.Len() >= 130 }, func() string { return fmt.Sprintf("130 records, have %d", cons.Len()) })
	byTopic := map[string]int{}
	for _, r := range cons.Records() {
		byTopic[r.Topic]++
		if r.Headers["host.name"] != "testhost" || r.Headers["host.ip"] != "10.1.2.3" {
			t.Fatalf("bad host headers %v", r.Headers)
		}
		if r.Topic == "app_log" && r.Headers["fields"] != `{"service":"shop"}` {
			t.Fatalf("fields header = %q", r.Headers["fields"])
		}
	}
	if byTopic["web_log"] != 100 || byTopic["app_log"] != 30 {
		t.Fatalf("per topic %v", byTopic)
	}
}
