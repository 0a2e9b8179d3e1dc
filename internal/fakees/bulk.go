package fakees

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"time"
)

// bulkOp is one parsed bulk action (with its document line).
type bulkOp struct {
	line        int    // line number of the action line, from 1
	action      string // index, create, delete, update (create also for index with op_type create)
	index       string
	id          string
	hasID       bool // _id given (possibly empty)
	pipeline    string
	version     int64
	hasVersion  bool
	versionType string
	ifSeqNo     *int64
	ifPrimTerm  *int64
	source      []byte     // document line (index, create) or update body
	upd         *updateReq // parsed update body
}

type updateReq struct {
	doc         map[string]any
	upsert      map[string]any
	docAsUpsert bool
	detectNoop  bool
	script      bool
}

// itemResult is one entry of a bulk response's items, in Elasticsearch's
// field order.
type itemResult struct {
	Index       string      `json:"_index"`
	ID          string      `json:"_id"`
	Version     int64       `json:"_version,omitempty"`
	Result      string      `json:"result,omitempty"`
	Shards      *shardsInfo `json:"_shards,omitempty"`
	SeqNo       *int64      `json:"_seq_no,omitempty"`
	PrimaryTerm int64       `json:"_primary_term,omitempty"`
	Status      int         `json:"status"`
	Error       *errDetail  `json:"error,omitempty"`
}

type requestError struct {
	status int
	detail errDetail
}

func illegalArg(format string, args ...any) *requestError {
	return &requestError{400, errDetail{Type: "illegal_argument_exception", Reason: fmt.Sprintf(format, args...)}}
}

func (s *Server) bulk(c *reqCtx, defIndex string) {
	start := time.Now()
	q := c.r.URL.Query()
	ops, rerr := parseBulk(c.body, defIndex, q.Get("pipeline"))
	if rerr != nil {
		s.writeError(c, rerr.status, rerr.detail)
		return
	}
	results := s.applyOps(ops)
	errorsSeen := false
	items := make([]map[string]*itemResult, len(results))
	for i, r := range results {
		if r.Error != nil {
			errorsSeen = true
		}
		items[i] = map[string]*itemResult{ops[i].action: r}
	}
	took := time.Since(start).Milliseconds()
	b, err := json.Marshal(struct {
		Took   int64                    `json:"took"`
		Errors bool                     `json:"errors"`
		Items  []map[string]*itemResult `json:"items"`
	}{took, errorsSeen, items})
	if err != nil {
		panic(err)
	}
	status := http.StatusOK
	s.mu.Lock()
	hook := s.bulkHook
	s.mu.Unlock()
	if hook != nil {
		status, b = hook(status, b)
	}
	s.writeRaw(c, status, b)
}

// parseBulk parses an NDJSON bulk body like Elasticsearch's
// BulkRequestParser, returning a whole-request error for what
// Elasticsearch rejects as a whole.
func parseBulk(body []byte, defIndex, defPipeline string) ([]*bulkOp, *requestError) {
	if len(body) == 0 {
		return nil, &requestError{400, errDetail{Type: "parse_exception", Reason: "request body is required"}}
	}
	if body[len(body)-1] != '\n' {
		return nil, illegalArg(`The bulk request must be terminated by a newline [\n]`)
	}
	lines := bytes.Split(body[:len(body)-1], []byte("\n"))
	var ops []*bulkOp
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := bytes.TrimSuffix(lines[i], []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		op, rerr := parseAction(line, lineNo, defIndex, defPipeline)
		if rerr != nil {
			return nil, rerr
		}
		if op.action != "delete" {
			if i+1 >= len(lines) {
				return nil, illegalArg("Malformed action/metadata line [%d]: the [%s] action has no document line (fakees is stricter than Elasticsearch, which ignores it)", lineNo, op.action)
			}
			i++
			op.source = bytes.TrimSuffix(lines[i], []byte("\r"))
			if op.action == "update" {
				u, rerr := parseUpdate(op.source, i+1)
				if rerr != nil {
					return nil, rerr
				}
				op.upd = u
			}
		}
		ops = append(ops, op)
	}
	// BulkRequest.validate
	var verrs []string
	if len(ops) == 0 {
		verrs = append(verrs, "no requests added")
	}
	for _, op := range ops {
		if op.index == "" {
			verrs = append(verrs, "index is missing")
		}
		switch op.action {
		case "update", "delete":
			if op.id == "" {
				verrs = append(verrs, "id is missing")
			}
		default:
			if op.hasID && op.id == "" {
				verrs = append(verrs, "if _id is specified it must not be empty")
			}
		}
		if len(op.id) > 512 {
			verrs = append(verrs, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.id, len(op.id)))
		}
		if op.hasVersion && op.versionType == "internal" && op.action != "update" {
			verrs = append(verrs, "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead")
		}
	}
	if len(verrs) > 0 {
		return nil, &requestError{400, validationError(verrs...)}
	}
	return ops, nil
}

