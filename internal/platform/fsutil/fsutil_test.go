package fsutil

import (
	"os"
	"path/filepath"
	"testing"
)

// Each write replaces the file whole, with its mode, leaves no temp file
// behind, and (keeping) moves the version before to prev.
func TestWriteAtomicKeeping(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	for i, v := range []string{"one", "two", "three"} {
		if err := WriteAtomicKeeping(p, "state.json.prev", []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != v {
			t.Fatalf("write %d: %q, %v", i, got, err)
		}
		if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode().Perm())
		}
		prev, err := os.ReadFile(filepath.Join(dir, "state.json.prev"))
		switch {
		case i == 0 && !os.IsNotExist(err):
			t.Fatalf("a previous version before any: %q, %v", prev, err)
		case i > 0 && string(prev) != []string{"one", "two", "three"}[i-1]:
			t.Fatalf("write %d: previous %q, %v", i, prev, err)
		}
	}
	if err := WriteAtomic(filepath.Join(dir, "other"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Fatalf("%d files, want state.json, its previous version and other: %v", len(ents), ents)
	}
}
