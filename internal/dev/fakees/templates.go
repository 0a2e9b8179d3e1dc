package fakees

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// template is a composable index template (PUT /_index_template/<name>).
type template struct {
	name     string
	raw      json.RawMessage
	body     map[string]any
	patterns []string
	priority int64
}

// templateField reports how the fake treats a top-level field of a
// composable template body: known, unsupported (the fake refuses it rather
// than ignore what would change Elasticsearch's behaviour), or unknown
// (rejected like Elasticsearch's strict parser does).
func templateField(k string) (known, unsupported bool) {
	switch k {
	case "index_patterns", "template", "priority", "version", "_meta",
		"allow_auto_create", "ignore_missing_component_templates", "deprecated":
		return true, false
	case "composed_of", "data_stream":
		return false, true
	}
	return false, false
}

// templateBodyField reports whether k is a known field of a template's
// "template" object.
func templateBodyField(k string) bool {
	switch k {
	case "settings", "mappings", "aliases", "lifecycle":
		return true
	}
	return false
}

func (s *Server) templateAPI(c *reqCtx) {
	name := ""
	if len(c.segs) == 2 {
		name = c.segs[1]
	}
	switch c.r.Method {
	case http.MethodPut, http.MethodPost:
		if name == "" {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.putTemplate(c, name)
	case http.MethodGet, http.MethodHead:
		s.getTemplates(c, name)
	case http.MethodDelete:
		if name == "" {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.deleteTemplates(c, name)
	default:
		s.methodNotAllowed(c, "GET", "HEAD", "PUT", "POST", "DELETE")
	}
}

func parseError(reason string) errDetail {
	return errDetail{Type: "x_content_parse_exception", Reason: reason}
}

func validationError(reasons ...string) errDetail {
	var b strings.Builder
	b.WriteString("Validation Failed: ")
	for i, r := range reasons {
		fmt.Fprintf(&b, "%d: %s;", i+1, r)
	}
	return errDetail{Type: "action_request_validation_exception", Reason: b.String()}
}

func (s *Server) putTemplate(c *reqCtx, name string) {
	if len(bytes.TrimSpace(c.body)) == 0 {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "parse_exception", Reason: "request body is required"})
		return
	}
	var body map[string]any
	if err := decodeJSON(c.body, &body); err != nil {
		s.writeError(c, http.StatusBadRequest, parseError("failed to parse index_template body: "+err.Error()))
		return
	}
	if body == nil {
		s.writeError(c, http.StatusBadRequest, parseError("[index_template] body must be a JSON object"))
		return
	}
	for k := range body {
		known, unsupported := templateField(k)
		if unsupported {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: "fakees: [" + k + "] in index templates is not supported"})
			return
		}
		if !known {
			s.writeError(c, http.StatusBadRequest, parseError("[index_template] unknown field ["+k+"]"))
			return
		}
	}
	if inner, ok := body["template"]; ok {
		m, ok := inner.(map[string]any)
		if !ok {
			s.writeError(c, http.StatusBadRequest, parseError("[template] expected an object"))
			return
		}
		for k := range m {
			if !templateBodyField(k) {
				s.writeError(c, http.StatusBadRequest, parseError("[template] unknown field ["+k+"]"))
				return
			}
		}
	}
	t := &template{name: name, raw: append(json.RawMessage(nil), c.body...), body: body}
	pats, ok := stringList(body["index_patterns"])
	if !ok || len(pats) == 0 {
		s.writeError(c, http.StatusBadRequest, validationError("index patterns are missing"))
		return
	}
	for _, p := range pats {
		if why := validatePattern(p); why != "" {
			s.writeError(c, http.StatusBadRequest, errDetail{
				Type:   "invalid_index_template_exception",
				Reason: fmt.Sprintf("index_template [%s] invalid, cause [Validation Failed: 1: index_pattern [%s] %s;]", name, p, why),
			})
			return
		}
	}
	t.patterns = pats
	if v, ok := body["priority"]; ok {
		n, ok := toInt(v)
		if !ok || n < 0 {
			s.writeError(c, http.StatusBadRequest, parseError("[index_template] failed to parse field [priority]"))
			return
		}
		t.priority = n
	}

	create := c.r.URL.Query().Get("create") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	if create && s.templates[name] != nil {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: "index_template [" + name + "] already exists"})
		return
	}
	// Elasticsearch refuses two composable templates with the same
	// priority whose patterns overlap.
	var names []string
	for _, other := range s.templates {
		if other.name == name || other.priority != t.priority {
			continue
		}
		if patternsOverlap(t.patterns, other.patterns) {
			names = append(names, other.name)
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		var desc []string
		for _, n := range names {
			desc = append(desc, n+" => "+fmt.Sprint(s.templates[n].patterns))
		}
		s.writeError(c, http.StatusBadRequest, errDetail{
			Type: "illegal_argument_exception",
			Reason: fmt.Sprintf("index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s) "+
				"that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority",
				name, t.patterns, strings.Join(names, ","), strings.Join(desc, ","), t.priority),
		})
		return
	}
	s.templates[name] = t
	s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
}

