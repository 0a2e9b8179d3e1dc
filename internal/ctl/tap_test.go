package ctl

import (
	"context"
	"strings"
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
