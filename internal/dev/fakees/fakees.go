// Package fakees is an in-memory fake of the parts of the Elasticsearch
// REST API logtransfer talks to, with the response shapes of Elasticsearch
// 8.x (which 7.17 shares):
//
//   - the bulk API (POST /_bulk, /<index>/_bulk) with the "index" and
//     "create" actions, with or without _id: per-item results, 409 on
//     creating an existing _id, 400 for documents that are not JSON
//     objects, for invalid index names and for the dynamic-mapping
//     conflicts Elasticsearch reports (mapping.go); a malformed request is
//     rejected whole;
//   - composable index templates (PUT/GET/HEAD/DELETE
//     /_index_template[/<name>]), refusing overlapping patterns at one
//     priority; an index auto-created by a bulk item gets the mappings and
//     settings of the matching template;
//   - GET and HEAD /, GET /_cluster/health, [/<index>]/_refresh and
//     [/<index>]/_count (match_all only), for tests to inspect the store.
//
// It listens on a real TCP port (httptest), so any HTTP client, including
// olivere/elastic, can talk to it, and it can inject the failures a real
// cluster produces: per-item rejections (429, 400, 5xx), whole-request
// errors (503, 429, 413, 401, ...), latency and dropped connections. It is
// meant to be imported by tests only. conformance_test.go keeps it honest:
// it runs the same protocol cases against the fake and a real
// Elasticsearch 7.17 node and fails where their answers differ.
//
// Anything else fails loudly, so a test relying on what the fake lacks
// notices: other paths answer 404; update and delete actions, versioning,
// component templates (composed_of), data streams (data_stream) and
// compressed bodies answer 400; bodies other than JSON/NDJSON 406; any
// ingest pipeline fails the item. There are no single-document or index
// APIs, no legacy templates, no search and no filter_path.
package fakees

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Elasticsearch version the fake claims to be.
const Version = "8.13.0"

// Special return values of a request fault hook (see SetRequestFault).
const (
	// DropConnection closes the connection without answering and without
	// processing the request (the client sees EOF or a reset).
	DropConnection = -1
	// DropResponse processes the request (documents are stored) and then
	// closes the connection instead of answering: the "indexed, but the
	// client never heard" case that produces duplicates on retry.
	DropResponse = -2
)

// maxRequestLog is how many request lines Requests keeps.
const maxRequestLog = 100_000

// Stats are counters of what the server has seen. Item counters count
// bulk items.
type Stats struct {
	Requests     int64 // HTTP requests received, all paths
	BulkRequests int64 // bulk requests received, including ones then rejected whole, dropped or malformed
	Items        int64 // bulk items processed (in requests that were not rejected whole)
	Created      int64 // items that created a document (result "created")
	Updated      int64 // items that overwrote an existing _id (result "updated")
	Failed       int64 // items that failed (had an "error"), for any reason

	Rejected429 int64 // items failed with 429
	Rejected400 int64 // items failed with 400 (injected, unparsable document, invalid index name, ...)
	Conflicts   int64 // items failed with 409: a create for an _id already stored

	Rejected503Requests int64 // requests answered 503 as a whole (SetUnavailable or a request fault)
	Rejected429Requests int64 // requests answered 429 as a whole (request fault)
	RejectedRequests    int64 // requests answered with any whole-request fault status (incl. the two above)
	Dropped             int64 // connections dropped (before or after processing)
}

// Fault describes how to fail one bulk item. Type and Reason default to
// what Elasticsearch reports for Status (429 es_rejected_execution_exception,
// 400 mapper_parsing_exception, 409 version_conflict_engine_exception,
// 503 unavailable_shards_exception, ...).
type Fault struct {
	Status int
	Type   string
	Reason string
}

// Server is a fake Elasticsearch node. All methods are safe for concurrent
// use, including while requests are in flight.
type Server struct {
	srv    *httptest.Server
	prefix string
	done   chan struct{}
	once   sync.Once

	mu        sync.Mutex
	indices   map[string]*index
	templates map[string]*template // composable index templates by name
	stats     Stats
	reqs      []string
	changed   chan struct{}
	inflight  int

	// configuration (guarded by mu; hooks are called without mu held)
	itemFault   func(index, id string, source []byte) *Fault
	reqFault    func(method, path string) int
	unavailable bool
	latency     time.Duration
	drop        bool
	dropAfter   bool
	maxContent  int64
	authCheck   func(http.Header) bool
	bulkHook    func(status int, body []byte) (int, []byte)
}

