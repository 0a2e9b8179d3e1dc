package fakees

import (
	"encoding/json"
	"strings"
)

// filterPath applies Elasticsearch's filter_path response filtering:
// comma-separated dotted paths, '*' within a name, '**' for any number of
// levels, a leading '-' to exclude; arrays are transparent, and objects
// (and array elements) left empty disappear, so e.g.
// filter_path=items.*.error keeps only the failed items.
func filterPath(b []byte, spec string) []byte {
	var v any
	if decodeJSON(b, &v) != nil {
		return b
	}
	var incl, excl [][]string
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if strings.HasPrefix(f, "-") {
			excl = append(excl, strings.Split(f[1:], "."))
		} else {
			incl = append(incl, strings.Split(f, "."))
		}
	}
	if len(incl) > 0 {
		r, ok := includePaths(v, incl)
		if !ok {
			r = map[string]any{}
		}
		v = r
	}
	if len(excl) > 0 {
		v = excludePaths(v, excl)
	}
	out, err := json.Marshal(v)
	if err != nil {
		return b
	}
	return out
}

// step returns what remains of path p after it matched key k; an empty
// remainder means k itself is selected. No result means no match.
func step(p []string, k string) [][]string {
	if len(p) == 0 {
		return nil
	}
	if p[0] == "**" {
		out := [][]string{p} // ** swallows k
		if len(p) == 1 {
			return append(out, []string{})
		}
		return append(out, step(p[1:], k)...) // ** matches nothing
	}
	if globMatch(p[0], k) {
		return [][]string{p[1:]}
	}
	return nil
}

// remainders splits the paths' results for key k into "selected whole" and
// the remaining paths.
func remainders(paths [][]string, k string) (whole bool, rest [][]string) {
	for _, p := range paths {
		for _, r := range step(p, k) {
			if len(r) == 0 {
				whole = true
			} else {
				rest = append(rest, r)
			}
		}
	}
	return whole, rest
}

func includePaths(v any, paths [][]string) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range x {
			whole, rest := remainders(paths, k)
			if whole {
				out[k] = child
				continue
			}
			if len(rest) == 0 {
				continue
			}
			if c, ok := includePaths(child, rest); ok {
				out[k] = c
			}
		}
		return out, len(out) > 0
	case []any:
		var out []any
		for _, e := range x {
			if c, ok := includePaths(e, paths); ok {
				out = append(out, c)
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}

func excludePaths(v any, paths [][]string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, child := range x {
			whole, rest := remainders(paths, k)
			switch {
			case whole:
			case len(rest) > 0:
				out[k] = excludePaths(child, rest)
			default:
				out[k] = child
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = excludePaths(e, paths)
		}
		return out
	}
	return v
}