func (s *Server) getTemplates(c *reqCtx, name string) {
	s.mu.Lock()
	var found []*template
	exact := false
	if name == "" {
		for _, t := range s.templates {
			found = append(found, t)
		}
	} else {
		for _, n := range strings.Split(name, ",") {
			if !strings.Contains(n, "*") {
				exact = true
			}
			for _, t := range s.templates {
				if globMatch(n, t.name) && !containsTemplate(found, t) {
					found = append(found, t)
				}
			}
		}
	}
	s.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].name < found[j].name })

	if len(found) == 0 && exact {
		if c.r.Method == http.MethodHead {
			s.writeStatus(c, http.StatusNotFound)
			return
		}
		s.writeError(c, http.StatusNotFound, errDetail{Type: "resource_not_found_exception", Reason: "index template matching [" + name + "] not found"})
		return
	}
	if c.r.Method == http.MethodHead {
		if len(found) == 0 {
			s.writeStatus(c, http.StatusNotFound)
		} else {
			s.writeStatus(c, http.StatusOK)
		}
		return
	}
	list := make([]map[string]any, 0, len(found))
	for _, t := range found {
		b := maps.Clone(t.body)
		b["composed_of"] = []any{}
		list = append(list, map[string]any{"name": t.name, "index_template": b})
	}
	s.writeJSON(c, http.StatusOK, map[string]any{"index_templates": list})
}

func containsTemplate(list []*template, t *template) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

func (s *Server) deleteTemplates(c *reqCtx, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var del []string
	for _, n := range strings.Split(name, ",") {
		matched := false
		for tn := range s.templates {
			if globMatch(n, tn) {
				del = append(del, tn)
				matched = true
			}
		}
		if !matched && !strings.Contains(n, "*") {
			s.writeError(c, http.StatusNotFound, errDetail{Type: "resource_not_found_exception", Reason: "index_template [" + n + "] missing"})
			return
		}
	}
	for _, n := range del {
		delete(s.templates, n)
	}
	s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
}

// validatePattern applies (the gist of) Elasticsearch's index pattern
// validation for templates.
func validatePattern(p string) string {
	switch {
	case strings.Contains(p, " "):
		return "must not contain a space"
	case strings.Contains(p, ","):
		return "must not contain a ','"
	case strings.Contains(p, "#"):
		return "must not contain a '#'"
	case strings.Contains(p, ":"):
		return "must not contain a ':'"
	case strings.HasPrefix(p, "_"):
		return "must not start with '_'"
	case strings.ToLower(p) != p:
		return "must be lowercase"
	case strings.ContainsAny(p, `\/?"<>|`):
		return `must not contain the following characters [\, /, ?, ", <, >, |]`
	}
	return ""
}

// ---- indices ----