type index struct {
	name       string
	uuid       string
	template   string            // composable template applied at creation
	settings   map[string]any    // the template's settings, flattened (see mergeSettings)
	mappings   map[string]any    // the template's mappings
	kinds      map[string]string // field path -> kind, as dynamic mapping fixed it (mapping.go)
	stringType string            // what a new string field becomes
	docs       map[string]*doc
	seqNo      int64 // next sequence number
}

type doc struct {
	source  json.RawMessage
	version int64
}

// New starts a fake Elasticsearch on a real TCP port and registers
// t.Cleanup(s.Close).
func New(t testing.TB) *Server {
	t.Helper()
	return NewWithPrefix(t, "")
}

// NewWithPrefix is New with the whole API served under a URL path prefix,
// e.g. "/insert/elasticsearch" as VictoriaLogs does: configure clients with
// URL()+prefix (see Prefix). Requests outside the prefix get 404.
func NewWithPrefix(t testing.TB, prefix string) *Server {
	t.Helper()
	prefix = strings.TrimRight(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	s := &Server{
		prefix:    prefix,
		done:      make(chan struct{}),
		indices:   map[string]*index{},
		templates: map[string]*template{},
		changed:   make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(s.Close)
	return s
}

// NewInProcess is a fake Elasticsearch served without a socket: Transport
// hands each request to it in this process. For simulations on a fake
// clock (testing/synctest), where waiting on a socket would hold time
// still. Dropped connections (SetDropConnections, SetDropResponses) are
// errors of the round trip; a request whose context ends while it waits
// out SetLatency is not applied.
func NewInProcess() *Server {
	return &Server{
		done:      make(chan struct{}),
		indices:   map[string]*index{},
		templates: map[string]*template{},
		changed:   make(chan struct{}),
	}
}

// inProcessURL is the URL of a server made by NewInProcess: any host does,
// as no connection is made.
const inProcessURL = "http://fakees.in-process"

// Transport is the round tripper of a server made by NewInProcess.
func (s *Server) Transport() http.RoundTripper { return inProcess{s} }

type inProcess struct{ s *Server }

func (t inProcess) RoundTrip(r *http.Request) (resp *http.Response, err error) {
	if r.Body == nil {
		r.Body = http.NoBody
	}
	defer r.Body.Close()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			resp, err = nil, errors.New("fakees: connection closed without an answer")
		}
	}()
	rec := httptest.NewRecorder()
	t.s.serveHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	resp = rec.Result()
	resp.Request = r
	return resp, nil
}

// URL is the server's root URL, "http://127.0.0.1:<port>" (without any
// prefix).
func (s *Server) URL() string {
	if s.srv == nil {
		return inProcessURL
	}
	return s.srv.URL
}

// Prefix is the path prefix the API is served under ("" for New).
func (s *Server) Prefix() string { return s.prefix }

// InFlight is the number of requests being handled right now (including
// ones waiting out SetLatency).
func (s *Server) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// Close stops the server. Requests waiting on SetLatency are abandoned.
// It is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.done)
		if s.srv != nil {
			s.srv.CloseClientConnections()
			s.srv.Close()
		}
	})
}

// ---- inspection ----

// Doc returns the stored source of index/id.
func (s *Server) Doc(index, id string) (json.RawMessage, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.indices[index]
	if idx == nil {
		return nil, false
	}
	d := idx.docs[id]
	if d == nil {
		return nil, false
	}
	return slices.Clone(d.source), true
}

// DocVersion returns the _version of index/id.
func (s *Server) DocVersion(index, id string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.indices[index]
	if idx == nil || idx.docs[id] == nil {
		return 0, false
	}
	return idx.docs[id].version, true
}

