package document

import (
	"bytes"
	"slices"
	"strconv"
	"time"

	"github.com/logpipe/logpipe/internal/platform/jsonenc"
)

// A document's _source has one shape: nested objects, never a dotted key
// ("http":{"request":{"method":…}}, not "http.request.method"), so a
// field's place does not depend on who set it (the transfer, a collect
// entry's fields, a pipeline) and Kibana, scripts and reindexing see what
// was sent. What the parts give as dotted names is nested here: every
// value becomes a leaf at its path, the leaves are sorted so that an
// object's members lie together, and the objects are written around them.

// Ranks: who set a leaf. When two leaves claim one path, or a value sits
// where another leaf needs an object ("a" and "a.b"), the higher rank
// keeps it: the transfer's own fields, then the collect entry's, then what
// a pipeline read from the line.
const (
	rankParsed uint8 = iota + 1
	rankFields
	rankOwn
)

// Kinds of leaf value, written at the end so that nothing is copied twice.
const (
	kindRaw  uint8 = iota // b is a JSON value
	kindStr               // b is a string, escaped when written
	kindInt               // n
	kindTime              // t, as an RFC 3339 string
	kindList              // b is a comma-separated list, written as an array of strings
)

// leaf is one value at a path of a document.
type leaf struct {
	path []byte // names joined by '.', each as escaped JSON string content
	b    []byte
	n    int64
	t    time.Time
	kind uint8
	rank uint8
	drop bool
}

// cmpPath orders paths name by name: '.' sorts before every other byte,
// so an object's members follow it together ("a", "a.b", "a.c", "a0").
func cmpPath(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if x == '.' {
			return -1
		}
		if y == '.' {
			return 1
		}
		return int(x) - int(y)
	}
	return len(a) - len(b)
}

// under reports whether path lies inside the object at obj.
func under(path, obj []byte) bool {
	return len(path) > len(obj) && path[len(obj)] == '.' && bytes.HasPrefix(path, obj)
}

// cleanPath drops empty names from a dotted path ("a..b" is a.b, "a." is
// a): an empty field name is one no engine takes.
func cleanPath(p []byte) []byte {
	if len(p) > 0 && p[0] != '.' && p[len(p)-1] != '.' && !bytes.Contains(p, []byte("..")) {
		return p
	}
	out := make([]byte, 0, len(p))
	for _, s := range bytes.Split(p, []byte{'.'}) {
		if len(s) == 0 {
			continue
		}
		if len(out) > 0 {
			out = append(out, '.')
		}
		out = append(out, s...)
	}
	return out
}

// settle sorts leaves and marks the ones that lose a conflict: of leaves
// at one path the highest rank stays; a value with leaves under it stays
// if its rank is at least theirs (they go), else it goes.
func settle(leaves []leaf) {
	slices.SortStableFunc(leaves, func(a, b leaf) int {
		if c := cmpPath(a.path, b.path); c != 0 {
			return c
		}
		return int(b.rank) - int(a.rank)
	})
	for i := 0; i < len(leaves); i++ {
		l := &leaves[i]
		if l.drop {
			continue
		}
		j := i + 1
		for j < len(leaves) && bytes.Equal(leaves[j].path, l.path) {
			leaves[j].drop = true
			j++
		}
		top, end := uint8(0), j
		for end < len(leaves) && under(leaves[end].path, l.path) {
			top = max(top, leaves[end].rank)
			end++
		}
		if end == j {
			continue
		}
		if l.rank >= top {
			for k := j; k < end; k++ {
				leaves[k].drop = true
			}
			i = end - 1
		} else {
			l.drop = true
		}
	}
}

