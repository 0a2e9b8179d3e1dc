// Package pathguard decides which files an agent may read. Write access to
// etcd must not mean reading any file on every host: the agent's
// [agent] allowed_paths (globs, ** for any depth, default /var/log/**)
// bounds what a collect config may name, and every file is checked again
// after it is opened, by the real path of the open descriptor, so neither
// ".." nor a symlink can lead outside.
package pathguard

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Guard holds the allowed path patterns.
type Guard struct {
	patterns []string
}

// New validates patterns (absolute, well-formed globs; relative ones are
// taken from the working directory) and returns a Guard.
func New(patterns []string) (*Guard, error) {
	g := &Guard{}
	for _, p := range patterns {
		if !filepath.IsAbs(p) {
			abs, err := filepath.Abs(p)
			if err != nil {
				return nil, fmt.Errorf("allowed path %q: %w", p, err)
			}
			p = abs
		}
		p = filepath.Clean(p)
		if !doublestar.ValidatePattern(p) {
			return nil, fmt.Errorf("allowed path %q is not a valid glob", p)
		}
		g.patterns = append(g.patterns, p)
	}
	return g, nil
}

// Patterns returns the absolute patterns, for messages.
func (g *Guard) Patterns() []string { return g.patterns }

// Allowed reports whether the file path (cleaned, no globs) is allowed.
func (g *Guard) Allowed(path string) bool {
	path = filepath.Clean(path)
	for _, p := range g.patterns {
		if ok, _ := doublestar.Match(p, path); ok {
			return true
		}
	}
	return false
}

// CheckEntry reports an error if a collect entry's path (a file or a glob,
// already cleaned, so ".." is resolved) could name a file outside the
// allowlist. Glob characters in the entry are matched literally: an entry
// is allowed only if the allowlist covers every file it could match.
func (g *Guard) CheckEntry(path string) error {
	if g.Allowed(path) {
		return nil
	}
	return fmt.Errorf("path %q is outside [agent] allowed_paths (%s)", path, strings.Join(g.patterns, ", "))
}

// CheckOpen verifies an open file by where its descriptor really points
// (symlinks resolved), so a symlink swapped in cannot escape the allowlist.
func (g *Guard) CheckOpen(f *os.File) error {
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		// No /proc: fall back to resolving the name.
		if real, err = filepath.EvalSymlinks(f.Name()); err != nil {
			return fmt.Errorf("resolving %s: %w", f.Name(), err)
		}
	}
	real = strings.TrimSuffix(real, " (deleted)")
	if !g.Allowed(real) {
		if real != f.Name() {
			return fmt.Errorf("%s resolves to %s, outside [agent] allowed_paths (%s)", f.Name(), real, strings.Join(g.patterns, ", "))
		}
		return fmt.Errorf("%s is outside [agent] allowed_paths (%s)", real, strings.Join(g.patterns, ", "))
	}
	return nil
}
