package pathguard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEntries(t *testing.T) {
	g, err := New([]string{"/var/log/**", "/srv/app/*.log"})
	if err != nil {
		t.Fatal(err)
	}
	f := func(path string, ok bool) {
		t.Helper()
		err := g.CheckEntry(filepath.Clean(path))
		if (err == nil) != ok {
			t.Errorf("CheckEntry(%q) = %v, want allowed=%v", path, err, ok)
		}
	}
	f("/var/log/nginx/access.log", true)
	f("/var/log/app/*.log", true)
	f("/var/log/**/x.log", true)
	f("/srv/app/a.log", true)
	f("/srv/app/sub/a.log", false)
	f("/etc/passwd", false)
	f("/var/log/../../etc/shadow", false) // cleaned before the check
	f("/var/*/x.log", false)              // could match /var/lib/x.log
	f("/var/logs/x.log", false)
	if err := g.CheckEntry("/etc/passwd"); !strings.Contains(err.Error(), "outside [agent] allowed_paths (/var/log/**, /srv/app/*.log)") {
		t.Errorf("message: %v", err)
	}
}

func TestSymlinkEscapeRefused(t *testing.T) {
	root := t.TempDir()
	logs := filepath.Join(root, "logs")
	secret := filepath.Join(root, "secret")
	os.Mkdir(logs, 0o755)
	os.Mkdir(secret, 0o755)
	os.WriteFile(filepath.Join(secret, "shadow"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(logs, "ok.log"), []byte("x"), 0o644)
	os.Symlink(filepath.Join(secret, "shadow"), filepath.Join(logs, "evil.log"))
	os.Symlink(secret, filepath.Join(logs, "dirlink"))
	g, err := New([]string{logs + "/**"})
	if err != nil {
		t.Fatal(err)
	}
	open := func(p string) error {
		t.Helper()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return g.CheckOpen(f)
	}
	if err := open(filepath.Join(logs, "ok.log")); err != nil {
		t.Errorf("plain file refused: %v", err)
	}
	// The entry paths look allowed; the files they open are not.
	for _, p := range []string{filepath.Join(logs, "evil.log"), filepath.Join(logs, "dirlink", "shadow")} {
		if g.CheckEntry(p) != nil {
			t.Fatalf("entry %s should pass the textual check", p)
		}
		err := open(p)
		if err == nil || !strings.Contains(err.Error(), "resolves to "+filepath.Join(secret, "shadow")) {
			t.Errorf("symlink escape via %s not refused: %v", p, err)
		}
	}
}

func TestBadPatterns(t *testing.T) {
	if _, err := New([]string{"/var/log/[a"}); err == nil {
		t.Error("invalid glob accepted")
	}
	g, err := New([]string{"rel/**"})
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if !g.Allowed(filepath.Join(wd, "rel", "x.log")) {
		t.Error("relative pattern not resolved against the working directory")
	}
}