// tokenName is the Jackson token name Elasticsearch reports for a value.
func tokenName(v any) string {
	switch v.(type) {
	case map[string]any, json.Delim:
		return "START_OBJECT"
	case []any:
		return "START_ARRAY"
	case string:
		return "VALUE_STRING"
	case json.Number:
		return "VALUE_NUMBER"
	case bool:
		return "VALUE_BOOLEAN"
	case nil:
		return "VALUE_NULL"
	}
	return fmt.Sprintf("%T", v)
}

func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

func parseAction(line []byte, lineNo int, defIndex, defPipeline string) (*bulkOp, *requestError) {
	if !json.Valid(line) {
		var v any
		err := json.Unmarshal(line, &v)
		return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:1] Malformed action/metadata line: %v", lineNo, err)}}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, _ := dec.Token()
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		var v any
		_ = decodeJSON(line, &v)
		return nil, illegalArg("Malformed action/metadata line [%d], expected START_OBJECT but found [%s]", lineNo, tokenName(v))
	}
	tok, _ = dec.Token()
	action, ok := tok.(string)
	if !ok {
		return nil, illegalArg("Malformed action/metadata line [%d], expected FIELD_NAME but found [END_OBJECT]", lineNo)
	}
	switch action {
	case "index", "create", "update", "delete":
	default:
		return nil, illegalArg("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", lineNo, action)
	}
	op := &bulkOp{line: lineNo, action: action, index: defIndex, pipeline: defPipeline, versionType: "internal"}
	var params any
	_ = dec.Decode(&params)
	m, isObj := params.(map[string]any)
	if !isObj {
		return nil, illegalArg("Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT but found [%s]", lineNo, tokenName(params))
	}
	// Field order matters only for which error is reported first; sort
	// for determinism.
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	opType := ""
	for _, k := range keys {
		v := m[k]
		switch v.(type) {
		case nil:
			continue
		case []any:
			return nil, illegalArg("Malformed action/metadata line [%d], expected a simple value for field [%s] but found [START_ARRAY]", lineNo, k)
		case map[string]any:
			if k == "_source" || k == "dynamic_templates" {
				continue
			}
			return nil, illegalArg("Malformed action/metadata line [%d], expected a simple value for field [%s] but found [START_OBJECT]", lineNo, k)
		}
		text, _ := scalarText(v)
		switch k {
		case "_index":
			op.index = text
		case "_id":
			op.id, op.hasID = text, true
		case "routing", "retry_on_conflict", "_source", "require_alias", "require_data_stream", "list_executed_pipelines":
		case "op_type":
			opType = text
		case "pipeline":
			op.pipeline = text
		case "version":
			n, ok := toInt(v)
			if !ok {
				return nil, illegalArg("Malformed action/metadata line [%d], [version] must be a number", lineNo)
			}
			op.version, op.hasVersion = n, true
		case "version_type":
			switch text {
			case "internal", "external", "external_gte":
				op.versionType = text
			default:
				return nil, illegalArg("No version type match [%s]", text)
			}
		case "if_seq_no", "if_primary_term":
			n, ok := toInt(v)
			if !ok {
				return nil, illegalArg("Malformed action/metadata line [%d], [%s] must be a number", lineNo, k)
			}
			if k == "if_seq_no" {
				op.ifSeqNo = &n
			} else {
				op.ifPrimTerm = &n
			}
		default: // including _type, removed in 8.0
			return nil, illegalArg("Action/metadata line [%d] contains an unknown parameter [%s]", lineNo, k)
		}
	}
	if action == "index" && opType == "create" {
		op.action = "create"
	}
	if action == "update" && (op.hasVersion || op.versionType != "internal") {
		return nil, illegalArg("Update requests do not support versioning. Please use `if_seq_no` and `if_primary_term` instead")
	}
	return op, nil
}

