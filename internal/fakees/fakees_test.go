package fakees

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
)

// client is an olivere client configured like logtransfer's (no sniffing,
// no health checks), with its own transport so tests do not share
// connections.
func client(t *testing.T, url string, opts ...elastic.ClientOptionFunc) *elastic.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	all := append([]elastic.ClientOptionFunc{
		elastic.SetURL(url),
		elastic.SetSniff(false),
		elastic.SetHealthcheck(false),
		elastic.SetHttpClient(&http.Client{Transport: tr}),
	}, opts...)
	c, err := elastic.NewClient(all...)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func bulkReq(index, id, body string) *elastic.BulkIndexRequest {
	return elastic.NewBulkIndexRequest().Index(index).Id(id).Doc(json.RawMessage(body))
}

// asESError returns err as *elastic.Error or fails the test.
func asESError(t *testing.T, err error) *elastic.Error {
	t.Helper()
	var ee *elastic.Error
	if !errors.As(err, &ee) {
		t.Fatalf("error %v (%T) is not an *elastic.Error", err, err)
	}
	return ee
}

// rawBulk sends body to path with PerformRequest and returns the decoded
// response, or the error.
func rawBulk(t *testing.T, c *elastic.Client, path, body string) (*elastic.BulkResponse, error) {
	t.Helper()
	res, err := c.PerformRequest(ctxT(t), elastic.PerformRequestOptions{
		Method: "POST", Path: path, Body: body, ContentType: "application/x-ndjson",
	})
	if err != nil {
		return nil, err
	}
	var br elastic.BulkResponse
	if err := json.Unmarshal(res.Body, &br); err != nil {
		t.Fatalf("decoding bulk response %s: %v", res.Body, err)
	}
	return &br, nil
}

func item(t *testing.T, resp *elastic.BulkResponse, i int) (string, *elastic.BulkResponseItem) {
	t.Helper()
	if i >= len(resp.Items) {
		t.Fatalf("response has %d items, want item %d", len(resp.Items), i)
	}
	for action, it := range resp.Items[i] {
		return action, it
	}
	t.Fatalf("item %d is empty", i)
	return "", nil
}

