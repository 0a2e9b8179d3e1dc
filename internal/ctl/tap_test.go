package ctl

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// logctl tap <ip> follows what one agent's host sends now, from the topics
// of its collect config, with the headers; another host's records in the
// same topic are left out, what came before the tap is not shown, and a
// control character in a line reaches the terminal escaped.
func TestTapFollowsOneHostsRecordsFromNow(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	kafka := testutil.StartKafka(t, 2)
	etcd.Put("/logagent/10.0.0.1/collect_config", `[{"path":"/var/log/a.log","topic":"tapped"}]`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := func(ip, value string) *kgo.Record {
		return &kgo.Record{Topic: "tapped", Key: []byte("/var/log/a.log"), Value: []byte(value),
			Headers: []kgo.RecordHeader{{Key: "host.ip", Value: []byte(ip)}, {Key: "host.name", Value: []byte("h-" + ip)}, {Key: "event.id", Value: []byte("abc-1")}}}
	}
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, rec("10.0.0.1", "before the tap")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var out, errOut testutil.SyncBuffer
	done := make(chan int)
	go func() {
		done <- Run([]string{"--endpoints", etcd.Endpoint(), "tap", "--kafka", kafka.Addr(), "--count", "2", "10.0.0.1"}, nil, &out, &errOut)
	}()
	testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(errOut.String(), "tapping the records of 10.0.0.1") },
		func() string { return "tap started: " + errOut.String() })
	if err := cl.ProduceSync(ctx, rec("10.0.0.2", "another host"), rec("10.0.0.1", "first \x1b]0;pwned\x07 line"), rec("10.0.0.1", "second line")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tap did not stop after 2 records:\n%s", out.String())
	}
	got := out.String()
	t.Logf("logctl tap 10.0.0.1:\n%s", got)
	for _, want := range []string{"tapped/", "key=/var/log/a.log host.ip=10.0.0.1 host.name=h-10.0.0.1 event.id=abc-1", `first \x1b]0;pwned\x07 line`, "second line"} {
		if !strings.Contains(got, want) {
			t.Errorf("tap printed no %q", want)
		}
	}
	for _, not := range []string{"before the tap", "another host", "\x1b"} {
		if strings.Contains(got, not) {
			t.Errorf("tap printed %q", not)
		}
	}
}

// tap --topic follows whole topics, every host's records; tap <ip> <path>
// one file's; Ctrl-C (SIGINT) ends a tap with exit 0.
func TestTapByTopicAndByFileStopsOnCtrlC(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	kafka := testutil.StartKafka(t, 2)
	etcd.Put("/logagent/10.0.0.1/collect_config", `[{"path":"/var/log/a.log","topic":"web"},{"path":"/var/log/b.log","topic":"web"}]`)
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafka.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := func(ip, path, value string) *kgo.Record {
		return &kgo.Record{Topic: "web", Key: []byte(path), Value: []byte(value),
			Headers: []kgo.RecordHeader{{Key: "host.ip", Value: []byte(ip)}, {Key: "host.name", Value: []byte("h-" + ip)}, {Key: "event.id", Value: []byte("abc-" + strconv.Itoa(len(value)))}}}
	}
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, rec("10.0.0.1", "/var/log/a.log", "created the topic")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	type tapRun struct {
		out, errOut testutil.SyncBuffer
		done        chan int
	}
	start := func(args ...string) *tapRun {
		r := &tapRun{done: make(chan int, 1)}
		go func() {
			r.done <- Run(append([]string{"--endpoints", etcd.Endpoint(), "tap", "--kafka", kafka.Addr()}, args...), nil, &r.out, &r.errOut)
		}()
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(r.errOut.String(), "Ctrl-C stops") },
			func() string { return "tap started: " + r.errOut.String() })
		return r
	}
	byTopic := start("--topic", "web")
	byFile := start("--count", "1", "10.0.0.1", "/var/log/b.log")
	if err := cl.ProduceSync(ctx, rec("10.0.0.2", "/var/log/a.log", "from another host"), rec("10.0.0.1", "/var/log/a.log", "from a.log"),
		rec("10.0.0.1", "/var/log/b.log", "from b.log")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-byFile.done:
		if code != 0 {
			t.Fatalf("tap 10.0.0.1 /var/log/b.log: exit %d: %s", code, byFile.errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("tap of one file did not stop after its record:\n%s%s\nthe tap of the topic:\n%s%s", byFile.out.String(), byFile.errOut.String(), byTopic.out.String(), byTopic.errOut.String())
	}
	t.Logf("logctl tap 10.0.0.1 /var/log/b.log:\n%s", byFile.out.String())
	if got := byFile.out.String(); !strings.Contains(got, "from b.log") || strings.Contains(got, "from a.log") || strings.Contains(got, "another host") {
		t.Errorf("tap of b.log printed:\n%s", got)
	}
	testutil.Eventually(t, 30*time.Second, func() bool {
		got := byTopic.out.String()
		return strings.Contains(got, "from another host") && strings.Contains(got, "from a.log") && strings.Contains(got, "from b.log")
	}, func() string { return "tap --topic web: " + byTopic.out.String() })
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-byTopic.done:
		if code != 0 {
			t.Fatalf("tap --topic after Ctrl-C: exit %d: %s", code, byTopic.errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tap --topic did not stop on Ctrl-C")
	}
	t.Logf("logctl tap --topic web, then Ctrl-C:\n%s%s", byTopic.out.String(), byTopic.errOut.String())
	if strings.Contains(byTopic.out.String(), "created the topic") {
		t.Error("tap --topic printed a record from before it started")
	}
}