func parseUpdate(line []byte, lineNo int) (*updateReq, *requestError) {
	var body any
	if err := decodeJSON(line, &body); err != nil {
		return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:1] [UpdateRequest] failed to parse: %v", lineNo, err)}}
	}
	m, ok := body.(map[string]any)
	if !ok {
		return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:1] [UpdateRequest] Expected START_OBJECT but was: %s", lineNo, tokenName(body))}}
	}
	u := &updateReq{detectNoop: true}
	for k, v := range m {
		switch k {
		case "doc", "upsert":
			obj, ok := v.(map[string]any)
			if !ok {
				return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:1] [UpdateRequest] failed to parse field [%s]", lineNo, k)}}
			}
			if k == "doc" {
				u.doc = obj
			} else {
				u.upsert = obj
			}
		case "doc_as_upsert", "detect_noop", "scripted_upsert":
			b, ok := v.(bool)
			if !ok {
				return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:1] [UpdateRequest] failed to parse field [%s]", lineNo, k)}}
			}
			switch k {
			case "doc_as_upsert":
				u.docAsUpsert = b
			case "detect_noop":
				u.detectNoop = b
			}
		case "script":
			u.script = true
		case "_source":
		default:
			return nil, &requestError{400, errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprintf("[%d:2] [UpdateRequest] unknown field [%s]", lineNo, k)}}
		}
	}
	return u, nil
}

