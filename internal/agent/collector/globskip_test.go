package collector

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A glob rescan is skipped only while the pattern's directory is
// unchanged since a scan it predates by more than a second, and never for
// longer than globFullScan.
func TestGlobSkipOnlyWhileDirectoryUnchanged(t *testing.T) {
	dir := t.TempDir()
	pattern := filepath.Join(dir, "*.log")
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir, old, old); err != nil {
		t.Fatal(err)
	}
	var g globSkip
	now := time.Now()
	if g.unchanged(pattern, now) {
		t.Fatal("first look skipped the scan")
	}
	if !g.unchanged(pattern, now.Add(2*time.Second)) {
		t.Fatal("unchanged directory rescanned")
	}
	if g.unchanged(pattern, now.Add(globFullScan+time.Second)) {
		t.Fatal("no full scan after globFullScan")
	}
	if err := os.WriteFile(filepath.Join(dir, "new.log"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now()
	if g.unchanged(pattern, later) {
		t.Fatal("a new file in the directory did not force a scan")
	}
	// Its mtime is within a second of that scan: not trusted yet.
	if g.unchanged(pattern, later.Add(time.Millisecond)) {
		t.Fatal("a directory changed within a second of the scan was trusted")
	}
	if g.unchanged(filepath.Join(dir, "*", "*.log"), later) {
		t.Fatal("a pattern with a wildcard directory skipped its scan")
	}
}