// appendTree appends the object the settled leaves make.
func appendTree(dst []byte, leaves []leaf) []byte {
	var open [][]byte // names of the objects open below the root
	members := []bool{false}
	comma := func() {
		if members[len(members)-1] {
			dst = append(dst, ',')
		}
		members[len(members)-1] = true
	}
	dst = append(dst, '{')
	for i := range leaves {
		l := &leaves[i]
		if l.drop {
			continue
		}
		names := bytes.Split(l.path, []byte{'.'})
		c := 0
		for c < len(open) && c < len(names)-1 && bytes.Equal(open[c], names[c]) {
			c++
		}
		for len(open) > c {
			dst = append(dst, '}')
			open = open[:len(open)-1]
			members = members[:len(members)-1]
		}
		for _, name := range names[c : len(names)-1] {
			comma()
			dst = append(dst, '"')
			dst = append(dst, name...)
			dst = append(dst, `":{`...)
			open = append(open, name)
			members = append(members, false)
		}
		comma()
		dst = append(dst, '"')
		dst = append(dst, names[len(names)-1]...)
		dst = append(dst, `":`...)
		dst = l.appendValue(dst)
	}
	for range open {
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

func (l *leaf) appendValue(dst []byte) []byte {
	switch l.kind {
	case kindStr:
		return jsonenc.AppendString(dst, l.b)
	case kindInt:
		return strconv.AppendInt(dst, l.n, 10)
	case kindTime:
		dst = append(dst, '"')
		dst = jsonenc.AppendTime(dst, l.t)
		return append(dst, '"')
	case kindList:
		return appendList(dst, l.b)
	}
	return append(dst, l.b...)
}

// appendList writes a comma-separated list as a JSON array of strings
// (each item shown, as strings.Split).
func appendList(dst, list []byte) []byte {
	dst = append(dst, '[')
	for rest := list; ; {
		j := bytes.IndexByte(rest, ',')
		if j < 0 {
			dst = jsonenc.AppendString(dst, rest)
			break
		}
		dst = jsonenc.AppendString(dst, rest[:j])
		dst = append(dst, ',')
		rest = rest[j+1:]
	}
	return append(dst, ']')
}

// fragmentLeaves appends to leaves the members of frag, an object's
// members written as `,"k":v,…` (Parts.Fields, More.Parsed), at rank.
// It stops at anything that is not such a fragment.
func fragmentLeaves(leaves []leaf, frag []byte, prefix string, rank uint8) []leaf {
	for i := 0; i < len(frag); {
		if frag[i] != ',' || i+1 >= len(frag) || frag[i+1] != '"' {
			return leaves
		}
		ks := i + 2
		ke := skipString(frag, i+1)
		if ke < 0 || ke >= len(frag) || frag[ke] != ':' {
			return leaves
		}
		vs := ke + 1
		ve := skipValue(frag, vs)
		if ve < 0 {
			return leaves
		}
		key := frag[ks : ke-1]
		if prefix != "" {
			key = append([]byte(prefix+"."), key...)
		}
		if key = cleanPath(key); len(key) > 0 {
			leaves = append(leaves, leaf{path: key, b: frag[vs:ve], kind: kindRaw, rank: rank})
		}
		i = ve
	}
	return leaves
}

// skipString returns the index just past the JSON string starting at
// b[i] (a quote), or -1.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i],
// or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				if j = skipString(b, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
		j++
	}
	if j == i {
		return -1
	}
	return j
}

// FieldsFragment is a collect entry's fields (record.HeaderFields) as
// Parts.Fields: nested under "fields", or, when root, as they are (dotted
// names, nested with the rest of the document when it is rendered). A
// name with empty parts loses them; of a value and fields under it
// ("a", "a.b") the value stays.
func FieldsFragment(fields map[string]string, root bool) []byte {
	if len(fields) == 0 {
		return nil
	}
	leaves := make([]leaf, 0, len(fields))
	for k, v := range fields {
		quoted := jsonenc.AppendString(nil, k)
		path := cleanPath(quoted[1 : len(quoted)-1])
		if len(path) == 0 {
			continue
		}
		leaves = append(leaves, leaf{path: path, b: []byte(v), kind: kindStr, rank: rankFields})
	}
	if len(leaves) == 0 {
		return nil
	}
	if !root {
		settle(leaves)
		return appendTree([]byte(`,"fields":`), leaves)
	}
	// At the root they settle with the rest of the document, when it is
	// rendered; here only names that cleaned to one path are one field.
	slices.SortFunc(leaves, func(a, b leaf) int { return cmpPath(a.path, b.path) })
	var frag []byte
	for i := range leaves {
		if l := &leaves[i]; i == 0 || !bytes.Equal(l.path, leaves[i-1].path) {
			frag = append(frag, ',', '"')
			frag = append(frag, l.path...)
			frag = append(frag, '"', ':')
			frag = l.appendValue(frag)
		}
	}
	return frag
}
