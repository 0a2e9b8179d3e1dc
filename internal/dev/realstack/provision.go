// Package realstack assembles and runs the real servers the pipeline is
// tested against: Apache Kafka (KRaft, one node or a three-node cluster) and
// Elasticsearch 7.17 (one node with HTTP), both from jars published on Maven
// Central. The poms and the search node's launcher live in
// scripts/realstack; Maven resolves them into an ignored cache folder once
// (offline and seconds afterwards). Servers run as separate JVM processes,
// are started and stopped by PID, log to files, and are polled until ready.
//
// It is used by devstack's "real" subcommands (the demo's real variant) and
// by the test helpers in internal/dev/testutil.
package realstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// Versions pinned by the poms (kept here for messages and the README).
const (
	KafkaVersion = "4.1.1"
	ESVersion    = "7.17.29"
)

// Dist is a provisioned set of server jars.
type Dist struct {
	Src   string // scripts/realstack: poms, launcher source, log configs
	Cache string // resolved jars and compiled classes
	Java  string // java executable
}

// KafkaClasspath is the broker's class path.
func (d *Dist) KafkaClasspath() string { return filepath.Join(d.Cache, "kafka", "lib") + "/*" }

// ESClasspath is the search node's class path (jars plus the launcher).
func (d *Dist) ESClasspath() string {
	return filepath.Join(d.Cache, "es", "lib") + "/*:" + filepath.Join(d.Cache, "es", "classes")
}

// ErrNoJava means the machine has no Java or Maven: callers outside CI may
// skip what needs the real servers.
var ErrNoJava = errors.New("java and mvn are needed for the real servers")

// Provision resolves the poms under src into cache unless cache already
// holds what the current poms name (a stamp per component records their
// hash). Maven's own repository is kept under cache/m2. A file lock makes
// concurrent callers (parallel test packages) wait for one another. What
// Maven prints goes to out.
func Provision(ctx context.Context, src, cache string, out io.Writer) (*Dist, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, ErrNoJava
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		return nil, ErrNoJava
	}
	src, err = filepath.Abs(src)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", src, err)
	}
	cache, err = filepath.Abs(cache)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", cache, err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache %s: %w", cache, err)
	}
	lock, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening provisioning lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	d := &Dist{Src: src, Cache: cache, Java: java}
	if err := d.resolve(ctx, "kafka", nil, out); err != nil {
		return nil, err
	}
	if err := d.resolve(ctx, "es", d.compileLauncher, out); err != nil {
		return nil, err
	}
	return d, nil
}

// resolve copies a component's dependencies into cache/<name>/lib, then runs
// post (if any), and records the stamp.
func (d *Dist) resolve(ctx context.Context, name string, post func(context.Context, io.Writer) error, out io.Writer) error {
	srcDir := filepath.Join(d.Src, name)
	sum, err := hashTree(srcDir)
	if err != nil {
		return fmt.Errorf("hashing %s: %w", srcDir, err)
	}
	dir := filepath.Join(d.Cache, name)
	stamp := filepath.Join(dir, "stamp")
	if b, err := os.ReadFile(stamp); err == nil && string(b) == sum {
		return nil
	}
	lib := filepath.Join(dir, "lib")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clearing %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	fmt.Fprintf(out, "realstack: resolving %s with Maven into %s\n", name, lib)
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-Dstyle.color=never", "-f", filepath.Join(srcDir, "pom.xml"),
		"-Dmaven.repo.local="+filepath.Join(d.Cache, "m2"),
		"dependency:copy-dependencies", "-DoutputDirectory="+lib)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, &buf), io.MultiWriter(out, &buf)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("resolving %s with maven: %w\n%s", name, err, lastLines(buf.String(), 20))
	}
	if post != nil {
		if err := post(ctx, out); err != nil {
			return err
		}
	}
	if err := os.WriteFile(stamp, []byte(sum), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", stamp, err)
	}
	return nil
}

func (d *Dist) compileLauncher(ctx context.Context, out io.Writer) error {
	javac := filepath.Join(filepath.Dir(d.Java), "javac")
	if _, err := os.Stat(javac); err != nil {
		if javac, err = exec.LookPath("javac"); err != nil {
			return fmt.Errorf("compiling the search node launcher: javac not found: %w", err)
		}
	}
	classes := filepath.Join(d.Cache, "es", "classes")
	cmd := exec.CommandContext(ctx, javac, "-nowarn", "-d", classes, "-cp", filepath.Join(d.Cache, "es", "lib")+"/*",
		filepath.Join(d.Src, "es", "src", "EsNode.java"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compiling the search node launcher: %w", err)
	}
	return nil
}

// hashTree hashes the names and contents of the regular files under dir.
func hashTree(dir string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

func lastLines(s string, n int) string {
	lines := bytes.Split([]byte(s), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Locate finds scripts/realstack and .cache/realstack in the repository
// that contains the working directory.
func Locate() (src, cache string, err error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", "", fmt.Errorf("finding the working directory: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "realstack", "kafka", "pom.xml")); err == nil {
			return filepath.Join(dir, "scripts", "realstack"), filepath.Join(dir, ".cache", "realstack"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", "", errors.New("scripts/realstack not found above the working directory")
		}
		dir = parent
	}
}
