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
	"time"
)

type templateKind int

const (
	composable templateKind = iota // /_index_template
	component                      // /_component_template
	legacy                         // /_template
)

func (k templateKind) String() string {
	switch k {
	case composable:
		return "index_template"
	case component:
		return "component_template"
	}
	return "template"
}

type template struct {
	name       string
	raw        json.RawMessage
	body       map[string]any
	patterns   []string
	priority   int64 // priority (composable) or order (legacy)
	composedOf []string
}

// known top-level fields per template kind; others are rejected like
// Elasticsearch's strict parsers do.
var templateFields = map[templateKind][]string{
	composable: {"index_patterns", "template", "composed_of", "priority", "version", "_meta", "data_stream",
		"allow_auto_create", "ignore_missing_component_templates", "deprecated"},
	component: {"template", "version", "_meta", "deprecated"},
	legacy:    {"index_patterns", "order", "version", "settings", "mappings", "aliases"},
}

var templateBodyFields = []string{"settings", "mappings", "aliases", "lifecycle"}

func (s *Server) templateAPI(c *reqCtx, kind templateKind) {
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
		s.putTemplate(c, kind, name)
	case http.MethodGet, http.MethodHead:
		s.getTemplates(c, kind, name)
	case http.MethodDelete:
		if name == "" {
			s.methodNotAllowed(c, "GET")
			return
		}
		s.deleteTemplates(c, kind, name)
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

func (s *Server) putTemplate(c *reqCtx, kind templateKind, name string) {
	if len(bytes.TrimSpace(c.body)) == 0 {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "parse_exception", Reason: "request body is required"})
		return
	}
	var body map[string]any
	if err := decodeJSON(c.body, &body); err != nil {
		s.writeError(c, http.StatusBadRequest, parseError("failed to parse "+kind.String()+" body: "+err.Error()))
		return
	}
	if body == nil {
		s.writeError(c, http.StatusBadRequest, parseError("["+kind.String()+"] body must be a JSON object"))
		return
	}
	for k := range body {
		if !contains(templateFields[kind], k) {
			s.writeError(c, http.StatusBadRequest, parseError("["+kind.String()+"] unknown field ["+k+"]"))
			return
		}
	}
	if kind != legacy {
		if inner, ok := body["template"]; ok {
			m, ok := inner.(map[string]any)
			if !ok {
				s.writeError(c, http.StatusBadRequest, parseError("[template] expected an object"))
				return
			}
			for k := range m {
				if !contains(templateBodyFields, k) {
					s.writeError(c, http.StatusBadRequest, parseError("[template] unknown field ["+k+"]"))
					return
				}
			}
		} else if kind == component {
			s.writeError(c, http.StatusBadRequest, parseError("Required [template]"))
			return
		}
	}
	t := &template{name: name, raw: append(json.RawMessage(nil), c.body...), body: body}
	if kind != component {
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
		key := "priority"
		if kind == legacy {
			key = "order"
		}
		if v, ok := body[key]; ok {
			n, ok := toInt(v)
			if !ok || n < 0 {
				s.writeError(c, http.StatusBadRequest, parseError("["+kind.String()+"] failed to parse field ["+key+"]"))
				return
			}
			t.priority = n
		}
		if kind == composable {
			if v, ok := body["composed_of"]; ok {
				co, ok := stringList(v)
				if !ok {
					s.writeError(c, http.StatusBadRequest, parseError("[index_template] failed to parse field [composed_of]"))
					return
				}
				t.composedOf = co
			}
		}
	}

	create := c.r.URL.Query().Get("create") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	store := s.templates[kind]
	if create && store[name] != nil {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: kind.String() + " [" + name + "] already exists"})
		return
	}
	if kind == composable {
		var missing []string
		for _, ct := range t.composedOf {
			if s.templates[component][ct] == nil {
				missing = append(missing, ct)
			}
		}
		if len(missing) > 0 {
			s.writeError(c, http.StatusBadRequest, errDetail{
				Type:   "invalid_index_template_exception",
				Reason: fmt.Sprintf("index_template [%s] invalid, cause [index template [%s] specifies component templates %v that do not exist]", name, name, missing),
			})
			return
		}
		// Elasticsearch refuses two composable templates with the same
		// priority whose patterns overlap.
		var names []string
		for _, other := range store {
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
				desc = append(desc, n+" => "+fmt.Sprint(store[n].patterns))
			}
			s.writeError(c, http.StatusBadRequest, errDetail{
				Type: "illegal_argument_exception",
				Reason: fmt.Sprintf("index template [%s] has index patterns %v matching patterns from existing templates [%s] with patterns (%s) "+
					"that have the same priority [%d], multiple index templates may not match during index creation, please use a different priority",
					name, t.patterns, strings.Join(names, ","), strings.Join(desc, ","), t.priority),
			})
			return
		}
	}
	store[name] = t
	s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
}