// resolveIndicesLocked expands a comma-separated list of names and
// wildcards into existing index names; missing lists concrete names not
// found.
func (s *Server) resolveIndicesLocked(target string) (names, missing []string) {
	seen := map[string]bool{}
	for _, n := range strings.Split(target, ",") {
		if n == "_all" || strings.Contains(n, "*") {
			pat := n
			if n == "_all" {
				pat = "*"
			}
			for name := range s.indices {
				if globMatch(pat, name) && !seen[name] {
					seen[name] = true
					names = append(names, name)
				}
			}
			continue
		}
		if s.indices[n] == nil {
			missing = append(missing, n)
			continue
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names, missing
}

// newIndexLocked creates index name (auto-created by a bulk item), applying
// the matching template's settings and mappings.
func (s *Server) newIndexLocked(name string) *index {
	idx := &index{
		name:     name,
		uuid:     randomID(16)[:22],
		settings: map[string]any{},
		mappings: map[string]any{},
		docs:     map[string]*doc{},
	}
	if t := s.matchTemplateLocked(name); t != nil {
		idx.template = t.name
		if m, ok := t.body["template"].(map[string]any); ok {
			if st, ok := m["settings"].(map[string]any); ok {
				mergeSettings(idx.settings, st)
			}
			if mp, ok := m["mappings"].(map[string]any); ok {
				idx.mappings = deepCopy(mp).(map[string]any)
			}
		}
	}
	s.indices[name] = idx
	return idx
}

// matchTemplateLocked is the template Elasticsearch applies to a new index
// name: the matching one of highest priority.
func (s *Server) matchTemplateLocked(name string) *template {
	var best *template
	for _, t := range s.templates {
		if !matchAny(t.patterns, name) {
			continue
		}
		if best == nil || t.priority > best.priority || (t.priority == best.priority && t.name < best.name) {
			best = t
		}
	}
	return best
}

// mergeSettings flattens settings into dst as "a.b.c" keys without the
// "index." prefix, with string values like Elasticsearch reports them.
func mergeSettings(dst, src map[string]any) {
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, vv := range m {
				key := k
				if prefix != "" {
					key = prefix + "." + k
				}
				walk(key, vv)
			}
			return
		}
		key := strings.TrimPrefix(prefix, "index.")
		switch x := v.(type) {
		case string:
			dst[key] = x
		case json.Number:
			dst[key] = x.String()
		case nil:
			delete(dst, key)
		default:
			dst[key] = fmt.Sprint(x)
		}
	}
	walk("", src)
}

// ---- glob matching (Elasticsearch's simple match: only '*') ----

func globMatch(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, last)
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// patternsOverlap reports whether some string matches a pattern of a and a
// pattern of b.
func patternsOverlap(a, b []string) bool {
	for _, p := range a {
		for _, q := range b {
			if globsIntersect(p, q) {
				return true
			}
		}
	}
	return false
}

// globsIntersect reports whether some string matches both '*'-patterns.
func globsIntersect(p, q string) bool {
	memo := map[[2]int]bool{}
	seen := map[[2]int]bool{}
	var f func(i, j int) bool
	f = func(i, j int) bool {
		k := [2]int{i, j}
		if seen[k] {
			return memo[k]
		}
		seen[k] = true
		r := false
		switch {
		case i == len(p) && j == len(q):
			r = true
		case i < len(p) && p[i] == '*':
			r = f(i+1, j) || (j < len(q) && f(i, j+1))
		case j < len(q) && q[j] == '*':
			r = f(i, j+1) || (i < len(p) && f(i+1, j))
		case i < len(p) && j < len(q) && p[i] == q[j]:
			r = f(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return f(0, 0)
}

// ---- small JSON helpers ----

// decodeJSON decodes exactly one JSON value (numbers as json.Number).
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err // its text goes into Elasticsearch-like error reasons as is
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

func stringList(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return []string{x}, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		n, err := x.Int64()
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, vv := range x {
			m[k] = deepCopy(vv)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, vv := range x {
			l[i] = deepCopy(vv)
		}
		return l
	}
	return v
}