// Docs returns a deep copy of every stored document: index -> _id ->
// source. Every existing index is present, with an empty map if it holds
// no documents.
func (s *Server) Docs() map[string]map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]json.RawMessage, len(s.indices))
	for name, idx := range s.indices {
		m := make(map[string]json.RawMessage, len(idx.docs))
		for id, d := range idx.docs {
			m[id] = slices.Clone(d.source)
		}
		out[name] = m
	}
	return out
}

// Count is the number of documents currently stored, in all indices.
func (s *Server) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, idx := range s.indices {
		n += len(idx.docs)
	}
	return n
}

// IndexCount is the number of documents currently stored in one index.
func (s *Server) IndexCount(index string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if idx := s.indices[index]; idx != nil {
		return len(idx.docs)
	}
	return 0
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Templates returns the composable index templates (PUT
// /_index_template/<name>) by name, as their bodies were sent.
func (s *Server) Templates() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]json.RawMessage, len(s.templates))
	for name, t := range s.templates {
		out[name] = slices.Clone(t.raw)
	}
	return out
}

// Indices returns the names of the existing indices (created by indexing
// into them), sorted.
func (s *Server) Indices() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.indices))
	for name := range s.indices {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// IndexTemplate returns the name of the template that was applied when
// index was created ("" if none matched) and whether the index exists.
func (s *Server) IndexTemplate(index string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.indices[index]
	if idx == nil {
		return "", false
	}
	return idx.template, true
}

// Requests returns "METHOD /path" (path as received, including any
// prefix, without the query) of every request received, oldest first; only
// the last 100000 are kept.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) > maxRequestLog {
		return slices.Clone(s.reqs[len(s.reqs)-maxRequestLog:])
	}
	return slices.Clone(s.reqs)
}

// WaitFor blocks until cond returns true or ctx ends (then it returns
// ctx.Err()), without polling: cond is evaluated at once and again
// whenever a request arrives or finishes and whenever documents change. It
// is called without any lock held, so it may call the Server's methods.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			if cond() {
				return nil
			}
			return fmt.Errorf("fakees: server closed")
		}
	}
}

// WaitCount waits until at least n documents are stored (see WaitFor).
func (s *Server) WaitCount(ctx context.Context, n int) error {
	return s.WaitFor(ctx, func() bool { return s.Count() >= n })
}

// notifyLocked wakes WaitFor callers; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// ---- fault injection ----

// SetItemFault installs a hook called for every bulk item before it is
// applied: index, _id (the generated one if the request had none) and the
// document line. It returns 0 to handle the item normally, or an
// HTTP status >= 400 to fail it with, with the error type and reason
// Elasticsearch uses for that status. A faulted item is not stored. nil
// removes the hook. The hook is called without locks held and may run
// concurrently for different requests.
func (s *Server) SetItemFault(f func(index, id string, source []byte) int) {
	if f == nil {
		s.SetItemFaultDetail(nil)
		return
	}
	s.SetItemFaultDetail(func(index, id string, source []byte) *Fault {
		if st := f(index, id, source); st != 0 {
			return &Fault{Status: st}
		}
		return nil
	})
}

// SetItemFaultDetail is SetItemFault with control over the error type and
// reason: the hook returns nil for normal handling.
func (s *Server) SetItemFaultDetail(f func(index, id string, source []byte) *Fault) {
	s.mu.Lock()
	s.itemFault = f
	s.mu.Unlock()
}

// SetRequestFault installs a hook called for every request (after
// SetLatency's delay) with the method and the path below the prefix. It
// returns 0 to proceed, an HTTP status to answer the whole request with
// (429, 500, 503, ... with Elasticsearch's error body; 413 with an empty
// body, as Elasticsearch answers an oversized request), or DropConnection
// or DropResponse. nil removes it.
func (s *Server) SetRequestFault(f func(method, path string) int) {
	s.mu.Lock()
	s.reqFault = f
	s.mu.Unlock()
}

// SetUnavailable makes every request (the root endpoint, HEAD / and bulk
// included) answer 503 with Elasticsearch's error body.
func (s *Server) SetUnavailable(on bool) {
	s.mu.Lock()
	s.unavailable = on
	s.mu.Unlock()
}

