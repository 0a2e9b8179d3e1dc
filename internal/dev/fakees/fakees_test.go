package fakees

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/logpipe/logpipe/internal/dev/testutil"
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
		{"no index", `{"index":{}}` + "\n{}\n", "action_request_validation_exception", "Validation Failed: 1: index is missing;"},
		{"empty _id", `{"index":{"_index":"i","_id":""}}` + "\n{}\n", "action_request_validation_exception", "if _id is specified it must not be empty"},
		// What the fake does not implement fails the whole request.
		{"update is not supported", `{"update":{"_index":"i","_id":"1"}}` + "\n" + `{"doc":{}}` + "\n", "illegal_argument_exception", "fakees does not support the [update] action"},
		{"delete is not supported", `{"delete":{"_index":"i","_id":"1"}}` + "\n", "illegal_argument_exception", "fakees does not support the [delete] action"},
		{"versioning is not supported", `{"index":{"_index":"i","_id":"1","version":5,"version_type":"external"}}` + "\n{}\n", "illegal_argument_exception", "fakees does not support versioning"},
		{"if_seq_no is not supported", `{"index":{"_index":"i","_id":"1","if_seq_no":0,"if_primary_term":1}}` + "\n{}\n", "illegal_argument_exception", "fakees does not support versioning"},
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

