// Package pathguard decides which files an agent may read. Write access to
// etcd must not mean reading any file on every host: the agent's
// [agent] allowed_paths (globs, ** for any depth, default /var/log/**)
// bounds what a collect config may name, and every file is checked again
// after it is opened, by the real path of the open descriptor, so neither
// ".." nor a symlink can lead outside.
package pathguard

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/bmatcuk/doublestar/v4"
)

// Guard holds the allowed path patterns.
type Guard struct {
	patterns []string
	// HardLinks lets Open read files with more than one hard link.
	HardLinks bool
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

// ErrNotRegular is returned for a FIFO, device, socket or directory.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading the way every tailed file must be opened:
// without blocking (a FIFO or a device in a tailed path would otherwise
// hang the open, and with it config reloads and shutdown), refusing
// anything but a regular file, a file with more than one hard link (unless
// HardLinks), and a file whose real path is outside the allowlist. A nil
// Guard allows every path but checks the rest.
func (g *Guard) Open(path string) (*os.File, os.FileInfo, error) {
	// Where the path leads is checked before it is opened as well: a file
	// outside the allowlist is not to be touched at all (opening can have
	// effects of its own: a device, an automount, an audit rule). The check
	// after the open still decides, as a symlink can be swapped between.
	if g != nil {
		if real, err := filepath.EvalSymlinks(path); err == nil && !g.Allowed(real) {
			if real != filepath.Clean(path) {
				return nil, nil, fmt.Errorf("%s resolves to %s, outside [agent] allowed_paths (%s)", path, real, strings.Join(g.patterns, ", "))
			}
			return nil, nil, fmt.Errorf("%s is outside [agent] allowed_paths (%s)", real, strings.Join(g.patterns, ", "))
		}
	}
	fd, err := syscall.Open(path, openFlags, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return g.check(fd, path)
}

// OpenAt opens the entry name of the directory dir (an open descriptor, so
// the directory cannot be swapped between listing and opening) without
// following a symlink, with Open's checks. It is for files found next to a
// tailed path (rotated copies), which were never named in a collect config.
func (g *Guard) OpenAt(dir *os.File, name string) (*os.File, os.FileInfo, error) {
	p := filepath.Join(dir.Name(), name)
	if strings.ContainsRune(name, '/') {
		return nil, nil, fmt.Errorf("%s: not a directory entry", p)
	}
	fd, err := syscall.Openat(int(dir.Fd()), name, openFlags|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return g.check(fd, p)
}

const openFlags = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC | syscall.O_NOCTTY

// check vets a descriptor opened non-blocking and returns it as a blocking
// *os.File.
func (g *Guard) check(fd int, path string) (*os.File, os.FileInfo, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("%s is %w", path, ErrNotRegular)
	}
	if st.Nlink > 1 && (g == nil || !g.HardLinks) {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("%s has %d hard links: refused (a link can make any file on the file system look like a log; set [agent] allow_hard_links = true to read it)", path, st.Nlink)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, nil, fmt.Errorf("setting %s blocking: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	if g != nil {
		if err := g.CheckOpen(f); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("stat %s: %w", path, err)
	}
	return f, fi, nil
}