// SetLatency delays the answer to every request by d, counted from when
// its body has been read. A request whose client gives up during the delay
// is not processed.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	s.latency = d
	s.mu.Unlock()
}

// SetDropConnections makes the server close every connection without
// answering, before processing the request (nothing is stored).
func (s *Server) SetDropConnections(on bool) {
	s.mu.Lock()
	s.drop = on
	s.mu.Unlock()
}

// SetDropResponses makes the server process every request (documents are
// stored) and then close the connection instead of answering.
func (s *Server) SetDropResponses(on bool) {
	s.mu.Lock()
	s.dropAfter = on
	s.mu.Unlock()
}

// SetMaxContentLength makes requests with a body longer than n bytes fail
// with 413 and an empty body, like Elasticsearch's
// http.max_content_length (100mb by default). 0 means no limit.
func (s *Server) SetMaxContentLength(n int64) {
	s.mu.Lock()
	s.maxContent = n
	s.mu.Unlock()
}

// SetAuthCheck makes every request whose headers check rejects answer 401
// with Elasticsearch's security_exception body. nil accepts everything.
func (s *Server) SetAuthCheck(check func(h http.Header) bool) {
	s.mu.Lock()
	s.authCheck = check
	s.mu.Unlock()
}

// SetBulkResponseHook lets a test rewrite every bulk response (status and
// body) before it is sent, e.g. to imitate an ES-compatible store that
// answers differently. nil removes it.
func (s *Server) SetBulkResponseHook(f func(status int, body []byte) (int, []byte)) {
	s.mu.Lock()
	s.bulkHook = f
	s.mu.Unlock()
}

// ---- HTTP plumbing ----

type reqCtx struct {
	w      http.ResponseWriter
	r      *http.Request
	path   string // below the prefix, starting with "/"
	segs   []string
	body   []byte
	isBulk bool
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")

	s.mu.Lock()
	s.stats.Requests++
	s.inflight++
	s.reqs = append(s.reqs, r.Method+" "+r.URL.Path)
	if len(s.reqs) >= 2*maxRequestLog {
		s.reqs = append([]string(nil), s.reqs[len(s.reqs)-maxRequestLog:]...)
	}
	s.notifyLocked()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.notifyLocked()
		s.mu.Unlock()
	}()

	c := &reqCtx{w: w, r: r}
	p := r.URL.EscapedPath() // split before unescaping: names may contain "%2F"
	if s.prefix != "" {
		if p != s.prefix && !strings.HasPrefix(p, s.prefix+"/") {
			_, _ = io.Copy(io.Discard, r.Body)
			s.noHandler(c)
			return
		}
		p = strings.TrimPrefix(p, s.prefix)
	}
	if p == "" {
		p = "/"
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" {
			continue
		}
		if u, err := url.PathUnescape(seg); err == nil {
			seg = u
		}
		c.segs = append(c.segs, seg)
	}
	if u, err := url.PathUnescape(p); err == nil {
		p = u
	}
	c.path = p
	c.isBulk = len(c.segs) > 0 && c.segs[len(c.segs)-1] == "_bulk" && len(c.segs) <= 2
	if c.isBulk {
		s.mu.Lock()
		s.stats.BulkRequests++
		s.mu.Unlock()
	}

	body, tooLarge, err := s.readBody(r)
	if err != nil {
		return // client went away
	}
	if tooLarge {
		s.reject(c, http.StatusRequestEntityTooLarge)
		return
	}
	if ce := strings.TrimSpace(r.Header.Get("Content-Encoding")); ce != "" && !strings.EqualFold(ce, "identity") {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: "fakees: request bodies with Content-Encoding [" + ce + "] are not supported"})
		return
	}
	c.body = body

	s.mu.Lock()
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			panic(http.ErrAbortHandler) // close the connection without answering
		}
	}

	s.mu.Lock()
	drop, dropAfter, unavailable := s.drop, s.dropAfter, s.unavailable
	reqFault, authCheck := s.reqFault, s.authCheck
	s.mu.Unlock()

	if drop {
		s.dropConn(c)
		return
	}
	if unavailable {
		s.reject(c, http.StatusServiceUnavailable)
		return
	}
	if reqFault != nil {
		switch st := reqFault(r.Method, c.path); {
		case st == DropConnection:
			s.dropConn(c)
			return
		case st == DropResponse:
			dropAfter = true
		case st != 0:
			s.reject(c, st)
			return
		}
	}
	if authCheck != nil && !authCheck(r.Header) {
		s.writeError(c, http.StatusUnauthorized, errDetail{
			Type:   "security_exception",
			Reason: "unable to authenticate user for REST request [" + c.path + "]",
			Header: map[string][]string{"WWW-Authenticate": {`Basic realm="security" charset="UTF-8"`, "Bearer realm=\"security\"", "ApiKey"}},
		})
		return
	}
	if len(c.body) > 0 && !contentTypeOK(r.Header.Get("Content-Type")) {
		s.writeRaw(c, http.StatusNotAcceptable, []byte(`{"error":"Content-Type header [`+jsonEscape(r.Header.Get("Content-Type"))+`] is not supported","status":406}`))
		return
	}
	if dropAfter {
		// Process against a recorder, then drop the connection.
		rec := httptest.NewRecorder()
		rc := *c
		rc.w = rec
		s.route(&rc)
		s.dropConn(c)
		return
	}
	s.route(c)
}

