package transferd

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/keyring"
	"github.com/logpipe/logpipe/internal/record"
	"github.com/logpipe/logpipe/internal/testutil"
)

// agentKey provisions a key document in etcd for host/ip and returns its
// signing key.
func agentKey(t *testing.T, etcd *testutil.Etcd, host, ip string) *record.SigningKey {
	t.Helper()
	k, err := keyring.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(keyring.KeyDoc{IP: ip, Host: host, Keys: []keyring.Key{k}})
	p, err := keyring.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	etcd.Put("/logagent/keys/"+ip, string(raw))
	return p.Signing()
}

// agentRecord is line i of topic as an agent of host/ip sends it: its
// index-time stamp, Kafka timestamp kts, event id gen-<topic>-<i>, signed
// with k (nil: unsigned).
func agentRecord(t *testing.T, topic, host, ip string, i int, value string, stamp, kts time.Time, k *record.SigningKey) *kgo.Record {
	t.Helper()
	hs := []*sarama.RecordHeader{
		{Key: []byte(record.HeaderHostName), Value: []byte(host)},
		{Key: []byte(record.HeaderHostIP), Value: []byte(ip)},
		{Key: []byte(record.HeaderEventID), Value: []byte(fmt.Sprintf("gen-%s-%d", topic, i))},
		{Key: []byte(record.HeaderIndexTime), Value: []byte(fmt.Sprint(stamp.UnixMilli()))},
	}
	key := []byte("/var/log/" + topic + ".log")
	if k != nil {
		sig, err := k.Sign(nil, topic, key, []byte(value), 2, hs)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, &sarama.RecordHeader{Key: []byte(record.HeaderSig), Value: sig})
	}
	r := &kgo.Record{Topic: topic, Key: key, Value: []byte(value), Timestamp: kts}
	for _, h := range hs {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(h.Key), Value: h.Value})
	}
	return r
}

func (e *env) produceRecords(recs []*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing: %v", err)
	}
}

// forgeries is what a producer without the agent's key sends against
// web-1/10.0.0.1, whose genuine lines 0..99 are produced first: unsigned
// records for its next lines 100..149 dated 1 March 1971…2020, copies of
// its genuine records 0..49 produced again with Kafka timestamps of
// 1 March 1971…2020, records signed with a key nobody has, and records
// signed with db-1's own key claiming web-1. It returns the genuine
// records, the forged ones and how many of those are not copies (they
// must be quarantined; the copies must meet their _ids).
func forgeries(t *testing.T, topic string, web, db *record.SigningKey) (genuine, forged []*kgo.Record, quarantined int) {
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	line := func(i int) string { return fmt.Sprintf("line %d of %s", i, topic) }
	for i := 0; i < 150; i++ {
		at := day.Add(time.Duration(i) * time.Millisecond)
		genuine = append(genuine, agentRecord(t, topic, "web-1", "10.0.0.1", i, line(i), at, at, web))
	}
	stranger, err := record.NewSigningKey(record.KeyID{9, 9, 9, 9}, []byte(strings.Repeat("s", record.SecretLen)))
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 50; j++ {
		old := time.Date(1971+j, 3, 1, 0, 0, 0, 0, time.UTC)
		forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, nil))
		replay := *genuine[j]
		replay.Timestamp = old
		forged = append(forged, &replay)
		forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, stranger))
		if j < 20 {
			forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, db))
		}
	}
	return genuine, forged, 50 + 50 + 20
}

// Issue 25 items 5 and 6, on kfake and the fake Elasticsearch: forged
// records for an agent's next lines are quarantined with their reasons
// and the real lines stored; copies of the agent's records produced again
// with other Kafka timestamps meet their _ids in the one index; no record
// makes an index of its own.
func TestForgedRecordsAreQuarantinedAndMakeNoIndex(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	web, db := agentKey(t, etcd, "web-1", "10.0.0.1"), agentKey(t, etcd, "db-1", "10.0.0.2")
	e := newEnv(t, 2)
	const topic = "tforged"
	genuine, forged, quarantined := forgeries(t, topic, web, db)
	q := testutil.Consume(t, e.kafka.Addr(), topic+".quarantine")
	e.produceRecords(genuine[:100])
	e.produceRecords(forged)
	e.produceRecords(genuine[100:])
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s\n[etcd]\naddress = %s\n[transfer]\nverify_signatures = true\n", topic, etcd.Endpoint())))
	e.waitDocs(150, 60*time.Second)
	testutil.Eventually(t, 30*time.Second, func() bool { return q.Len() >= quarantined },
		func() string {
			return fmt.Sprintf("%d of %d forgeries quarantined: %s", q.Len(), quarantined, status(t, d))
		})
	e.checkSigned(topic, 150)
	if n := q.Len(); n != quarantined {
		t.Fatalf("%d records quarantined, want %d", n, quarantined)
	}
	reasons := map[string]int{}
	for _, r := range q.Records() {
		reasons[strings.SplitN(r.Headers["dlq.reason"], ",", 2)[0]]++
	}
	if len(reasons) < 3 {
		t.Errorf("quarantine reasons: %v", reasons)
	}
	for _, reason := range []string{"unsigned", "unknown_key", "wrong_host"} {
		if v := testutil.MetricValue(d.Prometheus(), "logtransfer_records_quarantined_total", map[string]string{"reason": reason}); v == 0 {
			t.Errorf("no %s quarantine counted", reason)
		}
	}
}