func (s *Server) getTemplates(c *reqCtx, kind templateKind, name string) {
	s.mu.Lock()
	var found []*template
	exact := false
	if name == "" {
		for _, t := range s.templates[kind] {
			found = append(found, t)
		}
	} else {
		for _, n := range strings.Split(name, ",") {
			if !strings.Contains(n, "*") {
				exact = true
			}
			for _, t := range s.templates[kind] {
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
		reason := "index template matching [" + name + "] not found"
		switch kind {
		case component:
			reason = "component template matching [" + name + "] not found"
		case legacy:
			// Legacy GET answers 404 with an empty object.
			s.writeRaw(c, http.StatusNotFound, []byte("{}"))
			return
		}
		s.writeError(c, http.StatusNotFound, errDetail{Type: "resource_not_found_exception", Reason: reason})
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
	switch kind {
	case composable, component:
		key := "index_templates"
		if kind == component {
			key = "component_templates"
		}
		list := make([]map[string]any, 0, len(found))
		for _, t := range found {
			b := maps.Clone(t.body)
			if kind == composable {
				if _, ok := b["composed_of"]; !ok {
					b["composed_of"] = []any{}
				}
			}
			list = append(list, map[string]any{"name": t.name, kind.String(): b})
		}
		s.writeJSON(c, http.StatusOK, map[string]any{key: list})
	case legacy:
		out := map[string]any{}
		for _, t := range found {
			b := maps.Clone(t.body)
			for k, def := range map[string]any{"order": 0, "settings": map[string]any{}, "mappings": map[string]any{}, "aliases": map[string]any{}} {
				if _, ok := b[k]; !ok {
					b[k] = def
				}
			}
			out[t.name] = b
		}
		s.writeJSON(c, http.StatusOK, out)
	}
}

func containsTemplate(list []*template, t *template) bool {
	for _, x := range list {
		if x == t {
			return true
		}
	}
	return false
}

func (s *Server) deleteTemplates(c *reqCtx, kind templateKind, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	store := s.templates[kind]
	var del []string
	for _, n := range strings.Split(name, ",") {
		matched := false
		for tn := range store {
			if globMatch(n, tn) {
				del = append(del, tn)
				matched = true
			}
		}
		if !matched && !strings.Contains(n, "*") {
			reason := "index_template [" + n + "] missing"
			switch kind {
			case component:
				reason = "component_template [" + n + "] missing"
			case legacy:
				reason = "index_template [" + n + "] missing"
			}
			s.writeError(c, http.StatusNotFound, errDetail{Type: "resource_not_found_exception", Reason: reason})
			return
		}
	}
	if kind == component {
		for _, n := range del {
			for _, it := range s.templates[composable] {
				if contains(it.composedOf, n) {
					s.writeError(c, http.StatusBadRequest, errDetail{
						Type:   "illegal_argument_exception",
						Reason: fmt.Sprintf("component templates [%s] cannot be removed as they are still in use by index templates [%s]", n, it.name),
					})
					return
				}
			}
		}
	}
	for _, n := range del {
		delete(store, n)
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

// ---- index APIs ----

func (s *Server) indexAPI(c *reqCtx, target string) {
	switch c.r.Method {
	case http.MethodPut:
		s.createIndex(c, target)
	case http.MethodHead, http.MethodGet:
		s.getIndex(c, target)
	case http.MethodDelete:
		s.deleteIndex(c, target)
	default:
		s.methodNotAllowed(c, "GET", "HEAD", "PUT", "DELETE")
	}
}

func (s *Server) createIndex(c *reqCtx, name string) {
	if why := validateIndexName(name); why != "" {
		s.writeError(c, http.StatusBadRequest, invalidIndexName(name, why))
		return
	}
	var body map[string]any
	if len(bytes.TrimSpace(c.body)) > 0 {
		if err := decodeJSON(c.body, &body); err != nil || body == nil {
			s.writeError(c, http.StatusBadRequest, parseError("failed to parse create index body"))
			return
		}
		for k := range body {
			if k != "settings" && k != "mappings" && k != "aliases" {
				s.writeError(c, http.StatusBadRequest, parseError("unknown key ["+k+"] for create index"))
				return
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dataStreams[name] != nil {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "resource_already_exists_exception", Reason: "data stream [" + name + "] already exists", Index: name})
		return
	}
	if t := s.matchComposableLocked(name); t != nil && isDataStreamTemplate(t) {
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception",
			Reason: "cannot create index with name [" + name + "], because it matches with template [" + t.name + "] that creates data streams only, use create data stream api instead"})
		return
	}
	if idx := s.indices[name]; idx != nil {
		s.writeError(c, http.StatusBadRequest, errDetail{
			Type:      "resource_already_exists_exception",
			Reason:    "index [" + name + "/" + idx.uuid + "] already exists",
			IndexUUID: idx.uuid,
			Index:     name,
		})
		return
	}
	idx := s.newIndexLocked(name)
	if m, ok := body["settings"].(map[string]any); ok {
		mergeSettings(idx.settings, m)
	}
	if m, ok := body["mappings"].(map[string]any); ok {
		deepMerge(idx.mappings, m)
	}
	if m, ok := body["aliases"].(map[string]any); ok {
		deepMerge(idx.aliases, m)
	}
	s.writeJSON(c, http.StatusOK, struct {
		Acknowledged       bool   `json:"acknowledged"`
		ShardsAcknowledged bool   `json:"shards_acknowledged"`
		Index              string `json:"index"`
	}{true, true, name})
}

// resolveIndices expands a comma-separated list of names and wildcards
// into existing index names; missing lists concrete names not found.
func (s *Server) resolveIndicesLocked(target string) (names, missing []string, wildcard bool) {
	seen := map[string]bool{}
	for _, n := range strings.Split(target, ",") {
		if n == "_all" || strings.Contains(n, "*") {
			wildcard = true
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
		if ds := s.dataStreams[n]; ds != nil {
			n = ds.backing
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
	return names, missing, wildcard
}

func (s *Server) getIndex(c *reqCtx, target string) {
	s.mu.Lock()
	names, missing, _ := s.resolveIndicesLocked(target)
	out := map[string]any{}
	for _, n := range names {
		idx := s.indices[n]
		settings := map[string]any{}
		for k, v := range idx.settings {
			settings[k] = v
		}
		out[n] = map[string]any{
			"aliases":  deepCopy(idx.aliases),
			"mappings": deepCopy(idx.mappings),
			"settings": map[string]any{"index": deepCopy(nestSettings(settings))},
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 {
		if c.r.Method == http.MethodHead {
			s.writeStatus(c, http.StatusNotFound)
			return
		}
		s.writeError(c, http.StatusNotFound, indexNotFound(missing[0]))
		return
	}
	if c.r.Method == http.MethodHead {
		s.writeStatus(c, http.StatusOK)
		return
	}
	s.writeJSON(c, http.StatusOK, out)
}

func (s *Server) deleteIndex(c *reqCtx, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, missing, wildcard := s.resolveIndicesLocked(target)
	if wildcard {
		// action.destructive_requires_name defaults to true in 8.x.
		s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception", Reason: "Wildcard expressions or all indices are not allowed"})
		return
	}
	if len(missing) > 0 {
		s.writeError(c, http.StatusNotFound, indexNotFound(missing[0]))
		return
	}
	for _, n := range strings.Split(target, ",") {
		if s.dataStreams[n] != nil {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception",
				Reason: "The provided expression [" + n + "] matches a data stream, specify the corresponding concrete indices instead."})
			return
		}
	}
	for _, n := range names {
		if ds := s.indices[n].dataStream; ds != "" {
			s.writeError(c, http.StatusBadRequest, errDetail{Type: "illegal_argument_exception",
				Reason: "index [" + n + "] is the write index for data stream [" + ds + "] and cannot be deleted"})
			return
		}
	}
	for _, n := range names {
		delete(s.indices, n)
	}
	s.writeJSON(c, http.StatusOK, map[string]bool{"acknowledged": true})
}

// newIndexLocked creates index name, applying the matching template(s).
func (s *Server) newIndexLocked(name string) *index {
	now := time.Now()
	idx := &index{
		name:     name,
		uuid:     randomID(16)[:22],
		created:  now,
		settings: map[string]any{},
		mappings: map[string]any{},
		aliases:  map[string]any{},
		docs:     map[string]*doc{},
		versions: map[string]int64{},
	}
	if t := s.matchComposableLocked(name); t != nil {
		idx.template = t.name
		for _, ct := range t.composedOf {
			if comp := s.templates[component][ct]; comp != nil {
				applyTemplateBody(idx, comp.body["template"])
			}
		}
		applyTemplateBody(idx, t.body["template"])
	} else {
		var ls []*template
		for _, t := range s.templates[legacy] {
			if matchAny(t.patterns, name) {
				ls = append(ls, t)
			}
		}
		sort.Slice(ls, func(i, j int) bool { return ls[i].priority < ls[j].priority })
		var names []string
		for _, t := range ls {
			applyTemplateBody(idx, t.body)
			names = append(names, t.name)
		}
		idx.template = strings.Join(names, ",")
	}
	base := map[string]any{
		"number_of_shards":   "1",
		"number_of_replicas": "1",
		"provided_name":      name,
		"uuid":               idx.uuid,
		"creation_date":      strconv.FormatInt(now.UnixMilli(), 10),
		"version.created":    "8503000",
	}
	for k, v := range base {
		if _, ok := idx.settings[k]; !ok {
			idx.settings[k] = v
		}
	}
	s.indices[name] = idx
	return idx
}

func (s *Server) matchComposableLocked(name string) *template {
	var best *template
	for _, t := range s.templates[composable] {
		if !matchAny(t.patterns, name) {
			continue
		}
		if best == nil || t.priority > best.priority || (t.priority == best.priority && t.name < best.name) {
			best = t
		}
	}
	return best
}

func applyTemplateBody(idx *index, v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	if st, ok := m["settings"].(map[string]any); ok {
		mergeSettings(idx.settings, st)
	}
	if mp, ok := m["mappings"].(map[string]any); ok {
		deepMerge(idx.mappings, deepCopy(mp).(map[string]any))
	}
	if al, ok := m["aliases"].(map[string]any); ok {
		deepMerge(idx.aliases, deepCopy(al).(map[string]any))
	}
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

// nestSettings turns flat "a.b" keys into nested objects.
func nestSettings(flat map[string]any) map[string]any {
	out := map[string]any{}
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts := strings.Split(k, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = flat[k]
	}
	return out
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
		return err
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deepMerge merges src into dst recursively (objects merge, everything
// else replaces), as Elasticsearch's partial update does.
func deepMerge(dst, src map[string]any) (changed bool) {
	for k, sv := range src {
		if sm, ok := sv.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				if deepMerge(dm, sm) {
					changed = true
				}
				continue
			}
		}
		if dv, ok := dst[k]; !ok || !jsonEqual(dv, sv) {
			changed = true
		}
		dst[k] = deepCopy(sv)
	}
	return changed
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

func jsonEqual(a, b any) bool {
	ab, err1 := json.Marshal(a)
	bb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}
