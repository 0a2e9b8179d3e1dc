// Package fsutil has the one file-system primitive the daemons need for
// state that must survive a crash: replace a file atomically.
package fsutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteAtomic replaces path with data: it writes a temp file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory, so
// after a crash path holds either the old or the new content, never a mix.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	return WriteAtomicKeeping(path, "", data, perm)
}

// WriteAtomicKeeping is WriteAtomic that first renames the current file
// (if any) to prev in the same directory ("": none), so the version before
// stays to fall back on. At every instant path holds the old content, or
// the new, or (between the two renames) nothing while prev holds the old.
func WriteAtomicKeeping(path, prev string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating temp file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if prev != "" {
		if err := os.Rename(path, filepath.Join(dir, prev)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("keeping the previous %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory so a rename in it is durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing dir %s: %w", dir, err)
	}
	return nil
}
