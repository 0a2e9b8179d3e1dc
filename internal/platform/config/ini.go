// Package config loads the daemons' ini files strictly: every key must be
// known, every value must parse, and every error names the file, the line,
// the section and the key, so a typo stops the daemon at start instead of
// silently falling back to a default.
package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/ini.v1"
)

// iniFile is a parsed ini file plus the bookkeeping needed for strict
// decoding: which keys were read (the rest are unknown) and where each key
// sits in the file (for error messages).
type iniFile struct {
	path  string
	f     *ini.File
	lines map[string]int // "section\x00key" or "section" -> 1-based line
	used  map[string]bool
	errs  []error
	// eff is every setting read, in the order first read, with its
	// effective value (Settings).
	eff   []Setting
	effAt map[string]int
}

// Setting is one effective setting: its value after defaults and
// parsing, secrets redacted, and the line that set it (0: the default).
type Setting struct {
	Section, Key, Value string
	Line                int
}

// note records the effective value of section.key.
func (c *iniFile) note(section, key, value string) {
	if c.effAt == nil {
		c.effAt = map[string]int{}
	}
	st := Setting{Section: section, Key: key, Value: value, Line: c.lines[lineKey(section, key)]}
	if i, ok := c.effAt[lineKey(section, key)]; ok {
		c.eff[i] = st
		return
	}
	c.effAt[lineKey(section, key)] = len(c.eff)
	c.eff = append(c.eff, st)
}

// Str returns a string value or def when unset.
func (c *iniFile) Str(section, key, def string) string {
	v := c.strValue(section, key, def)
	c.note(section, key, v)
	return v
}

// Int parses an integer in [min, max].
func (c *iniFile) Int(section, key string, def, min, max int) int {
	v := c.intValue(section, key, def, min, max)
	c.note(section, key, strconv.Itoa(v))
	return v
}

// Duration parses a Go duration ("5s", "250ms"); a bare integer means
// seconds.
func (c *iniFile) Duration(section, key string, def, min, max time.Duration) time.Duration {
	v := c.durationValue(section, key, def, min, max)
	c.note(section, key, v.String())
	return v
}

// Bool parses true/false (and 1/0, yes/no, on/off).
func (c *iniFile) Bool(section, key string, def bool) bool {
	v := c.boolValue(section, key, def)
	c.note(section, key, strconv.FormatBool(v))
	return v
}

// Enum returns one of allowed (case-insensitive, normalised to lower case).
func (c *iniFile) Enum(section, key, def string, allowed ...string) string {
	v := c.enumValue(section, key, def, allowed...)
	c.note(section, key, v)
	return v
}

// List splits a value on ';' or ',' and drops empty items.
func (c *iniFile) List(section, key string, def []string) []string {
	v := c.listValue(section, key, def)
	c.note(section, key, strings.Join(v, ", "))
	return v
}

func lineKey(section, key string) string { return section + "\x00" + key }

// loadINI parses path. Syntax errors and duplicate keys are reported with
// their line number.
func loadINI(path string) (*iniFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return parseINI(path, data)
}

func parseINI(path string, data []byte) (*iniFile, error) {
	c := &iniFile{path: path, lines: map[string]int{}, used: map[string]bool{}}
	if err := c.scanLines(data); err != nil {
		return nil, err
	}
	f, err := ini.LoadSources(ini.LoadOptions{
		// "a;b" stays one value; "x = 1 ; note" is a value and a comment.
		SpaceBeforeInlineComment: true,
	}, data)
	if err != nil {
		return nil, c.syntaxError(data, err)
	}
	c.f = f
	return c, nil
}

// scanLines records the line of every section and key, and rejects keys
// given twice in one section (ini.v1 would silently keep the last one).
func (c *iniFile) scanLines(data []byte) error {
	// ini.v1 drops a UTF-8 byte order mark; so must we, or the first
	// section header would not be recognised.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	section := ini.DefaultSection
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			// Name the section as ini.v1 does: up to the last ']',
			// untrimmed.
			if end := strings.LastIndexByte(line, ']'); end > 0 {
				section = line[1:end]
				if _, ok := c.lines[section]; !ok {
					c.lines[section] = n
				}
			}
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			continue // ini.v1 reports it below
		}
		key := strings.TrimSpace(line[:i])
		lk := lineKey(section, key)
		if first, dup := c.lines[lk]; dup {
			return fmt.Errorf("%s:%d: [%s] %s: duplicate key (first set on line %d)", c.path, n, section, key, first)
		}
		c.lines[lk] = n
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: reading: %w", c.path, err)
	}
	return nil
}

