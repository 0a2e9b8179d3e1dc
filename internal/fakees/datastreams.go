package fakees

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Data streams, minimally: a bulk write to a name that is not an index and
// matches a composable template with "data_stream" creates a data stream
// with one backing index ".ds-<name>-<yyyy.MM.dd>-000001", where documents
// are stored (Docs, Doc and the items' _index use the backing index).
// As in Elasticsearch, only "create" operations are allowed on it (an
// "index" action fails with 400) and every document needs "@timestamp".

type dataStream struct {
	name     string
	template string
	backing  string
}

// DataStreams returns the names of the existing data streams, sorted.
func (s *Server) DataStreams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.dataStreams))
	for n := range s.dataStreams {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// DataStreamBackingIndex returns the backing index of data stream name.
func (s *Server) DataStreamBackingIndex(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ds := s.dataStreams[name]
	if ds == nil {
		return "", false
	}
	return ds.backing, true
}

// InstallBuiltinTemplates installs composable templates like the ones
// Elasticsearch 8 ships by default (stack.templates.enabled): "logs"
// (logs-*-*), "metrics" (metrics-*-*) and "synthetics" (synthetics-*-*),
// priority 100, creating data streams. Without a template of higher
// priority, writing to e.g. "logs-app-2024.01.02" then needs "create"
// actions, exactly as against a real cluster.
func (s *Server) InstallBuiltinTemplates() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range []string{"logs", "metrics", "synthetics"} {
		body := map[string]any{
			"index_patterns":    []any{name + "-*-*"},
			"priority":          json.Number("100"),
			"data_stream":       map[string]any{"hidden": false, "allow_custom_routing": false},
			"_meta":             map[string]any{"description": "default " + name + " template installed by x-pack", "managed": true},
			"allow_auto_create": true,
		}
		raw, _ := json.Marshal(body)
		s.templates[composable][name] = &template{name: name, raw: raw, body: body, patterns: []string{name + "-*-*"}, priority: 100}
	}
}

func isDataStreamTemplate(t *template) bool {
	_, ok := t.body["data_stream"].(map[string]any)
	return ok
}

func (s *Server) newDataStreamLocked(name string, t *template) *dataStream {
	ds := &dataStream{
		name:     name,
		template: t.name,
		backing:  fmt.Sprintf(".ds-%s-%s-000001", name, time.Now().UTC().Format("2006.01.02")),
	}
	idx := s.newIndexLocked(ds.backing)
	idx.template = t.name
	idx.dataStream = name
	s.dataStreams[name] = ds
	return ds
}

// routeDataStreamLocked redirects op to a data stream's backing index if
// op.index names (or would auto-create) a data stream; it returns an item
// failure if the operation is not allowed there.
func (s *Server) routeDataStreamLocked(op *bulkOp) *itemResult {
	if s.indices[op.index] != nil {
		return nil
	}
	ds := s.dataStreams[op.index]
	if ds == nil {
		if op.action == "delete" || validateIndexName(op.index) != "" {
			return nil
		}
		t := s.matchComposableLocked(op.index)
		if t == nil || !isDataStreamTemplate(t) {
			return nil
		}
		if op.action != "create" {
			return failed(op, 400, errDetail{Type: "illegal_argument_exception",
				Reason: "only write ops with an op_type of create are allowed in data streams"})
		}
		ds = s.newDataStreamLocked(op.index, t)
	}
	if op.action != "create" {
		return failed(op, 400, errDetail{Type: "illegal_argument_exception",
			Reason: "only write ops with an op_type of create are allowed in data streams"})
	}
	if checkObject(op.source) == nil {
		var m map[string]json.RawMessage
		if json.Unmarshal(op.source, &m) == nil {
			if _, ok := m["@timestamp"]; !ok {
				idx := s.indices[ds.backing]
				return failed(op, 400, withIndex(idx, errDetail{Type: "document_parsing_exception",
					Reason: "[1:1] failed to parse: data stream timestamp field [@timestamp] is missing"}))
			}
		}
	}
	op.index = ds.backing
	return nil
}

// dataStreamAPI serves /_data_stream[/<name>].
func (s *Server) dataStreamAPI(c *reqCtx) {
	name := ""
	if len(c.segs) == 2 {
		name = c.segs[1]
	}
	switch c.r.Method {
	case http.MethodGet:
		s.mu.Lock()
		var list []map[string]any
		var missing string
		names := []string{"*"}
		if name != "" {
			names = strings.Split(name, ",")
		}
		for _, n := range names {
			found := false
			for dn, ds := range s.dataStreams {
				if !globMatch(n, dn) {
					continue
				}
				found = true
				idx := s.indices[ds.backing]
				uuid := ""
				if idx != nil {
					uuid = idx.uuid
				}
				list = append(list, map[string]any{
					"name":            dn,
					"timestamp_field": map[string]any{"name": "@timestamp"},
					"indices":         []any{map[string]any{"index_name": ds.backing, "index_uuid": uuid}},
					"generation":      1,
					"status":          "GREEN",
					"template":        ds.template,
					"hidden":          false,
					"system":          false,
				})
			}
			if !found && !strings.Contains(n, "*") {
				missing = n
			}
		}
		s.mu.Unlock()
		if missing != "" {
			s.writeError(c, http.StatusNotFound, indexNotFound(missing))
			return
		}
		sort.Slice(list, func(i, j int) bool { return list[i]["name"].(string) < list[j]["name"].(string) })
		if list == nil {
			list = []map[string]any{}
		}
		s.writeJSON(c, http.StatusOK, map[string]any{"data_streams": list})
	case http.MethodPut:
		if name == "" {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.dataStreams[name] != nil || s.indices[name] != nil {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "resource_already_exists_exception", Reason: "data_stream [" + name + "] already exists"})
			return
		}
		t := s.matchComposableLocked(name)
		if t == nil || !isDataStreamTemplate(t) {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: "no matching index template found for data stream [" + name + "]"})
			return
		}
		s.newDataStreamLocked(name, t)
		s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
	case http.MethodDelete:
		if name == "" {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var del []string
		for _, n := range strings.Split(name, ",") {
			matched := false
			for dn := range s.dataStreams {
				if globMatch(n, dn) {
					del = append(del, dn)
					matched = true
				}
			}
			if !matched && !strings.Contains(n, "*") {
				s.writeError(c, http.StatusNotFound, indexNotFound(n))
				return
			}
		}
		for _, dn := range del {
			delete(s.indices, s.dataStreams[dn].backing)
			delete(s.dataStreams, dn)
		}
		s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
	default:
		s.methodNotAllowed(c, "GET", "PUT", "DELETE")
	}
}