func TestRootInfoAndHeaders(t *testing.T) {
	s := New(t)
	res, err := http.Get(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if got := res.Header.Get("X-Elastic-Product"); got != "Elasticsearch" {
		t.Errorf("X-Elastic-Product = %q", got)
	}
	var info struct {
		Version struct {
			Number string `json:"number"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	if err := json.NewDecoder(res.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Version.Number != "8.13.0" || info.Tagline != "You Know, for Search" {
		t.Errorf("info = %+v", info)
	}

	head, err := http.Head(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.Header.Get("X-Elastic-Product") != "Elasticsearch" {
		t.Errorf("HEAD / = %d %v", head.StatusCode, head.Header)
	}

	c := client(t, s.URL())
	v, err := c.ElasticsearchVersion(s.URL())
	if err != nil || v != "8.13.0" {
		t.Errorf("ElasticsearchVersion = %q, %v", v, err)
	}
}

func TestBulkIndexStoresDocuments(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().
		Add(bulkReq("logs-a", "1", `{"message":"one"}`)).
		Add(bulkReq("logs-a", "2", `{"message":"two"}`)).
		Add(bulkReq("logs-b", "1", `{"message":"three"}`)).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Errors || len(resp.Items) != 3 {
		t.Fatalf("errors=%v items=%d", resp.Errors, len(resp.Items))
	}
	for i := range 3 {
		action, it := item(t, resp, i)
		if action != "index" || it.Status != 201 || it.Result != "created" || it.Version != 1 || it.Error != nil ||
			it.Shards == nil || it.Shards.Successful != 1 || it.PrimaryTerm != 1 {
			t.Errorf("item %d = %s %+v", i, action, it)
		}
	}
	if _, it := item(t, resp, 1); it.SeqNo != 1 || it.Index != "logs-a" || it.Id != "2" {
		t.Errorf("item 1 = %+v", it)
	}
	if got, ok := s.Doc("logs-a", "2"); !ok || string(got) != `{"message":"two"}` {
		t.Errorf("Doc(logs-a, 2) = %s, %v", got, ok)
	}
	if s.Count() != 3 {
		t.Errorf("Count = %d", s.Count())
	}
	docs := s.Docs()
	if len(docs) != 2 || len(docs["logs-a"]) != 2 || len(docs["logs-b"]) != 1 {
		t.Errorf("Docs = %v", docs)
	}
	docs["logs-a"]["1"][2] = 'X' // a deep copy: must not change the store
	if got, _ := s.Doc("logs-a", "1"); string(got) != `{"message":"one"}` {
		t.Errorf("Docs is not a deep copy: %s", got)
	}
	if got := s.Indices(); !slices.Equal(got, []string{"logs-a", "logs-b"}) {
		t.Errorf("Indices = %v", got)
	}
	st := s.Stats()
	if st.BulkRequests != 1 || st.Items != 3 || st.Created != 3 || st.Updated != 0 || st.Failed != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if got := s.Requests(); !slices.Equal(got, []string{"POST /_bulk"}) {
		t.Errorf("Requests = %v", got)
	}
}

func TestBulkAutoIDAndDefaultIndexFromURL(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().Index("dflt").
		Add(elastic.NewBulkIndexRequest().Doc(json.RawMessage(`{"a":1}`))).
		Add(elastic.NewBulkIndexRequest().Index("other").Doc(json.RawMessage(`{"a":2}`))).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, a := item(t, resp, 0)
	_, b := item(t, resp, 1)
	if a.Index != "dflt" || b.Index != "other" || len(a.Id) != 20 || a.Id == b.Id || a.Status != 201 {
		t.Errorf("items = %+v %+v", a, b)
	}
	if _, ok := s.Doc("dflt", a.Id); !ok {
		t.Errorf("auto-id document not stored under %q", a.Id)
	}
	if got := s.Requests(); !slices.Equal(got, []string{"POST /dflt/_bulk"}) {
		t.Errorf("Requests = %v", got)
	}
}

func TestReindexSameIDIsUpdate(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	for i, body := range []string{`{"v":1}`, `{"v":2}`} {
		resp, err := c.Bulk().Add(bulkReq("i", "same", body)).Do(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		_, it := item(t, resp, 0)
		wantStatus, wantResult := 201, "created"
		if i == 1 {
			wantStatus, wantResult = 200, "updated"
		}
		if it.Status != wantStatus || it.Result != wantResult || it.Version != int64(i+1) || resp.Errors {
			t.Errorf("round %d: %+v", i, it)
		}
	}
	if got, _ := s.Doc("i", "same"); string(got) != `{"v":2}` {
		t.Errorf("Doc = %s", got)
	}
	if v, _ := s.DocVersion("i", "same"); v != 2 {
		t.Errorf("DocVersion = %d", v)
	}
	if st := s.Stats(); st.Updated != 1 || st.Created != 1 || st.Items != 2 || st.BulkRequests != 2 {
		t.Errorf("Stats = %+v", st)
	}
	if s.Count() != 1 {
		t.Errorf("Count = %d", s.Count())
	}
}

func TestItemFault429(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	var seen sync.Map
	s.SetItemFault(func(index, id string, source []byte) int {
		seen.Store(id, string(source))
		if id == "b" || id == "d" {
			return 429
		}
		return 0
	})
	svc := c.Bulk()
	for _, id := range []string{"a", "b", "c", "d"} {
		svc.Add(bulkReq("i", id, `{"id":"`+id+`"}`))
	}
	resp, err := svc.Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Errors {
		t.Error("Errors = false")
	}
	for i, id := range []string{"a", "b", "c", "d"} {
		_, it := item(t, resp, i)
		_, stored := s.Doc("i", id)
		if id == "b" || id == "d" {
			if it.Status != 429 || it.Error == nil || it.Error.Type != "es_rejected_execution_exception" ||
				!strings.HasPrefix(it.Error.Reason, "rejected execution of coordinating operation") || it.Result != "" {
				t.Errorf("%s: %+v %+v", id, it, it.Error)
			}
			if stored {
				t.Errorf("%s: faulted item was stored", id)
			}
		} else if it.Status != 201 || !stored {
			t.Errorf("%s: status %d stored %v", id, it.Status, stored)
		}
	}
	if src, _ := seen.Load("c"); src != `{"id":"c"}` {
		t.Errorf("hook saw source %v", src)
	}
	if len(resp.Failed()) != 2 || len(resp.Succeeded()) != 2 {
		t.Errorf("Failed=%d Succeeded=%d", len(resp.Failed()), len(resp.Succeeded()))
	}
	if st := s.Stats(); st.Rejected429 != 2 || st.Failed != 2 || st.Created != 2 {
		t.Errorf("Stats = %+v", st)
	}

	// Removing the hook lets the retried items through.
	s.SetItemFault(nil)
	resp, err = c.Bulk().Add(bulkReq("i", "b", `{}`), bulkReq("i", "d", `{}`)).Do(ctxT(t))
	if err != nil || resp.Errors {
		t.Fatalf("retry: %v %+v", err, resp)
	}
	if s.Count() != 4 {
		t.Errorf("Count = %d", s.Count())
	}
}

func TestItemFault400AndOthers(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	s.SetItemFault(func(index, id string, source []byte) int {
		switch id {
		case "bad":
			return 400
		case "e500":
			return 500
		case "e503":
			return 503
		}
		return 0
	})
	s.SetItemFaultDetail(nil) // replaces the hook above
	s.SetItemFault(func(index, id string, source []byte) int {
		return map[string]int{"bad": 400, "e500": 500, "e503": 503}[id]
	})
	resp, err := c.Bulk().
		Add(bulkReq("i", "bad", `{"n":"x"}`)).
		Add(bulkReq("i", "e500", `{}`)).
		Add(bulkReq("i", "e503", `{}`)).
		Add(bulkReq("i", "fine", `{}`)).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	_, bad := item(t, resp, 0)
	if bad.Status != 400 || bad.Error == nil || bad.Error.Type != "mapper_parsing_exception" || !strings.Contains(bad.Error.Reason, "failed to parse") {
		t.Errorf("400 item = %+v err %+v", bad, bad.Error)
	}
	if _, it := item(t, resp, 1); it.Status != 500 || it.Error == nil || it.Error.Type == "" {
		t.Errorf("500 item = %+v", it)
	}
	if _, it := item(t, resp, 2); it.Status != 503 || it.Error == nil || it.Error.Type != "unavailable_shards_exception" {
		t.Errorf("503 item = %+v", it)
	}
	if _, it := item(t, resp, 3); it.Status != 201 {
		t.Errorf("fine item = %+v", it)
	}
	if s.Count() != 1 || s.Stats().Rejected400 != 1 {
		t.Errorf("Count = %d, Stats = %+v", s.Count(), s.Stats())
	}

	s.SetItemFaultDetail(func(index, id string, source []byte) *Fault {
		return &Fault{Status: 400, Type: "document_parsing_exception", Reason: "[1:15] failed to parse field [@timestamp] of type [date]"}
	})
	resp, err = c.Bulk().Add(bulkReq("i", "x", `{}`)).Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, it := item(t, resp, 0); it.Error == nil || it.Error.Type != "document_parsing_exception" || !strings.Contains(it.Error.Reason, "@timestamp") {
		t.Errorf("custom fault item = %+v", it)
	}
}

func TestInvalidDocumentLineFailsOnlyThatItem(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	body := `{"index":{"_index":"i","_id":"1"}}` + "\n" +
		`{not json` + "\n" +
		`{"index":{"_index":"i","_id":"2"}}` + "\n" +
		`{"ok":true}` + "\n" +
		`{"create":{"_index":"i","_id":"3"}}` + "\n" +
		`[1,2]` + "\n" +
		`{"index":{"_index":"i","_id":"4"}}` + "\r\n" +
		`{"crlf":true}` + "\r\n"
	resp, err := rawBulk(t, c, "/_bulk", body)
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Errors || len(resp.Items) != 4 {
		t.Fatalf("errors=%v items=%d", resp.Errors, len(resp.Items))
	}
	for _, i := range []int{0, 2} {
		_, it := item(t, resp, i)
		if it.Status != 400 || it.Error == nil || it.Error.Type != "mapper_parsing_exception" || !strings.HasPrefix(it.Error.Reason, "failed to parse") {
			t.Errorf("item %d = %+v %+v", i, it, it.Error)
		}
	}
	if action, it := item(t, resp, 2); action != "create" {
		t.Errorf("item 2 action %q %+v", action, it)
	}
	if _, it := item(t, resp, 1); it.Status != 201 {
		t.Errorf("item 1 = %+v", it)
	}
	if got, ok := s.Doc("i", "4"); !ok || string(got) != `{"crlf":true}` {
		t.Errorf("CRLF document = %q %v", got, ok)
	}
	if _, ok := s.Doc("i", "1"); ok {
		t.Error("invalid document stored")
	}
	if st := s.Stats(); st.Rejected400 != 2 || st.Created != 2 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestMalformedBulkRejectedWhole(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	cases := []struct {
		name, body, typ, reason string
	}{
		{"not json", "{oops\n{}\n", "x_content_parse_exception", ""},
		{"unknown action", `{"upsert":{"_index":"i"}}` + "\n{}\n", "illegal_argument_exception",
			"Malformed action/metadata line [1], expected field [create], [delete], [index] or [update] but found [upsert]"},
		{"not an object", `["index"]` + "\n{}\n", "illegal_argument_exception", "Malformed action/metadata line [1], expected START_OBJECT but found [START_ARRAY]"},
		{"missing doc line", `{"index":{"_index":"i","_id":"1"}}` + "\n{}\n" + `{"index":{"_index":"i"}}` + "\n", "illegal_argument_exception", "Malformed action/metadata line [3]"},
		{"no trailing newline", `{"index":{"_index":"i"}}` + "\n{}", "illegal_argument_exception", `The bulk request must be terminated by a newline [\n]`},
		{"_type is gone in 8.x", `{"index":{"_index":"i","_type":"_doc"}}` + "\n{}\n", "illegal_argument_exception", "Action/metadata line [1] contains an unknown parameter [_type]"},
		{"delete followed by a document", `{"delete":{"_index":"i","_id":"1"}}` + "\n" + `{"field":1}` + "\n", "illegal_argument_exception", "but found [field]"},
		{"no index", `{"index":{}}` + "\n{}\n", "action_request_validation_exception", "Validation Failed: 1: index is missing;"},
		{"update without id", `{"update":{"_index":"i"}}` + "\n" + `{"doc":{}}` + "\n", "action_request_validation_exception", "id is missing"},
		{"bad update body", `{"update":{"_index":"i","_id":"1"}}` + "\n" + `{"dok":{}}` + "\n", "x_content_parse_exception", "[UpdateRequest] unknown field [dok]"},
		{"only blank lines", "\n\n", "action_request_validation_exception", "Validation Failed: 1: no requests added;"},
		{"empty body", "", "parse_exception", "request body is required"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rawBulk(t, c, "/_bulk", tc.body)
			ee := asESError(t, err)
			if ee.Status != 400 || ee.Details == nil || ee.Details.Type != tc.typ || !strings.Contains(ee.Details.Reason, tc.reason) {
				t.Fatalf("got %d %+v, want 400 %s %q", ee.Status, ee.Details, tc.typ, tc.reason)
			}
			if len(ee.Details.RootCause) != 1 || ee.Details.RootCause[0].Type != tc.typ {
				t.Errorf("root_cause = %+v", ee.Details.RootCause)
			}
		})
	}
	if s.Count() != 0 || len(s.Indices()) != 0 {
		t.Errorf("a rejected request stored something: %v", s.Docs())
	}
	if st := s.Stats(); st.Items != 0 || st.BulkRequests != int64(len(cases)) {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCreateDeleteAndConflicts(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().
		Add(elastic.NewBulkCreateRequest().Index("i").Id("1").Doc(json.RawMessage(`{"n":1}`))).
		Add(elastic.NewBulkCreateRequest().Index("i").Id("1").Doc(json.RawMessage(`{"n":2}`))).
		Add(elastic.NewBulkDeleteRequest().Index("i").Id("1")).
		Add(elastic.NewBulkDeleteRequest().Index("i").Id("1")).
		Add(elastic.NewBulkDeleteRequest().Index("nosuchindex").Id("1")).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		action, result string
		status         int
		errType        string
	}{
		{"create", "created", 201, ""},
		{"create", "", 409, "version_conflict_engine_exception"},
		{"delete", "deleted", 200, ""},
		{"delete", "not_found", 404, ""},
		{"delete", "", 404, "index_not_found_exception"},
	}
	for i, w := range want {
		action, it := item(t, resp, i)
		gotType := ""
		if it.Error != nil {
			gotType = it.Error.Type
		}
		if action != w.action || it.Result != w.result || it.Status != w.status || gotType != w.errType {
			t.Errorf("item %d = %s %+v (error %q), want %+v", i, action, it, gotType, w)
		}
	}
	if _, it := item(t, resp, 3); it.Version != 3 {
		t.Errorf("tombstone version = %d, want 3", it.Version)
	}
	if s.Count() != 0 {
		t.Errorf("Count = %d", s.Count())
	}
	if st := s.Stats(); st.Deleted != 1 || st.Failed != 2 {
		t.Errorf("Stats = %+v", st)
	}

	// A delete of a missing document is not an error for "errors".
	resp, err = c.Bulk().Add(elastic.NewBulkDeleteRequest().Index("i").Id("zzz")).Do(ctxT(t))
	if err != nil || resp.Errors {
		t.Errorf("delete not_found: errors=%v err=%v", resp != nil && resp.Errors, err)
	}
}

func TestExternalVersioning(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().
		Add(bulkReq("i", "1", `{"v":5}`).VersionType("external").Version(5)).
		Add(bulkReq("i", "1", `{"v":3}`).VersionType("external").Version(3)).
		Add(bulkReq("i", "1", `{"v":6}`).VersionType("external").Version(6)).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, it := item(t, resp, 0); it.Version != 5 || it.Status != 201 {
		t.Errorf("item 0 = %+v", it)
	}
	if _, it := item(t, resp, 1); it.Status != 409 || it.Error == nil || !strings.Contains(it.Error.Reason, "current version [5] is higher or equal to the one provided [3]") {
		t.Errorf("item 1 = %+v %+v", it, it.Error)
	}
	if got, _ := s.Doc("i", "1"); string(got) != `{"v":6}` {
		t.Errorf("Doc = %s", got)
	}
}

func TestUpdateAction(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().
		Add(bulkReq("i", "1", `{"a":1,"o":{"x":1}}`)).
		Add(elastic.NewBulkUpdateRequest().Index("i").Id("1").Doc(map[string]any{"b": 2, "o": map[string]any{"y": 2}})).
		Add(elastic.NewBulkUpdateRequest().Index("i").Id("1").Doc(map[string]any{"b": 2})).
		Add(elastic.NewBulkUpdateRequest().Index("i").Id("2").Doc(map[string]any{"c": 3}).DocAsUpsert(true)).
		Add(elastic.NewBulkUpdateRequest().Index("i").Id("3").Doc(map[string]any{"c": 3})).
		Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		result string
		status int
	}{{"created", 201}, {"updated", 200}, {"noop", 200}, {"created", 201}, {"", 404}}
	for i, w := range want {
		_, it := item(t, resp, i)
		if it.Result != w.result || it.Status != w.status {
			t.Errorf("item %d = %+v, want %+v", i, it, w)
		}
	}
	if _, it := item(t, resp, 4); it.Error == nil || it.Error.Type != "document_missing_exception" {
		t.Errorf("update of missing doc: %+v", it.Error)
	}
	var got map[string]any
	src, _ := s.Doc("i", "1")
	if err := json.Unmarshal(src, &got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "map[a:1 b:2 o:map[x:1 y:2]]" {
		t.Errorf("merged doc = %v", got)
	}
	if v, _ := s.DocVersion("i", "1"); v != 2 {
		t.Errorf("version after update+noop = %d, want 2", v)
	}
	if _, ok := s.Doc("i", "2"); !ok {
		t.Error("doc_as_upsert did not create the document")
	}
}

func TestUnavailable(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	s.SetUnavailable(true)
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	ee := asESError(t, err)
	if ee.Status != 503 || ee.Details == nil || ee.Details.Type != "unavailable_shards_exception" ||
		len(ee.Details.RootCause) != 1 || ee.Details.RootCause[0].Type != "unavailable_shards_exception" {
		t.Errorf("error = %d %+v", ee.Status, ee.Details)
	}
	if s.Count() != 0 || len(s.Indices()) != 0 {
		t.Error("stored while unavailable")
	}
	res, err := http.Head(s.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Errorf("HEAD / while unavailable = %d", res.StatusCode)
	}
	if st := s.Stats(); st.Rejected503Requests != 2 || st.BulkRequests != 1 || st.Items != 0 {
		t.Errorf("Stats = %+v", st)
	}

	// A 503 does not make olivere mark the node dead: the next request
	// goes through at once.
	s.SetUnavailable(false)
	resp, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if err != nil || resp.Errors || s.Count() != 1 {
		t.Fatalf("after recovery: %v %+v count=%d", err, resp, s.Count())
	}
}

func TestDropConnections(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	// Warm up a keep-alive connection first, so the drop hits a reused one.
	if _, err := c.Bulk().Add(bulkReq("i", "warm", `{}`)).Do(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s.SetDropConnections(true)
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if err == nil {
		t.Fatal("no error with dropped connections")
	}
	var ee *elastic.Error
	if errors.As(err, &ee) {
		t.Fatalf("dropped connection reported as an HTTP error: %v", err)
	}
	if !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Errorf("error = %v, want EOF or reset", err)
	}
	if _, ok := s.Doc("i", "1"); ok {
		t.Error("document stored although the connection was dropped before processing")
	}
	if st := s.Stats(); st.Dropped < 1 || st.Items != 1 {
		t.Errorf("Stats = %+v", st)
	}

	// olivere marked the only node dead after the connection error; with
	// sniffing and health checks off, the next request fails at once
	// with ErrNoClient (and resurrects the node) without reaching the
	// server; the one after that goes through.
	s.SetDropConnections(false)
	before := len(s.Requests())
	_, err = c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if !errors.Is(err, elastic.ErrNoClient) || !elastic.IsConnErr(err) {
		t.Errorf("first request after recovery: %v, want ErrNoClient", err)
	}
	if got := len(s.Requests()); got != before {
		t.Errorf("ErrNoClient request reached the server (%d -> %d requests)", before, got)
	}
	resp, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if err != nil || resp.Errors {
		t.Fatalf("second request after recovery: %v", err)
	}
	if _, ok := s.Doc("i", "1"); !ok {
		t.Error("not stored after recovery")
	}
}

func TestDropResponsesStoresButDoesNotAnswer(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	s.SetDropResponses(true)
	_, err := c.Bulk().Add(bulkReq("i", "1", `{"n":1}`)).Do(ctxT(t))
	if err == nil {
		t.Fatal("no error")
	}
	if _, ok := s.Doc("i", "1"); !ok {
		t.Error("document not stored")
	}
	s.SetDropResponses(false)

	// The same through a request fault, for the second bulk request only.
	var n sync.Mutex
	bulks := 0
	s.SetRequestFault(func(method, path string) int {
		if !strings.HasSuffix(path, "/_bulk") {
			return 0
		}
		n.Lock()
		defer n.Unlock()
		bulks++
		if bulks == 2 {
			return DropConnection
		}
		return 0
	})
	c2 := client(t, s.URL())
	if _, err := c2.Bulk().Add(bulkReq("i", "2", `{}`)).Do(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Bulk().Add(bulkReq("i", "3", `{}`)).Do(ctxT(t)); err == nil {
		t.Error("second bulk not dropped")
	}
	if _, ok := s.Doc("i", "3"); ok {
		t.Error("DropConnection processed the request")
	}
	if st := s.Stats(); st.Dropped != 2 {
		t.Errorf("Dropped = %d", st.Dropped)
	}
}

func TestRequestFaults(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	status := 429
	var mu sync.Mutex
	s.SetRequestFault(func(method, path string) int {
		mu.Lock()
		defer mu.Unlock()
		if path == "/_bulk" {
			return status
		}
		return 0
	})
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	ee := asESError(t, err)
	if ee.Status != 429 || ee.Details == nil || ee.Details.Type != "es_rejected_execution_exception" {
		t.Errorf("429: %d %+v", ee.Status, ee.Details)
	}
	mu.Lock()
	status = 413
	mu.Unlock()
	_, err = c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	ee = asESError(t, err)
	if ee.Status != 413 || ee.Details != nil {
		t.Errorf("413: %d %+v", ee.Status, ee.Details)
	}
	s.SetRequestFault(nil)

	s.SetMaxContentLength(100)
	_, err = c.Bulk().Add(bulkReq("i", "big", `{"m":"`+strings.Repeat("x", 200)+`"}`)).Do(ctxT(t))
	if ee := asESError(t, err); ee.Status != 413 {
		t.Errorf("oversized: %v", err)
	}
	if _, err := c.Bulk().Add(bulkReq("i", "small", `{}`)).Do(ctxT(t)); err != nil {
		t.Errorf("small request: %v", err)
	}
	if st := s.Stats(); st.Rejected429Requests != 1 || st.RejectedRequests != 3 || s.Count() != 1 {
		t.Errorf("Stats = %+v, count %d", st, s.Count())
	}
}

func TestLatency(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	s.SetLatency(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// The server notices the client leaving and abandons the request
	// without processing it (well before the 2s latency is over).
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	defer wcancel()
	if err := s.WaitFor(wctx, func() bool { return s.InFlight() == 0 }); err != nil {
		t.Fatalf("request still in flight: %v", err)
	}
	if s.Count() != 0 {
		t.Error("abandoned request was processed")
	}
	// A context error does not mark the node dead in olivere.
	s.SetLatency(0)
	if _, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t)); err != nil {
		t.Fatalf("after latency: %v", err)
	}

	// Neither does an http.Client.Timeout (olivere's IsContextErr takes
	// any "temporary" url.Error for a context error).
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ct := client(t, s.URL(), elastic.SetHttpClient(&http.Client{Transport: tr, Timeout: 100 * time.Millisecond}))
	s.SetLatency(2 * time.Second)
	_, err = ct.Bulk().Add(bulkReq("i", "2", `{}`)).Do(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "Client.Timeout") {
		t.Fatalf("err = %v, want a client timeout", err)
	}
	s.SetLatency(0)
	if _, err := ct.Bulk().Add(bulkReq("i", "2", `{}`)).Do(ctxT(t)); err != nil {
		t.Fatalf("after client timeout: %v", err)
	}
}

func TestCloseAbandonsSlowRequests(t *testing.T) {
	s := New(t)
	s.SetLatency(time.Hour)
	errc := make(chan error, 1)
	go func() {
		res, err := http.Get(s.URL() + "/")
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	ctx := ctxT(t)
	if err := s.WaitFor(ctx, func() bool { return s.InFlight() == 1 }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close blocked on a slow request")
	}
	if err := <-errc; err == nil {
		t.Error("request answered after Close")
	}
	s.Close() // idempotent
}

func TestIndexTemplates(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	ctx := ctxT(t)
	body := `{"index_patterns":["logs-*"],"priority":200,"_meta":{"managed_by":"test"},
		"template":{"settings":{"number_of_shards":1},"mappings":{"properties":{"@timestamp":{"type":"date"}}}}}`
	put, err := c.IndexPutIndexTemplate("logs").BodyString(body).Do(ctx)
	if err != nil || !put.Acknowledged {
		t.Fatalf("put: %v %+v", err, put)
	}
	got, err := c.IndexGetIndexTemplate("logs").Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tpl, ok := got.IndexTemplates.ByName("logs")
	if !ok || !slices.Equal(tpl.IndexTemplate.IndexPatterns, []string{"logs-*"}) || tpl.IndexTemplate.Priority != 200 ||
		tpl.IndexTemplate.Meta["managed_by"] != "test" || tpl.IndexTemplate.Template == nil {
		t.Errorf("get = %+v", got)
	}
	if raw := s.Templates()["logs"]; !bytes.Equal(raw, []byte(body)) {
		t.Errorf("Templates()[logs] = %s", raw)
	}

	// HEAD (olivere has no service for composable templates).
	for name, want := range map[string]int{"logs": 200, "nope": 404} {
		res, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "HEAD", Path: "/_index_template/" + name, IgnoreErrors: []int{404}})
		if err != nil || res.StatusCode != want {
			t.Errorf("HEAD %s: %v %v", name, res, err)
		}
	}
	_, err = c.IndexGetIndexTemplate("nope").Do(ctx)
	if !elastic.IsNotFound(err) {
		t.Errorf("get missing: %v", err)
	}

	bad := map[string]string{
		`not json`:        "x_content_parse_exception",
		`{"template":{}}`: "action_request_validation_exception",
		`{"index_patterns":["x-*"],"settings":{}}`:        "x_content_parse_exception",
		`{"index_patterns":["Upper-*"]}`:                  "invalid_index_template_exception",
		`{"index_patterns":["log*"],"priority":200}`:      "illegal_argument_exception", // overlaps logs-* at the same priority
		`{"index_patterns":["x-*"],"composed_of":["cc"]}`: "invalid_index_template_exception",
	}
	for b, typ := range bad {
		_, err := c.IndexPutIndexTemplate("other").BodyString(b).Do(ctx)
		ee := asESError(t, err)
		if ee.Status != 400 || ee.Details == nil || ee.Details.Type != typ {
			t.Errorf("put %s: %d %+v, want %s", b, ee.Status, ee.Details, typ)
		}
	}
	if _, ok := s.Templates()["other"]; ok {
		t.Error("an invalid template was stored")
	}
	// Same pattern at another priority is fine.
	if _, err := c.IndexPutIndexTemplate("other").BodyString(`{"index_patterns":["log*"],"priority":10}`).Do(ctx); err != nil {
		t.Errorf("put other: %v", err)
	}

	// Indexing into a matching index applies the highest-priority template.
	if _, err := c.Bulk().Add(bulkReq("logs-app-2024.01.01", "1", `{}`)).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if name, ok := s.IndexTemplate("logs-app-2024.01.01"); !ok || name != "logs" {
		t.Errorf("IndexTemplate = %q %v", name, ok)
	}
	m, err := c.IndexGet("logs-app-2024.01.01").Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if props := fmt.Sprint(m["logs-app-2024.01.01"].Mappings); !strings.Contains(props, "@timestamp") {
		t.Errorf("mappings = %s", props)
	}

	del, err := c.IndexDeleteIndexTemplate("logs").Do(ctx)
	if err != nil || !del.Acknowledged {
		t.Fatalf("delete: %v", err)
	}
	if _, ok := s.Templates()["logs"]; ok {
		t.Error("template not deleted")
	}
	if _, err := c.IndexDeleteIndexTemplate("logs").Do(ctx); !elastic.IsNotFound(err) {
		t.Errorf("delete missing: %v", err)
	}
}

func TestIndexAPIs(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	ctx := ctxT(t)
	res, err := c.CreateIndex("idx").BodyString(`{"settings":{"index":{"number_of_replicas":0}}}`).Do(ctx)
	if err != nil || !res.Acknowledged || res.Index != "idx" {
		t.Fatalf("create: %v %+v", err, res)
	}
	_, err = c.CreateIndex("idx").Do(ctx)
	if ee := asESError(t, err); ee.Status != 400 || ee.Details.Type != "resource_already_exists_exception" {
		t.Errorf("create twice: %d %+v", ee.Status, ee.Details)
	}
	_, err = c.CreateIndex("Idx").Do(ctx)
	if ee := asESError(t, err); ee.Status != 400 || ee.Details.Type != "invalid_index_name_exception" || !strings.Contains(ee.Details.Reason, "must be lowercase") {
		t.Errorf("create uppercase: %d %+v", ee.Status, ee.Details)
	}
	for name, want := range map[string]bool{"idx": true, "nope": false} {
		ok, err := c.IndexExists(name).Do(ctx)
		if err != nil || ok != want {
			t.Errorf("exists %s = %v %v", name, ok, err)
		}
	}
	got, err := c.IndexGet("idx").Do(ctx)
	if err != nil || got["idx"] == nil || fmt.Sprint(got["idx"].Settings["index"].(map[string]any)["number_of_replicas"]) != "0" {
		t.Errorf("get: %v %+v", err, got)
	}
	if !slices.Equal(s.Indices(), []string{"idx"}) {
		t.Errorf("Indices = %v", s.Indices())
	}
	if _, err := c.Bulk().Add(bulkReq("idx", "1", `{}`), bulkReq("Bad", "1", `{}`)).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteIndex("*").Do(ctx); asESError(t, err).Status != 400 {
		t.Errorf("wildcard delete: %v", err)
	}
	del, err := c.DeleteIndex("idx").Do(ctx)
	if err != nil || !del.Acknowledged {
		t.Fatalf("delete: %v", err)
	}
	if s.Count() != 0 || len(s.Indices()) != 0 {
		t.Errorf("after delete: %v %v", s.Indices(), s.Docs())
	}
	if _, err := c.DeleteIndex("idx").Do(ctx); !elastic.IsNotFound(err) {
		t.Errorf("delete missing: %v", err)
	}
}

func TestInvalidIndexNameFailsItem(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().Add(bulkReq("MyTopic-2024", "1", `{}`), bulkReq("ok", "1", `{}`)).Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, it := item(t, resp, 0); it.Status != 400 || it.Error == nil || it.Error.Type != "invalid_index_name_exception" {
		t.Errorf("item 0 = %+v", it)
	}
	if _, it := item(t, resp, 1); it.Status != 201 {
		t.Errorf("item 1 = %+v", it)
	}
}

func TestPrefix(t *testing.T) {
	s := NewWithPrefix(t, "/insert/elasticsearch")
	c := client(t, s.URL()+"/insert/elasticsearch")
	resp, err := c.Bulk().Add(bulkReq("logs", "1", `{"m":1}`)).Do(ctxT(t))
	if err != nil || resp.Errors {
		t.Fatalf("bulk under prefix: %v", err)
	}
	if _, ok := s.Doc("logs", "1"); !ok {
		t.Error("not stored")
	}
	res, err := http.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(`{"index":{"_index":"x"}}`+"\n{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Errorf("bulk outside prefix = %d", res.StatusCode)
	}
	if got := s.Requests(); !slices.Equal(got, []string{"POST /insert/elasticsearch/_bulk", "POST /_bulk"}) {
		t.Errorf("Requests = %v", got)
	}
	if s.Prefix() != "/insert/elasticsearch" || s.Count() != 1 {
		t.Errorf("Prefix %q count %d", s.Prefix(), s.Count())
	}
}

func TestFilterPath(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	s.SetItemFault(func(index, id string, source []byte) int {
		if id == "2" {
			return 429
		}
		return 0
	})
	resp, err := c.Bulk().FilterPath("errors", "items.*.error", "items.*._id").
		Add(bulkReq("i", "1", `{}`), bulkReq("i", "2", `{}`)).Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Errors || len(resp.Items) != 2 {
		t.Fatalf("resp = %+v", resp)
	}
	if _, it := item(t, resp, 1); it.Id != "2" || it.Error == nil || it.Status != 0 || it.Index != "" {
		t.Errorf("filtered item = %+v", it)
	}
	resp, err = c.Bulk().FilterPath("errors", "items.*.error").Add(bulkReq("i", "1", `{}`), bulkReq("i", "2", `{}`)).Do(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	// Items without an error disappear entirely, like in Elasticsearch.
	if len(resp.Items) != 1 {
		t.Errorf("items = %d, want only the failed one", len(resp.Items))
	}

	got := string(filterPath([]byte(`{"a":{"b":1,"c":{"d":2}},"e":[{"f":1,"g":2},{"g":3}],"h":3}`), "a.**.d,e.f"))
	if got != `{"a":{"c":{"d":2}},"e":[{"f":1}]}` {
		t.Errorf("filterPath include = %s", got)
	}
	got = string(filterPath([]byte(`{"a":{"b":1,"c":2},"h":3}`), "-a.b"))
	if got != `{"a":{"c":2},"h":3}` {
		t.Errorf("filterPath exclude = %s", got)
	}
}

func TestSingleDocumentAPIs(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	ctx := ctxT(t)
	res, err := c.Index().Index("i").Id("1").BodyString(`{"a":1}`).Do(ctx)
	if err != nil || res.Result != "created" || res.Version != 1 {
		t.Fatalf("index: %v %+v", err, res)
	}
	_, err = c.Index().Index("i").Id("1").OpType("create").BodyString(`{"a":2}`).Do(ctx)
	if !elastic.IsConflict(err) {
		t.Errorf("create existing: %v", err)
	}
	g, err := c.Get().Index("i").Id("1").Do(ctx)
	if err != nil || !g.Found || string(g.Source) != `{"a":1}` {
		t.Errorf("get: %v %+v", err, g)
	}
	if _, err := c.Get().Index("i").Id("2").Do(ctx); !elastic.IsNotFound(err) {
		t.Errorf("get missing: %v", err)
	}
	if _, err := c.Bulk().Add(bulkReq("i", "a/b c", `{"slash":1}`)).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if g, err := c.Get().Index("i").Id("a/b c").Do(ctx); err != nil || string(g.Source) != `{"slash":1}` {
		t.Errorf("get id with a slash: %v %+v", err, g)
	}
	if _, err := c.Delete().Index("i").Id("a/b c").Do(ctx); err != nil {
		t.Errorf("delete id with a slash: %v", err)
	}
	d, err := c.Delete().Index("i").Id("1").Do(ctx)
	if err != nil || d.Result != "deleted" {
		t.Errorf("delete: %v %+v", err, d)
	}
	if s.Count() != 0 {
		t.Errorf("Count = %d", s.Count())
	}
}

func TestGzipAndAuth(t *testing.T) {
	s := New(t)
	s.SetAuthCheck(func(h http.Header) bool { return h.Get("Authorization") == "ApiKey secret" })
	c := client(t, s.URL(), elastic.SetGzip(true))
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if !elastic.IsUnauthorized(err) {
		t.Fatalf("without credentials: %v", err)
	}
	c = client(t, s.URL(), elastic.SetGzip(true), elastic.SetHeaders(http.Header{"Authorization": {"ApiKey secret"}}))
	if _, err := c.Bulk().Add(bulkReq("i", "1", `{"z":true}`)).Do(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Doc("i", "1"); string(got) != `{"z":true}` {
		t.Errorf("gzip body stored as %q", got)
	}

	// A gzip body sent by hand, and one without a Content-Type.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = io.WriteString(zw, `{"index":{"_index":"i","_id":"2"}}`+"\n{}\n")
	_ = zw.Close()
	req, _ := http.NewRequest("POST", s.URL()+"/_bulk", &buf)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Authorization", "ApiKey secret")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || s.Count() != 2 {
		t.Errorf("gzip by hand: %d, count %d", res.StatusCode, s.Count())
	}
	req, _ = http.NewRequest("POST", s.URL()+"/_bulk", strings.NewReader(`{"index":{"_index":"i","_id":"3"}}`+"\n{}\n"))
	req.Header.Set("Authorization", "ApiKey secret")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 406 {
		t.Errorf("no Content-Type: %d, want 406", res.StatusCode)
	}
}

func TestUnknownPathAndRequestLog(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	_, err := c.PerformRequest(ctxT(t), elastic.PerformRequestOptions{Method: "GET", Path: "/_search"})
	if ee := asESError(t, err); ee.Status != 404 || ee.Details == nil {
		t.Errorf("unknown path: %d %+v", ee.Status, ee.Details)
	}
	_, err = c.PerformRequest(ctxT(t), elastic.PerformRequestOptions{Method: "GET", Path: "/_bulk"})
	if ee := asESError(t, err); ee.Status != 405 {
		t.Errorf("GET /_bulk: %d", ee.Status)
	}
	for _, r := range s.Requests() {
		if strings.Contains(r, "_index_template") || strings.HasPrefix(r, "PUT ") {
			t.Errorf("unexpected request %q", r)
		}
	}
	if got := s.Requests(); !slices.Equal(got, []string{"GET /_search", "GET /_bulk"}) {
		t.Errorf("Requests = %v", got)
	}
}

func TestConcurrentBulkWorkers(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	const workers, batches, perBatch = 8, 10, 25
	s.SetItemFault(func(index, id string, source []byte) int {
		if strings.HasSuffix(id, "-7") {
			return 429
		}
		return 0
	})
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				svc := c.Bulk()
				for i := range perBatch {
					svc.Add(bulkReq(fmt.Sprintf("w%d", w%2), fmt.Sprintf("%d-%d-%d", w, b, i), `{}`))
				}
				if b == batches/2 {
					s.SetLatency(time.Millisecond) // reconfigure while others are in flight
				}
				if _, err := svc.Do(context.Background()); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	// Meanwhile, WaitCount must observe the final count.
	want := workers * batches * (perBatch - 1)
	if err := s.WaitCount(ctxT(t), want); err != nil {
		t.Fatalf("WaitCount: %v (count %d)", err, s.Count())
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	st := s.Stats()
	if s.Count() != want || st.Items != int64(workers*batches*perBatch) || st.Rejected429 != int64(workers*batches) ||
		st.BulkRequests != int64(workers*batches) {
		t.Errorf("count %d, Stats %+v", s.Count(), st)
	}
}

func TestGlobsIntersect(t *testing.T) {
	cases := []struct {
		p, q string
		want bool
	}{
		{"logs-*", "log*", true},
		{"logs-*", "metrics-*", false},
		{"a*b", "*c", false},
		{"a*b", "*b", true},
		{"abc", "a*", true},
		{"abc", "abd", false},
		{"*", "x", true},
		{"x-*-y", "x-a*", true},
	}
	for _, tc := range cases {
		if got := globsIntersect(tc.p, tc.q); got != tc.want {
			t.Errorf("globsIntersect(%q, %q) = %v", tc.p, tc.q, got)
		}
		if got := globsIntersect(tc.q, tc.p); got != tc.want {
			t.Errorf("globsIntersect(%q, %q) = %v", tc.q, tc.p, got)
		}
	}
}

func TestDataStreamsFromBuiltinTemplates(t *testing.T) {
	s := New(t)
	s.InstallBuiltinTemplates()
	c := client(t, s.URL())
	ctx := ctxT(t)
	resp, err := c.Bulk().
		Add(bulkReq("logs-app-default", "1", `{"@timestamp":"2024-01-02T03:04:05Z","m":1}`)).
		Add(elastic.NewBulkCreateRequest().Index("logs-app-default").Id("2").Doc(json.RawMessage(`{"@timestamp":"2024-01-02T03:04:05Z"}`))).
		Add(elastic.NewBulkCreateRequest().Index("logs-app-default").Id("3").Doc(json.RawMessage(`{"m":"no timestamp"}`))).
		Add(bulkReq("logs-app-default", "4", `{"@timestamp":"2024-01-02T03:04:05Z"}`)).
		Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, it := item(t, resp, 0); it.Status != 400 || it.Error == nil || it.Error.Reason != "only write ops with an op_type of create are allowed in data streams" {
		t.Errorf("index into data stream: %+v", it)
	}
	backing, ok := s.DataStreamBackingIndex("logs-app-default")
	if !ok || !strings.HasPrefix(backing, ".ds-logs-app-default-") || !strings.HasSuffix(backing, "-000001") {
		t.Fatalf("backing index %q %v", backing, ok)
	}
	if _, it := item(t, resp, 1); it.Status != 201 || it.Index != backing {
		t.Errorf("create into data stream: %+v", it)
	}
	if _, it := item(t, resp, 2); it.Status != 400 || it.Error == nil || !strings.Contains(it.Error.Reason, "[@timestamp] is missing") {
		t.Errorf("no @timestamp: %+v", it)
	}
	if _, it := item(t, resp, 3); it.Status != 400 {
		t.Errorf("index into existing data stream: %+v", it)
	}
	if _, ok := s.Doc(backing, "2"); !ok || s.Count() != 1 {
		t.Errorf("docs = %v", s.Docs())
	}
	if !slices.Equal(s.DataStreams(), []string{"logs-app-default"}) {
		t.Errorf("DataStreams = %v", s.DataStreams())
	}
	res, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "GET", Path: "/_data_stream/logs-app-default"})
	if err != nil || !strings.Contains(string(res.Body), backing) {
		t.Errorf("GET data stream: %v %v", err, res)
	}
	if ok, err := c.IndexExists("logs-app-default").Do(ctx); err != nil || !ok {
		t.Errorf("data stream name does not resolve: %v %v", ok, err)
	}

	// The same priority as the built-in template, overlapping: rejected as
	// by Elasticsearch.
	_, err = c.IndexPutIndexTemplate("mine").BodyString(`{"index_patterns":["logs-app-*"],"priority":100}`).Do(ctx)
	if ee := asESError(t, err); ee.Status != 400 || !strings.Contains(ee.Details.Reason, "same priority [100]") {
		t.Errorf("overlapping template: %+v", ee.Details)
	}
	// A higher-priority template without data_stream makes such names plain
	// indices again, where "index" actions work.
	if _, err := c.IndexPutIndexTemplate("mine").BodyString(`{"index_patterns":["logs-app-*"],"priority":200}`).Do(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err = c.Bulk().Add(bulkReq("logs-app-2024.01.02", "1", `{}`)).Do(ctx)
	if err != nil || resp.Errors {
		t.Fatalf("plain index: %v %+v", err, resp)
	}
	if name, _ := s.IndexTemplate("logs-app-2024.01.02"); name != "mine" {
		t.Errorf("template applied = %q", name)
	}
	if len(s.DataStreams()) != 1 {
		t.Errorf("DataStreams = %v", s.DataStreams())
	}
}