// syntaxError prefixes an ini.v1 parse error with the line it is about;
// ini.v1 quotes the offending line ("unclosed section: [etcd") but not its
// line number. A line equal to the quoted text wins over one that merely
// contains it (say, a comment quoting the same text further up).
//
// The line's text is never repeated in the error: it may hold a secret (a
// password whose line lost its "="), and the line number is enough.
func (c *iniFile) syntaxError(data []byte, err error) error {
	msg := strings.TrimSpace(err.Error())
	kind, frag, _ := strings.Cut(msg, ": ")
	if frag = strings.TrimSpace(frag); frag != "" {
		lines := strings.Split(string(data), "\n")
		for _, exact := range []bool{true, false} {
			for n, l := range lines {
				if l = strings.TrimSpace(l); l == frag || !exact && strings.Contains(l, frag) {
					return fmt.Errorf("%s:%d: syntax error: %s", c.path, n+1, kind)
				}
			}
		}
	}
	return fmt.Errorf("%s: syntax error: %s", c.path, kind)
}

func (c *iniFile) where(section, key string) string {
	if n, ok := c.lines[lineKey(section, key)]; ok {
		return fmt.Sprintf("%s:%d: [%s] %s", c.path, n, section, key)
	}
	return fmt.Sprintf("%s: [%s] %s", c.path, section, key)
}

func (c *iniFile) errorf(section, key, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", c.where(section, key), fmt.Sprintf(format, args...)))
}

// raw returns the value of section/key and whether it was set. Reading a key
// marks it known.
func (c *iniFile) raw(section, key string) (string, bool) {
	c.used[lineKey(section, key)] = true
	s, err := c.f.GetSection(section)
	if err != nil || !s.HasKey(key) {
		return "", false
	}
	return strings.TrimSpace(s.Key(key).String()), true
}

// strValue is Str without noting the setting.
func (c *iniFile) strValue(section, key, def string) string {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	return v
}

// intValue is Int without noting the setting.
func (c *iniFile) intValue(section, key string, def, min, max int) int {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	n, err := parseSize(v)
	if errors.Is(err, strconv.ErrRange) {
		c.errorf(section, key, "%q is out of range [%d, %d]", v, min, max)
		return def
	}
	if err != nil {
		c.errorf(section, key, "%q is not an integer", v)
		return def
	}
	if n < int64(min) || n > int64(max) {
		c.errorf(section, key, "%d is out of range [%d, %d]", n, min, max)
		return def
	}
	return int(n)
}

// parseSize accepts a plain integer or one with a KiB/MiB/GiB (or KB/MB/GB,
// meaning the same powers of two) suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	u := strings.ToUpper(v)
	for _, s := range []struct {
		suf string
		m   int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(u, s.suf) {
			mult = s.m
			v = strings.TrimSpace(v[:len(v)-len(s.suf)])
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > math.MaxInt64/mult || n < math.MinInt64/mult {
		return 0, &strconv.NumError{Func: "parseSize", Num: v, Err: strconv.ErrRange}
	}
	return n * mult, nil
}

// durationValue is Duration without noting the setting.
func (c *iniFile) durationValue(section, key string, def, min, max time.Duration) time.Duration {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil && !errors.Is(nerr, strconv.ErrRange) {
			c.errorf(section, key, "%q is not a duration (e.g. 5s, 250ms)", v)
			return def
		}
		// Seconds that overflow a Duration must not wrap into range.
		if nerr != nil || n > int64(math.MaxInt64/time.Second) || n < int64(math.MinInt64/time.Second) {
			c.errorf(section, key, "%q is out of range [%s, %s]", v, min, max)
			return def
		}
		d = time.Duration(n) * time.Second
	}
	if d < min || d > max {
		c.errorf(section, key, "%s is out of range [%s, %s]", d, min, max)
		return def
	}
	return d
}

