package fakees

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Field kinds the fake tracks per index, as Elasticsearch's dynamic
// mapping would fix them: an object, a number (long or double), a boolean,
// or a string type by its name (keyword, text, ip, date: they all take any
// scalar in the cases the pipeline meets).
const (
	kindObject = "object"
	kindLong   = "long"
	kindDouble = "double"
	kindBool   = "boolean"
)

// dynamicStringType is the type a new string field gets: the first
// dynamic template for match_mapping_type "string" without a name match,
// else text (Elasticsearch's default).
func dynamicStringType(mappings map[string]any) string {
	dts, _ := mappings["dynamic_templates"].([]any)
	for _, dt := range dts {
		named, _ := dt.(map[string]any)
		for _, v := range named {
			d, _ := v.(map[string]any)
			if d["match_mapping_type"] != "string" || d["match"] != nil || d["path_match"] != nil {
				continue
			}
			if m, _ := d["mapping"].(map[string]any); m != nil {
				if t, _ := m["type"].(string); t != "" {
					return t
				}
			}
		}
	}
	return "text"
}

// mappingKinds reads the kinds a template's "properties" declare.
func mappingKinds(props any, prefix string, into map[string]string) {
	m, _ := props.(map[string]any)
	for name, v := range m {
		f, _ := v.(map[string]any)
		path := prefix + name
		if sub, ok := f["properties"]; ok {
			into[path] = kindObject
			mappingKinds(sub, path+".", into)
			continue
		}
		switch t, _ := f["type"].(string); t {
		case "long", "integer", "short", "byte", "unsigned_long":
			into[path] = kindLong
		case "double", "float", "half_float", "scaled_float":
			into[path] = kindDouble
		case "boolean":
			into[path] = kindBool
		case "object", "nested", "flattened":
			into[path] = kindObject
		case "":
		default:
			into[path] = t
		}
	}
}

// checkMapping checks src against the index's field kinds and, if it fits,
// adds the kinds it introduces (dynamic mapping). It returns the mapping
// error Elasticsearch would give, or nil.
func (idx *index) checkMapping(src []byte) *errDetail {
	if idx.kinds == nil {
		idx.kinds = map[string]string{}
		mappingKinds(idx.mappings["properties"], "", idx.kinds)
		idx.stringType = dynamicStringType(idx.mappings)
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	var doc map[string]any
	if dec.Decode(&doc) != nil {
		return nil // checkObject reports malformed documents
	}
	added := map[string]string{}
	if d := idx.walk(doc, "", added); d != nil {
		return d
	}
	for p, k := range added {
		idx.kinds[p] = k
	}
	return nil
}

func (idx *index) kind(path string, added map[string]string) string {
	if k, ok := added[path]; ok {
		return k
	}
	return idx.kinds[path]
}

func (idx *index) walk(obj map[string]any, prefix string, added map[string]string) *errDetail {
	names := make([]string, 0, len(obj))
	for n := range obj {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		v := obj[name]
		// A dotted name is an object path: "a.b" is {"a":{"b":…}}.
		parts := strings.Split(name, ".")
		path := prefix
		for i, p := range parts[:len(parts)-1] {
			path += p
			switch k := idx.kind(path, added); k {
			case "":
				added[path] = kindObject
			case kindObject:
			default:
				return &errDetail{Type: "mapper_parsing_exception", Reason: fmt.Sprintf(
					"Could not dynamically add mapping for field [%s]. Existing mapping for [%s] must be of type object but found [%s].",
					prefix+strings.Join(parts[:i+2], "."), path, k)}
			}
			path += "."
		}
		path += parts[len(parts)-1]
		if d := idx.value(path, v, added); d != nil {
			return d
		}
	}
	return nil
}

func (idx *index) value(path string, v any, added map[string]string) *errDetail {
	have := idx.kind(path, added)
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		for _, e := range x {
			if d := idx.value(path, e, added); d != nil {
				return d
			}
		}
		return nil
	case map[string]any:
		switch have {
		case "":
			added[path] = kindObject
		case kindObject:
		default:
			return &errDetail{Type: "mapper_parsing_exception", Reason: fmt.Sprintf(
				"failed to parse field [%s] of type [%s]", path, have)}
		}
		return idx.walk(x, path+".", added)
	}
	if have == kindObject {
		return &errDetail{Type: "mapper_parsing_exception", Reason: fmt.Sprintf(
			"object mapping for [%s] tried to parse field [%s] as object, but found a concrete value", path, path[strings.LastIndexByte(path, '.')+1:])}
	}
	if have == "" {
		switch x := v.(type) {
		case json.Number:
			if strings.ContainsAny(x.String(), ".eE") {
				added[path] = kindDouble
			} else {
				added[path] = kindLong
			}
		case bool:
			added[path] = kindBool
		default:
			added[path] = idx.stringType
		}
		return nil
	}
	if have == kindLong || have == kindDouble {
		ok := true
		switch x := v.(type) {
		case bool:
			ok = false
		case string:
			_, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			ok = err == nil
		}
		if !ok {
			return &errDetail{Type: "mapper_parsing_exception", Reason: fmt.Sprintf(
				"failed to parse field [%s] of type [%s] in document", path, have)}
		}
	}
	return nil
}
