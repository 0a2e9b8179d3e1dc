package fakees

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// bulkOp is one parsed bulk action (with its document line).
type bulkOp struct {
	line     int    // line number of the action line, from 1
	action   string // index or create (create also for index with op_type create)
	index    string
	id       string
	hasID    bool // _id given (possibly empty)
	pipeline string
	source   []byte // document line
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
		if i+1 >= len(lines) {
			return nil, illegalArg("Malformed action/metadata line [%d]: the [%s] action has no document line (fakees is stricter than Elasticsearch, which ignores it)", lineNo, op.action)
		}
		i++
		op.source = bytes.TrimSuffix(lines[i], []byte("\r"))
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
		if op.hasID && op.id == "" {
			verrs = append(verrs, "if _id is specified it must not be empty")
		}
		if len(op.id) > 512 {
			verrs = append(verrs, fmt.Sprintf("id [%s] is too long, must be no longer than 512 bytes but was: %d", op.id, len(op.id)))
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
	case "index", "create":
	case "update", "delete":
		return nil, illegalArg("Malformed action/metadata line [%d]: fakees does not support the [%s] action", lineNo, action)
	default:
		return nil, illegalArg("Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update] but found [%s]", lineNo, action)
	}
	op := &bulkOp{line: lineNo, action: action, index: defIndex, pipeline: defPipeline}
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
		case "version", "version_type", "if_seq_no", "if_primary_term":
			return nil, illegalArg("Action/metadata line [%d] contains [%s]: fakees does not support versioning", lineNo, k)
		default: // including _type, removed in 8.0
			return nil, illegalArg("Action/metadata line [%d] contains an unknown parameter [%s]", lineNo, k)
		}
	}
	if action == "index" && opType == "create" {
		op.action = "create"
	}
	return op, nil
}

// applyOps runs the item fault hook (without locks) and then applies the
// operations to the store.
func (s *Server) applyOps(ops []*bulkOp) []*itemResult {
	for _, op := range ops {
		if op.id == "" {
			op.id = randomID(15) // 20 characters, like Elasticsearch's auto ids
		}
	}
	s.mu.Lock()
	hook := s.itemFault
	s.mu.Unlock()
	faults := make([]*Fault, len(ops))
	if hook != nil {
		for i, op := range ops {
			faults[i] = hook(op.index, op.id, op.source)
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
		}
		if r.Error != nil {
			s.stats.Failed++
			switch r.Status {
			case http.StatusTooManyRequests:
				s.stats.Rejected429++
			case http.StatusBadRequest:
				s.stats.Rejected400++
			case http.StatusConflict:
				s.stats.Conflicts++
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
	idx := s.indices[op.index]
	if idx == nil {
		if why := validateIndexName(op.index); why != "" {
			return failed(op, 400, invalidIndexName(op.index, why))
		}
		idx = s.newIndexLocked(op.index)
	}
	if d := checkObject(op.source); d != nil {
		return failed(op, 400, withIndex(idx, *d))
	}
	cur := idx.docs[op.id]
	if cur != nil && op.action == "create" {
		return failed(op, 409, withIndex(idx, errDetail{Type: "version_conflict_engine_exception",
			Reason: fmt.Sprintf("[%s]: version conflict, document already exists (current version [%d])", op.id, cur.version)}))
	}
	if d := idx.checkMapping(op.source); d != nil {
		return failed(op, 400, withIndex(idx, *d))
	}
	version := int64(1)
	if cur != nil {
		version = cur.version + 1
	}
	seq := idx.seqNo
	idx.seqNo++
	idx.docs[op.id] = &doc{source: bytes.Clone(op.source), version: version}
	if cur != nil {
		return ok(idx, op.id, version, seq, "updated", 200)
	}
	return ok(idx, op.id, version, seq, "created", 201)
}