// readBody reads the request body; tooLarge reports a body over
// SetMaxContentLength's limit.
func (s *Server) readBody(r *http.Request) (body []byte, tooLarge bool, err error) {
	s.mu.Lock()
	limit := s.maxContent
	s.mu.Unlock()
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, false, fmt.Errorf("fakees: reading the request body: %w", err)
	}
	if limit > 0 && int64(len(raw)) > limit {
		return nil, true, nil
	}
	return raw, false, nil
}

func contentTypeOK(ct string) bool {
	if ct == "" {
		return false
	}
	mt := strings.ToLower(strings.TrimSpace(strings.SplitN(ct, ";", 2)[0]))
	switch mt {
	case "application/json", "application/x-ndjson",
		"application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson":
		return true
	}
	return false
}

func (s *Server) dropConn(c *reqCtx) {
	s.mu.Lock()
	s.stats.Dropped++
	s.mu.Unlock()
	hj, ok := c.w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// reject answers the whole request with status and Elasticsearch's body
// for it.
func (s *Server) reject(c *reqCtx, status int) {
	s.mu.Lock()
	s.stats.RejectedRequests++
	switch status {
	case http.StatusServiceUnavailable:
		s.stats.Rejected503Requests++
	case http.StatusTooManyRequests:
		s.stats.Rejected429Requests++
	}
	s.mu.Unlock()
	switch status {
	case http.StatusRequestEntityTooLarge:
		c.w.Header().Set("Content-Length", "0")
		c.w.WriteHeader(status)
		return
	case http.StatusServiceUnavailable:
		s.writeError(c, status, errDetail{
			Type:   "unavailable_shards_exception",
			Reason: "[fakees][0] primary shard is not active Timeout: [1m], request: [" + c.r.Method + " " + c.path + "]",
		})
		return
	case http.StatusTooManyRequests:
		s.writeError(c, status, errDetail{
			Type: "es_rejected_execution_exception",
			Reason: fmt.Sprintf("rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "+
				"coordinating_operation_bytes=%d, max_coordinating_and_primary_bytes=0]", len(c.body)),
		})
		return
	}
	typ, reason := defaultFault(status, "fakees", "")
	s.writeError(c, status, errDetail{Type: typ, Reason: reason})
}

// errDetail is Elasticsearch's error object, used at the top level
// (with RootCause) and for bulk items.
type errDetail struct {
	RootCause    []errDetail         `json:"root_cause,omitempty"`
	Type         string              `json:"type"`
	Reason       string              `json:"reason"`
	ResourceType string              `json:"resource.type,omitempty"`
	ResourceID   string              `json:"resource.id,omitempty"`
	IndexUUID    string              `json:"index_uuid,omitempty"`
	Shard        string              `json:"shard,omitempty"`
	Index        string              `json:"index,omitempty"`
	CausedBy     *errDetail          `json:"caused_by,omitempty"`
	Header       map[string][]string `json:"header,omitempty"`
}

type errorBody struct {
	Error  errDetail `json:"error"`
	Status int       `json:"status"`
}

func (s *Server) writeError(c *reqCtx, status int, d errDetail) {
	root := d
	root.CausedBy = nil
	root.RootCause = nil
	d.RootCause = []errDetail{root}
	s.writeJSON(c, status, errorBody{Error: d, Status: status})
}

func (s *Server) writeJSON(c *reqCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own types: cannot happen
	}
	s.writeRaw(c, status, b)
}