func TestCreateAndConflicts(t *testing.T) {
	s := New(t)
	c := client(t, s.URL())
	resp, err := c.Bulk().
		Add(elastic.NewBulkCreateRequest().Index("i").Id("1").Doc(json.RawMessage(`{"n":1}`))).
		Add(elastic.NewBulkCreateRequest().Index("i").Id("1").Doc(json.RawMessage(`{"n":2}`))).
		Add(elastic.NewBulkCreateRequest().Index("i").Doc(json.RawMessage(`{"n":3}`))).
		Add(elastic.NewBulkIndexRequest().Index("i").Id("1").OpType("create").Doc(json.RawMessage(`{"n":4}`))).
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
		{"create", "created", 201, ""},                           // without _id: a generated one
		{"create", "", 409, "version_conflict_engine_exception"}, // index with op_type create
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
	if _, it := item(t, resp, 1); it.Error == nil || it.Error.Reason != "[1]: version conflict, document already exists (current version [1])" || it.Index != "i" {
		t.Errorf("conflict = %+v %+v", it, it.Error)
	}
	if _, it := item(t, resp, 2); len(it.Id) != 20 {
		t.Errorf("generated _id %q", it.Id)
	}
	if got, _ := s.Doc("i", "1"); string(got) != `{"n":1}` || !resp.Errors || s.Count() != 2 {
		t.Errorf("Doc = %s, errors %v, count %d", got, resp.Errors, s.Count())
	}
	if st := s.Stats(); st.Created != 2 || st.Failed != 2 || st.Updated != 0 {
		t.Errorf("Stats = %+v", st)
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
		`{"index_patterns":["x-*"],"settings":{}}`:     "x_content_parse_exception",
		`{"index_patterns":["Upper-*"]}`:               "invalid_index_template_exception",
		`{"index_patterns":["log*"],"priority":200}`:   "illegal_argument_exception", // overlaps logs-* at the same priority
		`{"index_patterns":["x-*"],"priority":"high"}`: "x_content_parse_exception",
		// Not supported by the fake.
		`{"index_patterns":["x-*"],"composed_of":["cc"]}`: "illegal_argument_exception",
		`{"index_patterns":["x-*"],"data_stream":{}}`:     "illegal_argument_exception",
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

	// Indexing into a matching index applies the highest-priority template:
	// its mappings (which the dynamic-mapping checks then use) and settings.
	if _, err := c.Bulk().Add(bulkReq("logs-app-2024.01.01", "1", `{}`)).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if name, ok := s.IndexTemplate("logs-app-2024.01.01"); !ok || name != "logs" {
		t.Errorf("IndexTemplate = %q %v", name, ok)
	}
	if name, ok := s.IndexTemplate("nope"); ok || name != "" {
		t.Errorf("IndexTemplate(nope) = %q %v", name, ok)
	}
	s.mu.Lock()
	idx := s.indices["logs-app-2024.01.01"]
	mappings, settings := fmt.Sprint(idx.mappings), fmt.Sprint(idx.settings)
	s.mu.Unlock()
	if mappings != "map[properties:map[@timestamp:map[type:date]]]" || settings != "map[number_of_shards:1]" {
		t.Errorf("mappings = %s, settings = %s", mappings, settings)
	}
	resp, err := c.Bulk().Add(bulkReq("logs-app-2024.01.01", "2", `{"@timestamp":{"a":1}}`)).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, it := item(t, resp, 0); it.Status != 400 || it.Error == nil || it.Error.Type != "mapper_parsing_exception" {
		t.Errorf("object into the template's date field: %+v", it)
	}
	// A template put later does not change an existing index.
	if _, err := c.IndexPutIndexTemplate("later").BodyString(`{"index_patterns":["logs-app-*"],"priority":300}`).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Bulk().Add(bulkReq("logs-app-2024.01.01", "3", `{}`), bulkReq("logs-app-2024.01.02", "1", `{}`)).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if a, _ := s.IndexTemplate("logs-app-2024.01.01"); a != "logs" {
		t.Errorf("existing index now has template %q", a)
	}
	if b, _ := s.IndexTemplate("logs-app-2024.01.02"); b != "later" {
		t.Errorf("new index has template %q, want the higher-priority one", b)
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

func TestAuthAndContentHeaders(t *testing.T) {
	s := New(t)
	s.SetAuthCheck(func(h http.Header) bool { return h.Get("Authorization") == "ApiKey secret" })
	c := client(t, s.URL())
	_, err := c.Bulk().Add(bulkReq("i", "1", `{}`)).Do(ctxT(t))
	if ee := asESError(t, err); ee.Status != 401 || ee.Details == nil || ee.Details.Type != "security_exception" {
		t.Fatalf("without credentials: %v", err)
	}
	if s.Count() != 0 {
		t.Error("stored without credentials")
	}
	c = client(t, s.URL(), elastic.SetHeaders(http.Header{"Authorization": {"ApiKey secret"}}))
	if _, err := c.Bulk().Add(bulkReq("i", "1", `{"z":true}`)).Do(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Doc("i", "1"); string(got) != `{"z":true}` {
		t.Errorf("stored as %q", got)
	}
	s.SetAuthCheck(nil)

	// A body without a Content-Type, and a compressed one, which the fake
	// does not decode (logtransfer does not compress).
	post := func(header http.Header, body string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL()+"/_bulk", strings.NewReader(body))
		req.Header = header
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if st := post(http.Header{}, `{"index":{"_index":"i","_id":"3"}}`+"\n{}\n"); st != 406 {
		t.Errorf("no Content-Type: %d, want 406", st)
	}
	if st := post(http.Header{"Content-Type": {"application/x-ndjson"}, "Content-Encoding": {"gzip"}}, "\x1f\x8b"); st != 400 {
		t.Errorf("gzip body: %d, want 400", st)
	}
	if s.Count() != 1 {
		t.Errorf("Count = %d", s.Count())
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

func TestHealthRefreshAndCount(t *testing.T) {
	s := New(t)
	es := testutil.ESClient{URL: s.URL()}
	es.Do(t, "POST", "/_bulk?refresh=true", nd(`{"index":{"_index":"a","_id":"1"}}`, `{}`, `{"index":{"_index":"a","_id":"2"}}`, `{}`, `{"create":{"_index":"b"}}`, `{}`))
	var health struct {
		Status        string `json:"status"`
		ActivePrimary int    `json:"active_primary_shards"`
	}
	es.JSON(t, 200, "GET", "/_cluster/health", "", &health)
	if health.Status != "green" || health.ActivePrimary != 2 {
		t.Errorf("health = %+v", health)
	}
	for path, want := range map[string]int{"/_refresh": 200, "/a/_refresh": 200, "/a,b/_refresh": 200, "/x*/_refresh": 200, "/missing/_refresh": 404} {
		if st, b := es.Do(t, "POST", path, ""); st != want {
			t.Errorf("POST %s = %d %s, want %d", path, st, b, want)
		}
	}
	for path, want := range map[string]string{
		"/_count":         "200 count=3",
		"/a/_count":       "200 count=2",
		"/a,b/_count":     "200 count=3",
		"/b*/_count":      "200 count=1",
		"/missing/_count": "404 error=index_not_found_exception",
		"/a,missing/_count?ignore_unavailable=true": "200 count=2",
	} {
		if st, b := es.Do(t, "GET", path, ""); summary(st, b) != want {
			t.Errorf("GET %s = %s, want %s", path, summary(st, b), want)
		}
	}
	if st, b := es.Do(t, "POST", "/_count", `{"query":{"match_all":{}}}`); summary(st, b) != "200 count=3" {
		t.Errorf("match_all count = %s", summary(st, b))
	}
	if st, _ := es.Do(t, "POST", "/_count", `{"query":{"term":{"m":"x"}}}`); st != 400 {
		t.Errorf("term count = %d, want 400 (the fake counts only match_all)", st)
	}
}

// TestUnsupportedAPIsAreNotServed checks that what the fake does not
// implement is answered 404, so a test relying on it fails loudly.
func TestUnsupportedAPIsAreNotServed(t *testing.T) {
	s := New(t)
	es := testutil.ESClient{URL: s.URL()}
	es.Do(t, "POST", "/_bulk", nd(`{"index":{"_index":"i","_id":"1"}}`, `{}`))
	for _, r := range []struct{ method, path, body string }{
		{"PUT", "/new", `{}`},
		{"GET", "/i", ""},
		{"HEAD", "/i", ""},
		{"DELETE", "/i", ""},
		{"GET", "/i/_doc/1", ""},
		{"PUT", "/i/_doc/2", `{}`},
		{"POST", "/i/_doc", `{}`},
		{"PUT", "/i/_create/3", `{}`},
		{"DELETE", "/i/_doc/1", ""},
		{"PUT", "/_template/t", `{"index_patterns":["x-*"]}`},
		{"PUT", "/_component_template/c", `{"template":{}}`},
		{"GET", "/_data_stream", ""},
		{"PUT", "/_data_stream/logs-a-b", ""},
		{"POST", "/i/_search", `{}`},
	} {
		if st, b := es.Do(t, r.method, r.path, r.body); st != 404 {
			t.Errorf("%s %s = %d %s, want 404", r.method, r.path, st, b)
		}
	}
	if got, ok := s.Doc("i", "1"); !ok || string(got) != `{}` || s.Count() != 1 || !slices.Equal(s.Indices(), []string{"i"}) {
		t.Errorf("store changed: %v", s.Docs())
	}
}

// The in-process server answers as the TCP one does; a dropped answer is
// an error of the round trip, with the request applied.
func TestInProcess(t *testing.T) {
	s := NewInProcess()
	defer s.Close()
	hc := &http.Client{Transport: s.Transport()}
	bulk := func(id string) (*http.Response, error) {
		body := `{"create":{"_index":"logs","_id":"` + id + `"}}` + "\n" + `{"message":"m"}` + "\n"
		return hc.Post(s.URL()+"/_bulk", "application/x-ndjson", strings.NewReader(body))
	}
	resp, err := bulk("a")
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Errors bool
		Items  []map[string]struct{ Status int }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 || out.Errors || out.Items[0]["create"].Status != 201 {
		t.Fatalf("bulk: %d %+v %v", resp.StatusCode, out, err)
	}
	resp.Body.Close()
	s.SetDropResponses(true)
	if _, err := bulk("b"); err == nil {
		t.Fatal("a dropped answer came back")
	}
	if _, ok := s.Doc("logs", "b"); !ok {
		t.Fatal("the request whose answer was dropped was not applied")
	}
	s.SetDropResponses(false)
	s.SetDropConnections(true)
	if _, err := bulk("c"); err == nil {
		t.Fatal("a dropped request came back")
	}
	if _, ok := s.Doc("logs", "c"); ok {
		t.Fatal("a dropped request was applied")
	}
}
