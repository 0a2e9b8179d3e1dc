package pathguard

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
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

func TestOpenRefusesWhatIsNotAPlainAllowedFile(t *testing.T) {
	dir := t.TempDir()
	g, err := New([]string{filepath.Join(dir, "*.log")})
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "a.log")
	if err := os.WriteFile(plain, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pipe.log")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "linked.log")
	if err := os.Link(filepath.Join(dir, "a.log"), linked); err != nil {
		t.Fatal(err)
	}
	single := filepath.Join(dir, "b.log")
	if err := os.WriteFile(single, []byte("y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(dir, "b.log.secret")
	if err := os.WriteFile(outside, []byte("s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(single, filepath.Join(dir, "sym.log")); err != nil {
		t.Fatal(err)
	}

	// A FIFO without a writer would block a plain open forever.
	done := make(chan error, 1)
	go func() { _, _, err := g.Open(fifo); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Fatalf("Open(fifo) = %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(fifo) blocked")
	}
	if _, _, err := (*Guard)(nil).Open("/dev/null"); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Open(/dev/null) = %v, want ErrNotRegular", err)
	}
	if _, _, err := g.Open(plain); err == nil || !strings.Contains(err.Error(), "hard links") {
		t.Fatalf("Open of a file with 2 links = %v, want refused", err)
	}
	g.HardLinks = true
	f, fi, err := g.Open(plain)
	if err != nil {
		t.Fatalf("Open with HardLinks: %v", err)
	}
	if fi.Size() != 2 {
		t.Fatalf("size %d", fi.Size())
	}
	buf := make([]byte, 2)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "x\n" {
		t.Fatalf("read %q, %v", buf, err)
	}
	f.Close()
	g.HardLinks = false

	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if f, _, err := g.OpenAt(d, "b.log"); err != nil {
		t.Fatalf("OpenAt(b.log): %v", err)
	} else {
		f.Close()
	}
	if _, _, err := g.OpenAt(d, "b.log.secret"); err == nil || !strings.Contains(err.Error(), "allowed_paths") {
		t.Fatalf("OpenAt of a sibling outside the allowlist = %v, want refused", err)
	}
	if _, _, err := g.OpenAt(d, "sym.log"); !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("OpenAt(symlink) = %v, want ELOOP (symlinks are not followed)", err)
	}
	if _, _, err := g.OpenAt(d, "../etc/passwd"); err == nil {
		t.Fatal("OpenAt with a path, not a name, accepted")
	}
}

// A symlink in an allowed directory that leads outside is refused without
// the file it leads to being opened: the kernel (inotify IN_OPEN) sees no
// open of it. (An open of the file itself proves the watch works.)
func TestOpenDoesNotTouchWhatASymlinkLeadsOutTo(t *testing.T) {
	root := t.TempDir()
	logs, secret := filepath.Join(root, "logs"), filepath.Join(root, "secret")
	os.Mkdir(logs, 0o755)
	os.Mkdir(secret, 0o755)
	shadow := filepath.Join(secret, "shadow")
	os.WriteFile(shadow, []byte("x\n"), 0o600)
	os.Symlink(shadow, filepath.Join(logs, "evil.log"))
	os.Symlink(secret, filepath.Join(logs, "dirlink"))
	g, err := New([]string{logs + "/**"})
	if err != nil {
		t.Fatal(err)
	}
	opens := testutil.WatchOpens(t, shadow)
	for _, p := range []string{filepath.Join(logs, "evil.log"), filepath.Join(logs, "dirlink", "shadow")} {
		if f, _, err := g.Open(p); err == nil || !strings.Contains(err.Error(), "resolves to "+shadow) {
			if f != nil {
				f.Close()
			}
			t.Errorf("Open(%s) = %v, want refused as resolving to %s", p, err, shadow)
		}
	}
	if n := opens(); n != 0 {
		t.Errorf("%s was opened %d times through symlinks the allowlist refuses", shadow, n)
	}
	if f, _, err := (*Guard)(nil).Open(shadow); err == nil {
		f.Close()
	}
	if n := opens(); n != 1 {
		t.Fatalf("the watch saw %d opens of an open file, want 1", n)
	}
}
