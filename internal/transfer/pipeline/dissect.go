package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// dissect is a compiled dissect pattern (the Filebeat/Logstash syntax):
// literal text and %{key} fields. %{} and %{?key} skip a value, %{+key}
// appends to key (joined with a space), and %{key->} also skips repeats of
// the delimiter that follows (padding).
type dissect struct {
	prefix string
	fields []dissectField
}

type dissectField struct {
	key    string
	skip   bool
	append bool
	pad    bool
	delim  string // the literal after the field ("" for the last one: the rest)
}

// maxDissectFields bounds a pattern.
const maxDissectFields = 128

func parseDissect(p string) (*dissect, error) {
	d := &dissect{}
	i := strings.Index(p, "%{")
	if i < 0 {
		return nil, errors.New("pattern has no %{field}")
	}
	d.prefix, p = p[:i], p[i:]
	for len(p) > 0 {
		if !strings.HasPrefix(p, "%{") {
			return nil, fmt.Errorf("expected %%{ at %q", p)
		}
		end := strings.IndexByte(p, '}')
		if end < 0 {
			return nil, errors.New("unclosed %{")
		}
		spec := p[2:end]
		p = p[end+1:]
		f := dissectField{}
		if strings.HasSuffix(spec, "->") {
			f.pad, spec = true, strings.TrimSuffix(spec, "->")
		}
		switch {
		case spec == "":
			f.skip = true
		case spec[0] == '?':
			f.skip, f.key = true, spec[1:]
		case spec[0] == '+':
			f.append, f.key = true, spec[1:]
		case spec[0] == '*' || spec[0] == '&':
			return nil, fmt.Errorf("%%{%s}: reference keys are not supported", spec)
		default:
			f.key = spec
		}
		if !f.skip && !validKey(f.key) {
			return nil, fmt.Errorf("%%{%s}: field names are letters, digits and _ . - @", spec)
		}
		next := strings.Index(p, "%{")
		if next < 0 {
			next = len(p)
		}
		f.delim, p = p[:next], p[next:]
		if f.delim == "" && len(p) > 0 {
			return nil, fmt.Errorf("%%{%s} is followed by another field with nothing between them", spec)
		}
		d.fields = append(d.fields, f)
		if len(d.fields) > maxDissectFields {
			return nil, fmt.Errorf("more than %d fields", maxDissectFields)
		}
	}
	return d, nil
}

// apply splits s, calling set for each field value (appends joined).
func (d *dissect) apply(s []byte, set func(key string, v []byte, appendTo bool)) error {
	if !bytes.HasPrefix(s, []byte(d.prefix)) {
		return fmt.Errorf("the value does not start with %q", d.prefix)
	}
	s = s[len(d.prefix):]
	for _, f := range d.fields {
		var v []byte
		if f.delim == "" {
			v, s = s, nil
		} else {
			i := bytes.Index(s, []byte(f.delim))
			if i < 0 {
				return fmt.Errorf("%q not found after %s", f.delim, f.name())
			}
			v, s = s[:i], s[i+len(f.delim):]
			if f.pad {
				for bytes.HasPrefix(s, []byte(f.delim)) {
					s = s[len(f.delim):]
				}
			}
		}
		if !f.skip {
			set(f.key, v, f.append)
		}
	}
	return nil
}

func (f dissectField) name() string {
	if f.key == "" {
		return "%{}"
	}
	return "%{" + f.key + "}"
}

func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}
