package main

// Failure test: the real logtransfer binary runs as a subprocess against a
// kfake broker and the fake Elasticsearch while records keep arriving; it
// is killed with SIGKILL mid-stream and restarted. Every record must end up
// in the store exactly once (re-deliveries overwrite the same _id).

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/fakees"
	"github.com/logpipe/logpipe/internal/dev/testutil"
)

var bins = map[string]string{}

func TestMain(m *testing.M) { testutil.MainWithBinaries(m, bins, "./cmd/logtransfer") }

func logLevel() string {
	if os.Getenv("DEBUG_LOGS") != "" {
		return "debug"
	}
	return "info"
}

// writeIni writes a logtransfer.ini for topic on kafka and es into a temp
// dir; extraES adds [es] keys.
func writeIni(t *testing.T, kafka, es, topic string, bulkActions int, extraES string) string {
	t.Helper()
	ini := filepath.Join(t.TempDir(), "logtransfer.ini")
	err := os.WriteFile(ini, []byte(fmt.Sprintf(`[kafka]
address = %s
topics = %s
session_timeout = 6s
[es]
address = %s
workers = 4
bulk_actions = %d
flush_interval = 50ms
shutdown_timeout = 5s
%s[transfer]
; the tests' records are unsigned and there is no etcd for agent keys
verify_signatures = false
[http]
addr = 127.0.0.1:0
[log]
level = %s
`, kafka, topic, es, bulkActions, extraES, logLevel())), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return ini
}

func start(t *testing.T, ini string, n int) *testutil.Proc {
	t.Helper()
	return testutil.StartProc(t, filepath.Join(filepath.Dir(ini), fmt.Sprintf("transfer-%d.log", n)), bins["logtransfer"], "-config", ini)
}

func TestSIGKILLMidStreamExactlyOnceInStore(t *testing.T) {
	kafka := testutil.StartKafka(t, 8)
	es := fakees.New(t)
	ini := writeIni(t, kafka.Addr(), es.URL(), "stream", 300, "")

	// A steady stream of 5k records/s in the background.
	stopStream := streamRecords(t, kafka.Addr(), "stream")

	for i := 0; i < 3; i++ {
		p := start(t, ini, i)
		before := es.Count()
		testutil.Eventually(t, 60*time.Second, func() bool { return es.Count() >= before+2000 },
			func() string { return fmt.Sprintf("run %d indexing (have %d)", i, es.Count()) })
		time.Sleep(time.Duration(700+400*i) * time.Millisecond) // kill at varying points mid-stream
		p.Kill()
		if os.Getenv("DEBUG_LOGS") != "" {
			t.Logf("run %d log:\n%s", i, p.LogText())
		}
	}
	total := stopStream()
	p := start(t, ini, 3)
	testutil.Eventually(t, 120*time.Second, func() bool { return es.Count() >= total },
		func() string { return fmt.Sprintf("%d documents, have %d", total, es.Count()) })
	if code := p.Term(); code != 0 {
		t.Errorf("exit code %d after SIGTERM\n%s", code, p.LogText())
	}
	docs := es.Docs()
	stored := 0
	for _, m := range docs {
		stored += len(m)
	}
	missing := 0
	for i := 0; i < total; i++ {
		found := false
		for _, m := range docs {
			if _, ok := m[record.DocID(nil, nil, []byte(fmt.Sprintf("stream-%d", i)))]; ok {
				found = true
				break
			}
		}
		if !found {
			missing++
		}
	}
	st := es.Stats()
	t.Logf("RESULT %-28s produced=%d stored=%d lost=%d overwrites=%d", "transfer sigkill x3", total, stored, missing, st.Updated)
	if stored != total || missing != 0 {
		t.Fatalf("store holds %d documents for %d records, %d missing", stored, total, missing)
	}
}