// writeRaw sends b as the JSON body.
func (s *Server) writeRaw(c *reqCtx, status int, b []byte) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	c.w.WriteHeader(status)
	if c.r.Method != http.MethodHead {
		_, _ = c.w.Write(b)
	}
}

// writeStatus answers with a status and no body (HEAD-style answers).
func (s *Server) writeStatus(c *reqCtx, status int) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(status)
}

func (s *Server) noHandler(c *reqCtx) {
	if c.r.Method == http.MethodHead {
		s.writeStatus(c, http.StatusNotFound)
		return
	}
	path := c.r.URL.Path
	s.writeError(c, http.StatusNotFound, errDetail{
		Type:   "resource_not_found_exception",
		Reason: "fakees: no handler found for uri [" + path + "] and method [" + c.r.Method + "]",
	})
}

func (s *Server) methodNotAllowed(c *reqCtx, allowed ...string) {
	c.w.Header().Set("Allow", strings.Join(allowed, ","))
	s.writeRaw(c, http.StatusMethodNotAllowed, []byte(`{"error":"Incorrect HTTP method for uri [`+jsonEscape(c.r.URL.RequestURI())+
		`] and method [`+c.r.Method+`], allowed: [`+strings.Join(allowed, ", ")+`]","status":405}`))
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// route dispatches on the path below the prefix.
func (s *Server) route(c *reqCtx) {
	segs, m := c.segs, c.r.Method
	switch {
	case len(segs) == 0:
		switch m {
		case http.MethodHead:
			s.writeStatus(c, http.StatusOK)
		case http.MethodGet:
			s.info(c)
		default:
			s.methodNotAllowed(c, "GET", "HEAD")
		}
	case c.isBulk:
		if m != http.MethodPost && m != http.MethodPut {
			s.methodNotAllowed(c, "POST", "PUT")
			return
		}
		def := ""
		if len(segs) == 2 {
			def = segs[0]
		}
		s.bulk(c, def)
	case segs[0] == "_index_template" && len(segs) <= 2:
		s.templateAPI(c)
	case segs[0] == "_cluster" && len(segs) >= 2 && segs[1] == "health" && len(segs) <= 3:
		if m != http.MethodGet {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.clusterHealth(c)
	case segs[0] == "_refresh" && len(segs) == 1, len(segs) == 2 && segs[1] == "_refresh":
		if m != http.MethodPost && m != http.MethodGet {
			s.methodNotAllowed(c, "GET", "POST")
			return
		}
		s.refresh(c)
	case segs[0] == "_search" && len(segs) == 1, len(segs) == 2 && segs[1] == "_search":
		if m != http.MethodPost && m != http.MethodGet {
			s.methodNotAllowed(c, "GET", "POST")
			return
		}
		s.search(c)
	case segs[0] == "_count" && len(segs) == 1, len(segs) == 2 && segs[1] == "_count":
		if m != http.MethodPost && m != http.MethodGet {
			s.methodNotAllowed(c, "GET", "POST")
			return
		}
		s.count(c)
	default:
		s.noHandler(c)
	}
}

func (s *Server) info(c *reqCtx) {
	type version struct {
		Number                           string `json:"number"`
		BuildFlavor                      string `json:"build_flavor"`
		BuildType                        string `json:"build_type"`
		BuildHash                        string `json:"build_hash"`
		BuildDate                        string `json:"build_date"`
		BuildSnapshot                    bool   `json:"build_snapshot"`
		LuceneVersion                    string `json:"lucene_version"`
		MinimumWireCompatibilityVersion  string `json:"minimum_wire_compatibility_version"`
		MinimumIndexCompatibilityVersion string `json:"minimum_index_compatibility_version"`
	}
	s.writeJSON(c, http.StatusOK, struct {
		Name        string  `json:"name"`
		ClusterName string  `json:"cluster_name"`
		ClusterUUID string  `json:"cluster_uuid"`
		Version     version `json:"version"`
		Tagline     string  `json:"tagline"`
	}{
		Name:        "fakees",
		ClusterName: "fakees",
		ClusterUUID: "fAkEeSfAkEeSfAkEeSfAkE",
		Version: version{
			Number:                           Version,
			BuildFlavor:                      "default",
			BuildType:                        "docker",
			BuildHash:                        "09df99393193b2c53d92899662a8b8b3c55b45cd",
			BuildDate:                        "2024-03-22T03:35:46.757803203Z",
			LuceneVersion:                    "9.10.0",
			MinimumWireCompatibilityVersion:  "7.17.0",
			MinimumIndexCompatibilityVersion: "7.0.0",
		},
		Tagline: "You Know, for Search",
	})
}

func (s *Server) clusterHealth(c *reqCtx) {
	s.mu.Lock()
	n := len(s.indices)
	s.mu.Unlock()
	s.writeJSON(c, http.StatusOK, map[string]any{
		"cluster_name":                     "fakees",
		"status":                           "green",
		"timed_out":                        false,
		"number_of_nodes":                  1,
		"number_of_data_nodes":             1,
		"active_primary_shards":            n,
		"active_shards":                    n,
		"relocating_shards":                0,
		"initializing_shards":              0,
		"unassigned_shards":                0,
		"delayed_unassigned_shards":        0,
		"number_of_pending_tasks":          0,
		"number_of_in_flight_fetch":        0,
		"task_max_waiting_in_queue_millis": 0,
		"active_shards_percent_as_number":  100.0,
	})
}

func (s *Server) refresh(c *reqCtx) {
	s.mu.Lock()
	n := len(s.indices)
	if len(c.segs) == 2 {
		n = 0
		for _, name := range strings.Split(c.segs[0], ",") {
			if s.indices[name] == nil && !strings.ContainsAny(name, "*") && name != "_all" {
				s.mu.Unlock()
				s.writeError(c, http.StatusNotFound, indexNotFound(name))
				return
			}
			n++
		}
	}
	s.mu.Unlock()
	s.writeJSON(c, http.StatusOK, map[string]any{"_shards": shardsInfo{Total: n, Successful: n}})
}

// count answers _count over an index expression; only a missing body or
// match_all is understood (the pipeline's tests count everything).
func (s *Server) count(c *reqCtx) {
	target := "_all"
	if len(c.segs) == 2 {
		target = c.segs[0]
	}
	if len(c.body) > 0 {
		var q struct {
			Query map[string]json.RawMessage `json:"query"`
		}
		if err := json.Unmarshal(c.body, &q); err != nil || len(q.Query) > 1 || (len(q.Query) == 1 && q.Query["match_all"] == nil) {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "parsing_exception", Reason: "the fake counts only match_all"})
			return
		}
	}
	s.mu.Lock()
	names, missing := s.resolveIndicesLocked(target)
	n := 0
	for _, name := range names {
		n += len(s.indices[name].docs)
	}
	s.mu.Unlock()
	if len(missing) > 0 && c.r.URL.Query().Get("ignore_unavailable") != "true" {
		s.writeError(c, http.StatusNotFound, indexNotFound(missing[0]))
		return
	}
	s.writeJSON(c, http.StatusOK, map[string]any{"count": n, "_shards": shardsInfo{Total: len(names), Successful: len(names)}})
}

