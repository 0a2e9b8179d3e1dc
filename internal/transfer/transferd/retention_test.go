package transferd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logpipe/logpipe/internal/ctl"
	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/transfer/indexlife"
)

// Retention on the real engine: the transfer deletes its own indices of a
// topic once they are older than the topic's retention, and nothing else
// its pattern matches: an index of the right name created by someone else
// (no marker), one marked for another topic, another topic's index
// ("<topic>-x-…"), an alias named like one of its indices. Its indices get
// the topic's settings (replicas 0: green on one node).
func TestRealRetentionDeletesOnlyItsOwnExpiredIndices(t *testing.T) {
	bothEngines(t, func(t *testing.T, engine string) {
		e, es := newRealEnvOn(t, engine)
		const topic = "retain"
		day := func(daysAgo int) string {
			return topic + "-" + time.Now().UTC().AddDate(0, 0, -daysAgo).Format("2006.01.02")
		}
		oldIdx, freshIdx := day(20), day(0)
		foreign, otherTopic, markedOther, aliased := day(30), topic+"-x-"+time.Now().UTC().AddDate(0, 0, -40).Format("2006.01.02"), day(25), day(35)
		// Created before the transfer installs its template: no marker.
		es.JSON(t, 200, "PUT", "/"+foreign, `{}`, nil)
		es.JSON(t, 200, "PUT", "/"+otherTopic, `{}`, nil)
		es.JSON(t, 200, "PUT", "/"+markedOther, `{"mappings":{"_meta":{"managed_by":"logtransfer","topic":"someone-else"}}}`, nil)
		es.JSON(t, 200, "PUT", "/unrelated-retain-target", `{"aliases":{"`+aliased+`":{}}}`, nil)
		// Kibana's own index, marked as if by us (a marker is not enough:
		// the name must be the topic's pattern too).
		es.JSON(t, 200, "PUT", "/.kibana_1", `{"mappings":{"_meta":{"managed_by":"logtransfer","topic":"retain"}}}`, nil)

		at := func(ts time.Time, i int) *kgo.Record {
			return &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("line %d", i)), Timestamp: ts,
				Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte(fmt.Sprintf("retain-%d", i))}}}
		}
		var recs []*kgo.Record
		for i := range 50 {
			recs = append(recs, at(time.Now().UTC().AddDate(0, 0, -20), i), at(time.Now().UTC(), 100+i))
		}
		if err := e.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		d, _ := e.start(e.config("[kafka]\ntopics = " + topic + "\n[index]\nreplicas = 0\nretention_interval = 1s\n[index." + topic + "]\nretention_days = 7\nrefresh_interval = 2s\n"))
		waitCount(t, es, freshIdx, "", 50, 60*time.Second)
		exists := func(name string) bool { st, _ := es.Do(t, "HEAD", "/"+name, ""); return st == 200 }
		testutil.Eventually(t, 30*time.Second, func() bool {
			return !exists(oldIdx) && testutil.MetricValue(d.Prometheus(), "logtransfer_indices_deleted_total", nil) >= 1
		}, testutil.Msg("the expired index %s deleted and counted", oldIdx))
		for _, name := range []string{freshIdx, foreign, otherTopic, markedOther, "unrelated-retain-target", ".kibana_1"} {
			if !exists(name) {
				t.Errorf("%s was deleted", name)
			}
		}
		if st := d.retention.Status(); !slices.ContainsFunc(st.Deleted, func(x indexlife.Deleted) bool { return x.Index == oldIdx }) || st.LastError != "" {
			t.Errorf("status %+v", st)
		}
		// The settings the topic asked for.
		var set map[string]struct {
			Settings struct {
				Index struct {
					Replicas string `json:"number_of_replicas"`
					Refresh  string `json:"refresh_interval"`
				}
			}
		}
		es.JSON(t, 200, "GET", "/"+freshIdx+"/_settings", "", &set)
		if s := set[freshIdx].Settings.Index; s.Replicas != "0" || s.Refresh != "2s" {
			t.Errorf("index settings %+v, want replicas 0 and refresh 2s", s)
		}
		var health struct{ Status string }
		es.JSON(t, 200, "GET", "/_cluster/health/"+freshIdx, "", &health)
		if health.Status != "green" {
			t.Errorf("%s is %s, want green (no replicas on one node)", freshIdx, health.Status)
		}
		// What /indices (logctl indices) says of each.
		resp, err := http.Get("http://" + d.HTTPAddr() + "/indices")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ Indices []indexlife.Index }
		if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
			t.Fatal(err)
		}
		kept := map[string]string{}
		for _, ix := range got.Indices {
			kept[ix.Name] = ix.Kept
			if ix.Name == freshIdx && (ix.Expired || ix.Expires.IsZero() || ix.Docs != 50) {
				t.Errorf("%s listed as %+v", freshIdx, ix)
			}
		}
		for name, why := range map[string]string{foreign: "no _meta.managed_by", otherTopic: "not named by the index pattern", markedOther: `"someone-else"`} {
			if k, ok := kept[name]; !ok || !strings.Contains(k, why) {
				t.Errorf("%s listed as kept for %q, want a reason with %q (all: %v)", name, k, why, kept)
			}
		}
		if _, ok := kept[aliased]; ok {
			t.Errorf("the alias %s listed as an index", aliased)
		}
		// logctl indices says the same, for people.
		var out, errOut bytes.Buffer
		if code := ctl.Run([]string{"-transfer", "http://" + d.HTTPAddr(), "indices"}, nil, &out, &errOut); code != 0 {
			t.Fatalf("logctl indices: exit %d: %s", code, errOut.String())
		}
		t.Logf("logctl indices:\n%s", out.String())
		for _, want := range []string{freshIdx + "  ", foreign + "  ", "never deleted: no _meta.managed_by", "5 indices, 0 expired"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("logctl indices printed no %q", want)
			}
		}
		out.Reset()
		if code := ctl.Run([]string{"-transfer", "http://" + d.HTTPAddr(), "indices", "--expired"}, nil, &out, &errOut); code != 0 || !strings.Contains(out.String(), "0 indices, 0 expired") {
			t.Errorf("logctl indices --expired: exit %d: %s%s", code, out.String(), errOut.String())
		}
	})
}

