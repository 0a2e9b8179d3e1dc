package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/ctl"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// logctl trace follows one line end to end through the real daemons (the
// agent and the transfer as processes, etcd and a Kafka-protocol broker
// from devstack, the fake search engine): a line that was indexed, found
// by its offset, shows its record, the transfer's commit past it and its
// document; a line the store refused, found by its text, shows its
// dead-letter record with the engine's reason.
func TestTraceFollowsALine(t *testing.T) {
	s := newSys(t, "fake", "")
	s.es.SetItemFault(func(_, _ string, source []byte) int {
		if bytes.Contains(source, []byte("REFUSE-ME")) {
			return 400
		}
		return 0
	})
	s.put(s.config("a.log"))
	s.startTransfer()
	s.startAgent()
	path := filepath.Join(s.logs, "a.log")
	lines := []string{"first line of the trace test", "second line, REFUSE-ME", "third line"}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, func() bool { return s.store.Count() >= 2 && s.records(s.topic+".dlq") >= 1 },
		func() string {
			return fmt.Sprintf("2 lines stored (%d) and 1 dead-lettered (%d)", s.store.Count(), s.records(s.topic+".dlq"))
		})
	trace := func(what string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		var got string
		// The transfer commits a moment after the store answered.
		testutil.Eventually(t, 30*time.Second, func() bool {
			out.Reset()
			errOut.Reset()
			code := ctl.Run([]string{"--endpoints", s.etcdAddr, "trace", "--kafka", fmt.Sprintf("127.0.0.1:%d", s.kafkaPort), "--es", s.es.URL(),
				"10.20.30.40", path, what}, nil, &out, &errOut)
			got = out.String() + errOut.String()
			return code == 0 && strings.Contains(got, "past this record")
		}, func() string { return "logctl trace " + what + ":\n" + got })
		t.Logf("logctl trace 10.20.30.40 %s %s:\n%s", path, what, got)
		return got
	}
	got := trace("0")
	for _, want := range []string{"agent    10.20.30.40", "→ topic " + s.topic, "kafka    " + s.topic + " partition ", "event.id ", "-0, read ",
		"first line of the trace test", "transfer group logtransfer committed", "past this record", "index    " + s.topic + "-", "stored", `"message":"first line of the trace test"`} {
		if !strings.Contains(got, want) {
			t.Errorf("trace of an indexed line lacks %q", want)
		}
	}
	got = trace("REFUSE-ME")
	for _, want := range []string{fmt.Sprintf("-%d, read ", len(lines[0])+1), "index    no document _id", "dead-letter " + s.topic + ".dlq partition ", "reason \"400 "} {
		if !strings.Contains(got, want) {
			t.Errorf("trace of a dead-lettered line lacks %q", want)
		}
	}
	s.agent.Term()
	s.transfer.Term()
}

// logctl top shows the live agent's file with the bytes Kafka
// acknowledged a second while lines are written, read from the agent's
// /metrics at the address its inventory entry publishes.
func TestTopShowsLiveRates(t *testing.T) {
	s := newSys(t, "fake", "")
	w := s.start("a.log")
	var out, errOut bytes.Buffer
	var got string
	testutil.Eventually(t, 60*time.Second, func() bool {
		out.Reset()
		errOut.Reset()
		code := ctl.Run([]string{"--endpoints", s.etcdAddr, "top", "--once", "--interval", "2s"}, nil, &out, &errOut)
		got = out.String() + errOut.String()
		// A rate of whole kilobytes or more a second: lines are flowing.
		return code == 0 && strings.Contains(got, filepath.Join(s.logs, "a.log")) && strings.Contains(got, "all files") &&
			(strings.Contains(got, "KiB/s") || strings.Contains(got, "MiB/s"))
	}, func() string { return "logctl top --once:\n" + got })
	t.Logf("logctl top --once:\n%s", got)
	s.finish("logctl top", w, nil)
}