// search answers _search over an index expression for an ids query only
// (logctl trace looks a document up by its _id across a topic's indices).
func (s *Server) search(c *reqCtx) {
	target := "_all"
	if len(c.segs) == 2 {
		target = c.segs[0]
	}
	var q struct {
		Query struct {
			IDs *struct {
				Values []string `json:"values"`
			} `json:"ids"`
		} `json:"query"`
	}
	if err := json.Unmarshal(c.body, &q); err != nil || q.Query.IDs == nil {
		// Any other search is not served, as before ids were.
		s.noHandler(c)
		return
	}
	type hit struct {
		Index  string          `json:"_index"`
		ID     string          `json:"_id"`
		Source json.RawMessage `json:"_source"`
	}
	var hits []hit
	s.mu.Lock()
	names, missing := s.resolveIndicesLocked(target)
	for _, name := range names {
		for _, id := range q.Query.IDs.Values {
			if d, ok := s.indices[name].docs[id]; ok {
				hits = append(hits, hit{Index: name, ID: id, Source: d.source})
			}
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 && c.r.URL.Query().Get("ignore_unavailable") != "true" {
		s.writeError(c, http.StatusNotFound, indexNotFound(missing[0]))
		return
	}
	s.writeJSON(c, http.StatusOK, map[string]any{"hits": map[string]any{"total": map[string]any{"value": len(hits), "relation": "eq"}, "hits": hits},
		"_shards": shardsInfo{Total: len(names), Successful: len(names)}})
}

type shardsInfo struct {
	Total      int `json:"total"`
	Successful int `json:"successful"`
	Failed     int `json:"failed"`
}

// ---- helpers ----

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func indexNotFound(name string) errDetail {
	return errDetail{
		Type:         "index_not_found_exception",
		Reason:       "no such index [" + name + "]",
		ResourceType: "index_or_alias",
		ResourceID:   name,
		IndexUUID:    "_na_",
		Index:        name,
	}
}

// validateIndexName applies Elasticsearch's index name rules; it returns
// the reason suffix, or "" if name is valid.
func validateIndexName(name string) string {
	switch {
	case name == "":
		return "must not be empty"
	case strings.ContainsAny(name, `\/*?"<>| ,`):
		return `must not contain the following characters [ , ", *, \, <, |, ,, >, /, ?]`
	case strings.Contains(name, "#"):
		return "must not contain '#'"
	case strings.Contains(name, ":"):
		return "must not contain ':'"
	case name[0] == '_' || name[0] == '-' || name[0] == '+':
		return "must not start with '_', '-', or '+'"
	case strings.ToLower(name) != name:
		return "must be lowercase"
	case name == "." || name == "..":
		return "must not be '.' or '..'"
	case len(name) > 255:
		return fmt.Sprintf("index name is too long, (%d > 255)", len(name))
	}
	return ""
}

func invalidIndexName(name, why string) errDetail {
	return errDetail{
		Type:      "invalid_index_name_exception",
		Reason:    "Invalid index name [" + name + "], " + why,
		IndexUUID: "_na_",
		Index:     name,
	}
}

// defaultFault is the error type and reason Elasticsearch reports for an
// item (or request) failing with status.
func defaultFault(status int, index, id string) (string, string) {
	switch status {
	case http.StatusBadRequest:
		return "mapper_parsing_exception", fmt.Sprintf("failed to parse: fault injected by fakees for document with id '%s'", id)
	case http.StatusNotFound:
		return "index_not_found_exception", "no such index [" + index + "]"
	case http.StatusConflict:
		return "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", id)
	case http.StatusTooManyRequests:
		return "es_rejected_execution_exception", "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, " +
			"all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"
	case http.StatusInternalServerError:
		return "illegal_state_exception", "fault injected by fakees"
	case http.StatusServiceUnavailable:
		return "unavailable_shards_exception", fmt.Sprintf("[%s][0] primary shard is not active Timeout: [1m], request: [BulkShardRequest [[%s][0]] containing [1] requests]", index, index)
	case http.StatusUnauthorized, http.StatusForbidden:
		return "security_exception", "action [indices:data/write/bulk] is unauthorized (fault injected by fakees)"
	case http.StatusRequestTimeout, http.StatusGatewayTimeout:
		return "timeout_exception", "fault injected by fakees"
	}
	return "exception", fmt.Sprintf("fault injected by fakees (status %d)", status)
}