// Retention follows the document in etcd ([etcd] retention_key) without a
// restart: a topic's days there replace the ini's; an invalid document is
// refused whole (shown in /status, counted) and the one in force stays;
// deleting it brings the ini's back (Apache Kafka, Elasticsearch 7.17,
// embedded etcd).
func TestRealRetentionFollowsEtcd(t *testing.T) {
	e, es := newRealEnv(t)
	etcd := testutil.StartEtcd(t)
	const topic = "retetcd"
	day := func(daysAgo int) string {
		return topic + "-" + time.Now().UTC().AddDate(0, 0, -daysAgo).Format("2006.01.02")
	}
	oldIdx, freshIdx := day(20), day(0)
	var recs []*kgo.Record
	for i := range 20 {
		ts := time.Now().UTC()
		if i%2 == 0 {
			ts = ts.AddDate(0, 0, -20)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("line %d", i)), Timestamp: ts,
			Headers: []kgo.RecordHeader{{Key: "event.id", Value: []byte(fmt.Sprintf("retetcd-%d", i))}}})
	}
	if err := e.prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	d, _ := e.start(e.config(fmt.Sprintf("[kafka]\ntopics = %s\n[etcd]\naddress = %s\ndiscover_topics = true\n[index]\nreplicas = 0\nretention_days = 30\nretention_interval = 1s\n",
		topic, etcd.Endpoint())))
	waitCount(t, es, oldIdx, "", 10, 60*time.Second)
	waitCount(t, es, freshIdx, "", 10, 60*time.Second)
	exists := func(name string) bool { st, _ := es.Do(t, "HEAD", "/"+name, ""); return st == 200 }
	sweptAfter := func(at time.Time) func() bool {
		return func() bool { return d.retention.Status().LastSweep.After(at) }
	}
	// Under the ini's 30 days the 20-day-old index stays.
	now := time.Now()
	testutil.Eventually(t, 30*time.Second, sweptAfter(now), testutil.Msg("a sweep"))
	if !exists(oldIdx) {
		t.Fatalf("%s deleted under the ini's 30 days", oldIdx)
	}
	type retStatus struct {
		RetentionConfig indexlife.OverrideStatus `json:"retention_config"`
	}
	status := func() retStatus {
		var st retStatus
		if err := getJSON("http://"+d.HTTPAddr()+"/status", &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// An invalid document: refused whole, shown and counted; nothing
	// deleted.
	etcd.Put("/logtransfer/retention", `{"topics":{"`+topic+`":7,"bad topic":3},"default_days":-1}`)
	testutil.Eventually(t, 30*time.Second, func() bool { return status().RetentionConfig.Error != "" },
		testutil.Msg("/status shows the refused retention document"))
	st := status().RetentionConfig
	for _, want := range []string{`"bad topic"`, "default_days -1"} {
		if !strings.Contains(st.Error, want) {
			t.Errorf("refusal %q does not name %s", st.Error, want)
		}
	}
	if n := testutil.MetricValue(d.Prometheus(), "logtransfer_retention_config_errors_total", nil); n != 1 {
		t.Errorf("refusals counted %v, want 1", n)
	}
	now = time.Now()
	testutil.Eventually(t, 30*time.Second, sweptAfter(now), testutil.Msg("a sweep"))
	if !exists(oldIdx) {
		t.Fatalf("%s deleted after an invalid retention document", oldIdx)
	}
	// A valid one: the topic's 7 days apply at the next sweep.
	etcd.Put("/logtransfer/retention", `{"topics":{"`+topic+`":7}}`)
	testutil.Eventually(t, 30*time.Second, func() bool { return !exists(oldIdx) }, testutil.Msg("%s deleted under etcd's 7 days", oldIdx))
	if !exists(freshIdx) {
		t.Errorf("%s deleted", freshIdx)
	}
	st = status().RetentionConfig
	if st.Error != "" || st.Revision == 0 || st.InForce == nil || st.InForce.Topics[topic] != 7 {
		t.Errorf("retention_config %+v, want the 7-day document in force and no error", st)
	}
	// Deleted: the ini's retention again.
	etcd.Delete("/logtransfer/retention")
	testutil.Eventually(t, 30*time.Second, func() bool { return status().RetentionConfig.InForce == nil },
		testutil.Msg("the document gone from /status"))
	if got := d.retOver.Days(topic, 30); got != 30 {
		t.Errorf("retention after the delete: %d days, want the ini's 30", got)
	}
}
