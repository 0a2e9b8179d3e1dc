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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/keyring"
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
// on its own with k (nil: unsigned).
func agentRecord(t *testing.T, topic, host, ip string, i int, value string, stamp, kts time.Time, k *record.SigningKey) *kgo.Record {
	t.Helper()
	r := &kgo.Record{Topic: topic, Key: []byte("/var/log/" + topic + ".log"), Value: []byte(value), Timestamp: kts}
	for _, h := range [][2]string{{record.HeaderHostName, host}, {record.HeaderHostIP, ip},
		{record.HeaderEventID, fmt.Sprintf("gen-%s-%d", topic, i)}, {record.HeaderIndexTime, fmt.Sprint(stamp.UnixMilli())}} {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
	}
	if k != nil {
		signChunk(k, 0, r)
	}
	return r
}

// signChunk signs recs as one chunk with k, as the agent does (the first
// ctx headers are the same in every record), the signature on the last.
func signChunk(k *record.SigningKey, ctx int, recs ...*kgo.Record) {
	var c record.Chunk
	c.Reset(k, recs[0].Topic, ctx)
	for _, r := range recs {
		var hs []*record.Header
		for _, h := range r.Headers {
			hs = append(hs, &record.Header{Key: []byte(h.Key), Value: h.Value})
		}
		c.Add(r.Key, r.Value, hs)
	}
	sig, err := c.AppendSig(nil)
	if err != nil {
		panic(err)
	}
	last := recs[len(recs)-1]
	last.Headers = append(last.Headers, kgo.RecordHeader{Key: record.HeaderSig, Value: sig})
}

func (e *env) produceRecords(recs []*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing: %v", err)
	}
}

// produceInOrder writes recs to partition 0 of their topics, in order, as
// one agent's file goes to one partition: a chunk's records stay
// consecutive.
func (e *env) produceInOrder(recs []*kgo.Record) {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.kafka.Addr(), ",")...), kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(1<<16))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	for _, r := range recs {
		r.Partition = 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatalf("producing: %v", err)
	}
}

// forgeries is what a producer without the agent's key sends against
// web-1/10.0.0.1, whose genuine lines 0..149 are signed in chunks of 10
// (its host headers the chunks' context) and produced around the
// forgeries: unsigned records for its next lines 100..149 dated 1 March
// 1971…2020, the chunks of lines 0..49 produced again with Kafka
// timestamps of 1 March 1971…2020, records signed with a key nobody has,
// records signed with db-1's own key claiming web-1, and a signature of
// web-1's lifted onto forged lines (a chunk with its last record
// genuine, the others not). It returns the genuine records, the forged
// ones and how many of those must be quarantined (the copies must meet
// their _ids).
func forgeries(t *testing.T, topic string, web, db *record.SigningKey) (genuine, forged []*kgo.Record, quarantined int) {
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	line := func(i int) string { return fmt.Sprintf("line %d of %s", i, topic) }
	for i := 0; i < 150; i++ {
		at := day.Add(time.Duration(i) * time.Millisecond)
		genuine = append(genuine, agentRecord(t, topic, "web-1", "10.0.0.1", i, line(i), at, at, nil))
	}
	for i := 0; i < 150; i += 10 {
		signChunk(web, 2, genuine[i:i+10]...)
	}
	stranger, err := record.NewSigningKey(record.KeyID{9, 9, 9, 9}, []byte(strings.Repeat("s", record.SecretLen)))
	if err != nil {
		t.Fatal(err)
	}
	for j := 0; j < 50; j++ {
		old := time.Date(1971+j, 3, 1, 0, 0, 0, 0, time.UTC)
		forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, nil))
		if j%10 == 9 { // the chunk of lines j-9..j again
			for _, g := range genuine[j-9 : j+1] {
				replay := *g
				replay.Timestamp = old
				forged = append(forged, &replay)
			}
		}
		forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, stranger))
		if j < 20 {
			forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), old, old, db))
		}
	}
	// Nine forged lines, then genuine line 9 with its signature: the
	// signature covers ten records, and these are not the ten it signed.
	for j := 0; j < 9; j++ {
		forged = append(forged, agentRecord(t, topic, "web-1", "10.0.0.1", 100+j, "FORGED "+line(100+j), day, day, nil))
	}
	lifted := *genuine[9]
	forged = append(forged, &lifted)
	return genuine, forged, 50 + 50 + 20 + 10
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
	e.produceInOrder(genuine[:100])
	e.produceInOrder(forged)
	e.produceInOrder(genuine[100:])
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
	if len(reasons) < 4 {
		t.Errorf("quarantine reasons: %v", reasons)
	}
	for _, reason := range []string{"unsigned", "unknown_key", "wrong_host", "bad_signature"} {
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
	e.produceInOrder(genuine[:100])
	e.produceInOrder(forged)
	e.produceInOrder(genuine[100:])
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

// A transfer whose group's commit is inside a chunk (offsets an operator
// reset, a commit another version made) reads the chunk's beginning again
// and indexes the chunk: the agent's lines after the commit are not
// quarantined for a signature the claim saw only the end of.
func TestClaimStartingInsideAChunkReadsItsBeginning(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	web := agentKey(t, etcd, "web-1", "10.0.0.1")
	e := newEnv(t, 1)
	const topic = "tinside"
	day := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := 0; i < 30; i++ {
		recs = append(recs, agentRecord(t, topic, "web-1", "10.0.0.1", i, fmt.Sprintf("line %d of %s", i, topic), day, day, nil))
	}
	for i := 0; i < 30; i += 10 {
		signChunk(web, 2, recs[i:i+10]...)
	}
	e.produceInOrder(recs)
	// The group's commit: offset 15, inside the second chunk, made by a
	// member that joined the group and left.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(e.kafka.Addr(), ",")...), kgo.ConsumerGroup("logtransfer"),
		kgo.ConsumeTopics(topic), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if fs := cl.PollRecords(ctx, 1); fs.Err() != nil {
		t.Fatal(fs.Err())
	}
	var commitErr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: {0: {Epoch: -1, Offset: 15}}},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			commitErr = err
		})
	if commitErr != nil {
		t.Fatal(commitErr)
	}
	cl.Close()
	q := testutil.Consume(t, e.kafka.Addr(), topic+".quarantine")
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s\n[etcd]\naddress = %s\n[transfer]\nverify_signatures = true\n", topic, etcd.Endpoint())))
	// Lines 10..29: the second chunk whole (its first five read again),
	// and the third.
	e.waitDocs(20, 60*time.Second)
	docs := e.es.Docs()[topic+"-2026.11.23"]
	for i := 10; i < 30; i++ {
		if _, ok := docs[genID(topic, i)]; !ok {
			t.Fatalf("line %d not indexed: %s", i, status(t, d))
		}
	}
	if len(docs) != 20 || q.Len() != 0 {
		t.Fatalf("%d documents (want 20), %d quarantined", len(docs), q.Len())
	}
}