// checkSigned asserts the store holds lines 0..n-1 of topic once each,
// genuine, in the one index of their stamps' day, and no other index.
func (e *env) checkSigned(topic string, n int) {
	e.t.Helper()
	docs := e.es.Docs()
	var indices []string
	for idx := range docs {
		if strings.HasPrefix(idx, topic) {
			indices = append(indices, idx)
		}
	}
	sort.Strings(indices)
	if len(indices) != 1 || indices[0] != topic+"-2026.11.23" {
		e.t.Fatalf("indices %v, want only %s-2026.11.23", indices, topic)
	}
	got := docs[indices[0]]
	if len(got) != n {
		e.t.Fatalf("%d documents, want %d", len(got), n)
	}
	for i := 0; i < n; i++ {
		raw, ok := got[genID(topic, i)]
		if !ok {
			e.t.Fatalf("line %d missing", i)
		}
		var doc struct{ Message string }
		if json.Unmarshal(raw, &doc) != nil || doc.Message != fmt.Sprintf("line %d of %s", i, topic) {
			e.t.Fatalf("line %d stored as %s", i, raw)
		}
	}
}

// The same on Apache Kafka and Elasticsearch 7.17.
func TestRealForgedRecordsAreQuarantinedAndMakeNoIndex(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	web, db := agentKey(t, etcd, "web-1", "10.0.0.1"), agentKey(t, etcd, "db-1", "10.0.0.2")
	e, es := newRealEnv(t)
	topic := fmt.Sprintf("rforged%d", time.Now().UnixNano())
	genuine, forged, quarantined := forgeries(t, topic, web, db)
	q := testutil.Consume(t, e.kafka.Addr(), topic+".quarantine")
	e.produceRecords(genuine[:100])
	e.produceRecords(forged)
	e.produceRecords(genuine[100:])
	e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s\n[etcd]\naddress = %s\n[transfer]\nverify_signatures = true\n", topic, etcd.Endpoint())))
	waitCount(t, es, topic+"-*", "", 150, 90*time.Second)
	testutil.Eventually(t, 60*time.Second, func() bool { return q.Len() >= quarantined }, testutil.Msg("%d forgeries quarantined", quarantined))
	var cat []struct{ Index string }
	es.JSON(t, 200, "GET", "/_cat/indices/"+topic+"-*?format=json", "", &cat)
	if len(cat) != 1 || cat[0].Index != topic+"-2026.11.23" {
		t.Fatalf("indices %+v, want only %s-2026.11.23", cat, topic)
	}
	if c := es.Count(t, topic+"-*", `{"match_phrase":{"message":"FORGED"}}`); c != 0 {
		t.Fatalf("%d forged documents stored", c)
	}
	if c := es.Count(t, topic+"-*", ""); c != 150 {
		t.Fatalf("%d documents, want 150", c)
	}
	if n := q.Len(); n != quarantined {
		t.Fatalf("%d records quarantined, want %d", n, quarantined)
	}
}

// With accept_unsigned, what bounds the indices unsigned records can make
// is a Kafka timestamp the broker gives: on a topic with
// message.timestamp.type=LogAppendTime, 50 unsigned records dated 1 March
// 1971…2020 (stamp and CreateTime alike) land in the index of the day
// they reach the broker; on a CreateTime topic they made 50 indices.
func TestRealLogAppendTimeBoundsUnsignedIndices(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	e, es := newRealEnv(t)
	run := time.Now().UnixNano()
	bounded, open := fmt.Sprintf("rbound%d", run), fmt.Sprintf("ropen%d", run)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V2_8_0_0
	adm, err := sarama.NewClusterAdmin(strings.Split(e.kafka.Addr(), ","), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	logAppend := "LogAppendTime"
	for topic, cfgs := range map[string]map[string]*string{bounded: {"message.timestamp.type": &logAppend}, open: nil} {
		if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: cfgs}, false); err != nil {
			t.Fatalf("creating %s: %v", topic, err)
		}
	}
	var recs []*kgo.Record
	for j := 0; j < 50; j++ {
		old := time.Date(1971+j, 3, 1, 0, 0, 0, 0, time.UTC)
		for _, topic := range []string{bounded, open} {
			recs = append(recs, agentRecord(t, topic, "laptop", "10.0.0.3", j, fmt.Sprintf("line %d", j), old, old, nil))
		}
	}
	before := time.Now().UTC()
	e.produceRecords(recs)
	after := time.Now().UTC()
	e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s, %s\n[etcd]\naddress = %s\n[transfer]\nverify_signatures = true\naccept_unsigned = true\n", bounded, open, etcd.Endpoint())))
	waitCount(t, es, bounded+"-*", "", 50, 90*time.Second)
	waitCount(t, es, open+"-*", "", 50, 90*time.Second)
	var cat []struct{ Index string }
	es.JSON(t, 200, "GET", "/_cat/indices/"+bounded+"-*?format=json", "", &cat)
	want := map[string]bool{bounded + "-" + before.Format("2006.01.02"): true, bounded + "-" + after.Format("2006.01.02"): true}
	for _, c := range cat {
		if !want[c.Index] {
			t.Fatalf("LogAppendTime topic: indices %+v, want only the day the records reached the broker", cat)
		}
	}
	cat = nil
	es.JSON(t, 200, "GET", "/_cat/indices/"+open+"-*?format=json", "", &cat)
	if len(cat) != 50 {
		t.Fatalf("CreateTime topic: %d indices for 50 records dated 50 years apart (the contrast this test documents)", len(cat))
	}
}