// applyOps runs the item fault hook (without locks) and then applies the
// operations to the store.
func (s *Server) applyOps(ops []*bulkOp) []*itemResult {
	for _, op := range ops {
		if (op.action == "index" || op.action == "create") && op.id == "" {
			op.id = randomID(15) // 20 characters, like Elasticsearch's auto ids
		}
	}
	s.mu.Lock()
	hook := s.itemFault
	s.mu.Unlock()
	faults := make([]*Fault, len(ops))
	if hook != nil {
		for i, op := range ops {
			var src []byte
			if op.action != "delete" {
				src = op.source
			}
			faults[i] = hook(op.index, op.id, src)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	results := make([]*itemResult, len(ops))
	for i, op := range ops {
		var r *itemResult
		if f := faults[i]; f != nil && f.Status >= 400 {
			typ, reason := defaultFault(f.Status, op.index, op.id)
			if f.Type != "" {
				typ = f.Type
			}
			if f.Reason != "" {
				reason = f.Reason
			}
			r = failed(op, f.Status, errDetail{Type: typ, Reason: reason})
		} else {
			r = s.applyLocked(op)
		}
		s.stats.Items++
		switch r.Result {
		case "created":
			s.stats.Created++
		case "updated":
			s.stats.Updated++
		case "deleted":
			s.stats.Deleted++
		}
		if r.Error != nil {
			s.stats.Failed++
			switch r.Status {
			case http.StatusTooManyRequests:
				s.stats.Rejected429++
			case http.StatusBadRequest:
				s.stats.Rejected400++
			}
		}
		results[i] = r
	}
	s.notifyLocked()
	return results
}

func failed(op *bulkOp, status int, d errDetail) *itemResult {
	return &itemResult{Index: op.index, ID: op.id, Status: status, Error: &d}
}

func ok(idx *index, id string, version int64, seq int64, result string, status int) *itemResult {
	return &itemResult{
		Index:       idx.name,
		ID:          id,
		Version:     version,
		Result:      result,
		Shards:      &shardsInfo{Total: 2, Successful: 1},
		SeqNo:       &seq,
		PrimaryTerm: 1,
		Status:      status,
	}
}

func withIndex(idx *index, d errDetail) errDetail {
	d.IndexUUID, d.Shard, d.Index = idx.uuid, "0", idx.name
	return d
}

// checkObject reports why src is not a JSON object document ("" if it is).
func checkObject(src []byte) *errDetail {
	trimmed := bytes.TrimSpace(src)
	if len(trimmed) == 0 {
		return &errDetail{Type: "mapper_parsing_exception", Reason: "failed to parse, document is empty"}
	}
	if !json.Valid(trimmed) {
		var v any
		err := json.Unmarshal(trimmed, &v)
		return &errDetail{Type: "mapper_parsing_exception", Reason: "failed to parse",
			CausedBy: &errDetail{Type: "x_content_parse_exception", Reason: fmt.Sprint(err)}}
	}
	if trimmed[0] != '{' {
		return &errDetail{Type: "mapper_parsing_exception", Reason: "failed to parse",
			CausedBy: &errDetail{Type: "x_content_parse_exception", Reason: "Malformed content, must start with an object"}}
	}
	return nil
}

// applyLocked applies one operation; s.mu is held.
func (s *Server) applyLocked(op *bulkOp) *itemResult {
	if op.pipeline != "" && op.pipeline != "_none" {
		return failed(op, 400, errDetail{Type: "illegal_argument_exception", Reason: "pipeline with id [" + op.pipeline + "] does not exist"})
	}
	if r := s.routeDataStreamLocked(op); r != nil {
		return r
	}
	idx := s.indices[op.index]
	if idx == nil {
		if op.action == "delete" {
			return failed(op, 404, indexNotFound(op.index))
		}
		if why := validateIndexName(op.index); why != "" {
			return failed(op, 400, invalidIndexName(op.index, why))
		}
		idx = s.newIndexLocked(op.index)
	}
	cur := idx.docs[op.id]
	if op.ifSeqNo != nil || op.ifPrimTerm != nil {
		var seq, term int64 = -2, 0
		if op.ifSeqNo != nil {
			seq = *op.ifSeqNo
		}
		if op.ifPrimTerm != nil {
			term = *op.ifPrimTerm
		}
		if cur == nil {
			return failed(op, 409, withIndex(idx, errDetail{Type: "version_conflict_engine_exception",
				Reason: fmt.Sprintf("[%s]: version conflict, required seqNo [%d], primary term [%d]. but no document was found", op.id, seq, term)}))
		}
		if cur.seqNo != seq || term != 1 {
			return failed(op, 409, withIndex(idx, errDetail{Type: "version_conflict_engine_exception",
				Reason: fmt.Sprintf("[%s]: version conflict, required seqNo [%d], primary term [%d]. current document has seqNo [%d] and primary term [1]", op.id, seq, term, cur.seqNo)}))
		}
	}
	nextVersion := idx.versions[op.id] + 1
	if op.hasVersion && op.versionType != "internal" {
		curV := idx.versions[op.id]
		if _, seen := idx.versions[op.id]; seen {
			if (op.versionType == "external" && op.version <= curV) || (op.versionType == "external_gte" && op.version < curV) {
				how := "higher or equal to"
				if op.versionType == "external_gte" {
					how = "higher than"
				}
				return failed(op, 409, withIndex(idx, errDetail{Type: "version_conflict_engine_exception",
					Reason: fmt.Sprintf("[%s]: version conflict, current version [%d] is %s the one provided [%d]", op.id, curV, how, op.version)}))
			}
		}
		nextVersion = op.version
	}
	store := func(src []byte) int64 {
		seq := idx.seqNo
		idx.seqNo++
		idx.docs[op.id] = &doc{source: bytes.Clone(src), version: nextVersion, seqNo: seq}
		idx.versions[op.id] = nextVersion
		return seq
	}

	switch op.action {
	case "index", "create":
		if d := checkObject(op.source); d != nil {
			return failed(op, 400, withIndex(idx, *d))
		}
		if cur != nil && op.action == "create" {
			return failed(op, 409, withIndex(idx, errDetail{Type: "version_conflict_engine_exception",
				Reason: fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", op.id, cur.version)}))
		}
		if d := idx.checkMapping(op.source); d != nil {
			return failed(op, 400, withIndex(idx, *d))
		}
		seq := store(op.source)
		if cur != nil {
			return ok(idx, op.id, nextVersion, seq, "updated", 200)
		}
		return ok(idx, op.id, nextVersion, seq, "created", 201)

	case "delete":
		seq := idx.seqNo
		idx.seqNo++
		idx.versions[op.id] = nextVersion
		if cur == nil {
			return ok(idx, op.id, nextVersion, seq, "not_found", 404)
		}
		delete(idx.docs, op.id)
		return ok(idx, op.id, nextVersion, seq, "deleted", 200)

	case "update":
		u := op.upd
		if u.script {
			return failed(op, 400, withIndex(idx, errDetail{Type: "illegal_argument_exception", Reason: "fakees: scripted updates are not supported"}))
		}
		if cur == nil {
			var src map[string]any
			switch {
			case u.docAsUpsert && u.doc != nil:
				src = u.doc
			case u.upsert != nil:
				src = u.upsert
			default:
				return failed(op, 404, withIndex(idx, errDetail{Type: "document_missing_exception", Reason: "[" + op.id + "]: document missing"}))
			}
			b, _ := json.Marshal(src)
			seq := store(b)
			return ok(idx, op.id, nextVersion, seq, "created", 201)
		}
		if u.doc == nil {
			return failed(op, 400, withIndex(idx, errDetail{Type: "action_request_validation_exception", Reason: "Validation Failed: 1: script or doc is missing;"}))
		}
		var existing map[string]any
		if err := decodeJSON(cur.source, &existing); err != nil || existing == nil {
			existing = map[string]any{}
		}
		merged := maps.Clone(existing)
		changed := deepMerge(merged, u.doc)
		if !changed && u.detectNoop {
			r := ok(idx, op.id, cur.version, cur.seqNo, "noop", 200)
			r.Shards = &shardsInfo{}
			return r
		}
		b, _ := json.Marshal(merged)
		seq := store(b)
		return ok(idx, op.id, nextVersion, seq, "updated", 200)
	}
	return failed(op, 400, errDetail{Type: "illegal_argument_exception", Reason: "unknown action [" + op.action + "]"})
}

// ---- single-document APIs ----

func (s *Server) docAPI(c *reqCtx) {
	name, kind := c.segs[0], c.segs[1]
	id := ""
	if len(c.segs) == 3 {
		id = c.segs[2]
	}
	m := c.r.Method
	q := c.r.URL.Query()
	switch {
	case kind == "_doc" && id != "" && (m == http.MethodGet || m == http.MethodHead):
		s.getDoc(c, name, id)
		return
	case kind == "_doc" && id != "" && m == http.MethodDelete:
		s.singleWrite(c, &bulkOp{action: "delete", index: name, id: id, hasID: true, versionType: "internal"}, q)
		return
	case kind == "_doc" && id == "" && m == http.MethodPost,
		kind == "_doc" && id != "" && (m == http.MethodPut || m == http.MethodPost),
		kind == "_create" && id != "" && (m == http.MethodPut || m == http.MethodPost):
		action := "index"
		if kind == "_create" || q.Get("op_type") == "create" {
			action = "create"
		}
		if len(c.body) == 0 {
			s.writeError(c, 400, errDetail{Type: "parse_exception", Reason: "request body is required"})
			return
		}
		s.singleWrite(c, &bulkOp{action: action, index: name, id: id, hasID: id != "", source: c.body, pipeline: q.Get("pipeline"), versionType: "internal"}, q)
		return
	}
	s.methodNotAllowed(c, "GET", "HEAD", "PUT", "POST", "DELETE")
}

func (s *Server) singleWrite(c *reqCtx, op *bulkOp, q map[string][]string) {
	if v := firstOf(q, "version_type"); v != "" {
		op.versionType = v
	}
	if v := firstOf(q, "version"); v != "" {
		n, ok := toInt(v)
		if !ok {
			s.writeError(c, 400, errDetail{Type: "illegal_argument_exception", Reason: "failed to parse [version]"})
			return
		}
		op.version, op.hasVersion = n, true
	}
	if why := validateIndexName(op.index); why != "" && op.action != "delete" {
		s.writeError(c, 400, invalidIndexName(op.index, why))
		return
	}
	r := s.applyOps([]*bulkOp{op})[0]
	if r.Error != nil {
		s.writeError(c, r.Status, *r.Error)
		return
	}
	s.writeJSON(c, r.Status, r)
}

func firstOf(q map[string][]string, k string) string {
	if v := q[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (s *Server) getDoc(c *reqCtx, name, id string) {
	s.mu.Lock()
	idx := s.indices[name]
	var d *doc
	if idx != nil {
		d = idx.docs[id]
	}
	var src []byte
	var version, seq int64
	if d != nil {
		src, version, seq = bytes.Clone(d.source), d.version, d.seqNo
	}
	s.mu.Unlock()
	switch {
	case idx == nil:
		if c.r.Method == http.MethodHead {
			s.writeStatus(c, 404)
			return
		}
		s.writeError(c, 404, indexNotFound(name))
	case d == nil:
		if c.r.Method == http.MethodHead {
			s.writeStatus(c, 404)
			return
		}
		s.writeJSON(c, 404, map[string]any{"_index": name, "_id": id, "found": false})
	default:
		if c.r.Method == http.MethodHead {
			s.writeStatus(c, 200)
			return
		}
		s.writeJSON(c, 200, struct {
			Index       string          `json:"_index"`
			ID          string          `json:"_id"`
			Version     int64           `json:"_version"`
			SeqNo       int64           `json:"_seq_no"`
			PrimaryTerm int64           `json:"_primary_term"`
			Found       bool            `json:"found"`
			Source      json.RawMessage `json:"_source"`
		}{name, id, version, seq, 1, true, src})
	}
}