// boolValue is Bool without noting the setting.
func (c *iniFile) boolValue(section, key string, def bool) bool {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off":
		return false
	}
	c.errorf(section, key, "%q is not a boolean (true or false)", v)
	return def
}

// enumValue is Enum without noting the setting.
func (c *iniFile) enumValue(section, key, def string, allowed ...string) string {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	lv := strings.ToLower(v)
	for _, a := range allowed {
		if lv == a {
			return a
		}
	}
	c.errorf(section, key, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// listValue is List without noting the setting.
func (c *iniFile) listValue(section, key string, def []string) []string {
	v, ok := c.raw(section, key)
	if !ok {
		return def
	}
	out := SplitList(v)
	if len(out) == 0 {
		c.errorf(section, key, "must not be empty")
		return def
	}
	return out
}

// SplitList splits "a;b, c" into [a b c].
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// HostPorts reads a list of host:port addresses.
func (c *iniFile) HostPorts(section, key string, def []string) []string {
	list := c.List(section, key, def)
	for _, a := range list {
		if strings.Contains(a, "@") {
			// Do not echo it: the part before @ may be a password.
			c.errorf(section, key, "%q: credentials in an address are not allowed (use the username and password keys)", redactURL(a))
			continue
		}
		if err := checkHostPort(a); err != nil {
			c.errorf(section, key, "%q: %v", a, err)
		}
	}
	return list
}

func checkHostPort(a string) error {
	a = strings.TrimPrefix(strings.TrimPrefix(a, "http://"), "https://")
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" {
		return errors.New("missing host")
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// checkListenAddr accepts host:port to listen on; port 0 picks a free one.
func checkListenAddr(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("want host:port (empty host listens on every interface)")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// Fail records a validation error about section/key found after decoding.
func (c *iniFile) Fail(section, key, format string, args ...any) {
	c.errorf(section, key, format, args...)
}

// finish reports unknown sections and keys together with every value error,
// so an operator fixes the whole file in one go.
func (c *iniFile) finish() error {
	var unknown []error
	for _, s := range c.f.Sections() {
		name := s.Name()
		if name == ini.DefaultSection && len(s.Keys()) == 0 {
			continue
		}
		known := false
		for k := range c.used {
			if strings.HasPrefix(k, name+"\x00") {
				known = true
				break
			}
		}
		if !known {
			if name == ini.DefaultSection {
				// Not "[DEFAULT] key": the file has no such section.
				for _, k := range s.Keys() {
					where := c.path
					if n, ok := c.lines[lineKey(name, k.Name())]; ok {
						where = fmt.Sprintf("%s:%d", c.path, n)
					}
					unknown = append(unknown, fmt.Errorf("%s: %s: key outside any section", where, k.Name()))
				}
				continue
			}
			where := c.path
			if n, ok := c.lines[name]; ok {
				where = fmt.Sprintf("%s:%d", c.path, n)
			}
			unknown = append(unknown, fmt.Errorf("%s: unknown section [%s]", where, name))
			continue
		}
		for _, k := range s.Keys() {
			if !c.used[lineKey(name, k.Name())] {
				unknown = append(unknown, fmt.Errorf("%s: unknown key", c.where(name, k.Name())))
			}
		}
	}
	return errors.Join(append(unknown, c.errs...)...)
}

// WriteSettings writes settings as an ini file would hold them, section by
// section in the order first read, each with where its value came from:
// the file's line, or the default. Secrets are already redacted.
func WriteSettings(w io.Writer, path string, settings []Setting) error {
	order := []string{}
	by := map[string][]Setting{}
	for _, s := range settings {
		if _, ok := by[s.Section]; !ok {
			order = append(order, s.Section)
		}
		by[s.Section] = append(by[s.Section], s)
	}
	width := 0
	for _, s := range settings {
		width = max(width, len(s.Key)+3+len(s.Value))
	}
	for i, sec := range order {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "[%s]\n", sec)
		for _, s := range by[sec] {
			from := "default"
			if s.Line > 0 {
				from = fmt.Sprintf("%s:%d", path, s.Line)
			}
			kv := s.Key + " = " + s.Value
			if _, err := fmt.Fprintf(w, "%-*s  ; %s\n", width, kv, from); err != nil {
				return err
			}
		}
	}
	return nil
}
