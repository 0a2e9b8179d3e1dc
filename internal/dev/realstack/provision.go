// Package realstack assembles and runs the real servers the pipeline is
// tested against: Apache Kafka (KRaft, one node or a three-node cluster) and
// a search node with HTTP, Elasticsearch 7.17 or OpenSearch 2.19, all from
// jars published on Maven Central. The poms and the search nodes' launchers
// live in scripts/realstack; Maven resolves them into an ignored cache
// folder once (offline and seconds afterwards). Provision resolves Kafka and
// Elasticsearch; OpenSearch only when asked for (ProvisionOpenSearch).
// Servers run as separate JVM processes, are started and stopped by PID, log
// to files, and are polled until ready.
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
	KafkaVersion      = "4.1.1"
	ESVersion         = "7.17.29"
	OpenSearchVersion = "2.19.6"
)

// Search engines (ESOptions.Engine); "" is Elasticsearch.
const (
	Elasticsearch = "elasticsearch"
	OpenSearch    = "opensearch"
)

// searchEngine is what differs between the two search nodes.
type searchEngine struct {
	name      string // Elasticsearch or OpenSearch
	version   string
	component string // folder under scripts/realstack and the cache; PID and log file name
	launcher  string // main class, src/<launcher>.java
	heapMB    int    // default heap
}

func engineOf(name string) (searchEngine, error) {
	switch name {
	case "", Elasticsearch:
		return searchEngine{Elasticsearch, ESVersion, "es", "EsNode", 384}, nil
	case OpenSearch:
		// At rest it uses about 70 MB of heap; 256 MB took a 200k-document
		// bulk load as fast as 384 did, without tripping a breaker.
		return searchEngine{OpenSearch, OpenSearchVersion, "opensearch", "OsNode", 256}, nil
	}
	return searchEngine{}, fmt.Errorf("unknown search engine %q (want %q or %q)", name, Elasticsearch, OpenSearch)
}

// Dist is a provisioned set of server jars.
type Dist struct {
	Src   string // scripts/realstack: poms, launcher source, log configs
	Cache string // resolved jars and compiled classes
	Java  string // java executable
}

// KafkaClasspath is the broker's class path.
func (d *Dist) KafkaClasspath() string { return filepath.Join(d.Cache, "kafka", "lib") + "/*" }

// ESClasspath is the Elasticsearch node's class path (jars plus the
// launcher).
func (d *Dist) ESClasspath() string { return d.classpath("es") }

// SearchClasspath is the class path of engine's node ("" is
// Elasticsearch); OpenSearch's exists once ProvisionOpenSearch has run.
func (d *Dist) SearchClasspath(engine string) (string, error) {
	se, err := engineOf(engine)
	if err != nil {
		return "", err
	}
	return d.classpath(se.component), nil
}

func (d *Dist) classpath(component string) string {
	return filepath.Join(d.Cache, component, "lib") + "/*:" + filepath.Join(d.Cache, component, "classes")
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
	d := &Dist{Src: src, Cache: cache, Java: java}
	err = d.locked(func() error {
		if err := d.resolve(ctx, "kafka", nil, out); err != nil {
			return err
		}
		return d.resolve(ctx, "es", d.compileLauncher("es", "EsNode"), out)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ProvisionOpenSearch resolves scripts/realstack/opensearch into
// cache/opensearch and compiles its launcher, as Provision does for
// Elasticsearch (a no-op when the stamp matches the sources). It is separate
// so that callers needing only Kafka and Elasticsearch never download it.
func (d *Dist) ProvisionOpenSearch(ctx context.Context, out io.Writer) error {
	if _, err := exec.LookPath("mvn"); err != nil {
		return ErrNoJava
	}
	return d.locked(func() error {
		return d.resolve(ctx, "opensearch", d.compileLauncher("opensearch", "OsNode"), out)
	})
}

// provisioned reports whether component has been resolved and built.
func (d *Dist) provisioned(component string) bool {
	_, err := os.Stat(filepath.Join(d.Cache, component, "stamp"))
	return err == nil
}

// locked runs fn holding the cache's file lock, so that concurrent callers
// (parallel test packages) wait for one another.
func (d *Dist) locked(fn func() error) error {
	if err := os.MkdirAll(d.Cache, 0o755); err != nil {
		return fmt.Errorf("creating cache %s: %w", d.Cache, err)
	}
	lock, err := os.OpenFile(filepath.Join(d.Cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("opening provisioning lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	return fn()
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
	// One writer for both: exec then writes from one goroutine at a time.
	// Maven 3.8 writes colour resets even in batch mode: they are dropped.
	var buf bytes.Buffer
	w := noANSI{io.MultiWriter(out, &buf)}
	cmd.Stdout, cmd.Stderr = w, w
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

// compileLauncher is resolve's post step for a search node: it compiles
// <src>/<component>/src/<launcher>.java against the component's jars into
// <cache>/<component>/classes.
func (d *Dist) compileLauncher(component, launcher string) func(context.Context, io.Writer) error {
	return func(ctx context.Context, out io.Writer) error {
		javac := filepath.Join(filepath.Dir(d.Java), "javac")
		if _, err := os.Stat(javac); err != nil {
			if javac, err = exec.LookPath("javac"); err != nil {
				return fmt.Errorf("compiling %s: javac not found: %w", launcher, err)
			}
		}
		classes := filepath.Join(d.Cache, component, "classes")
		cmd := exec.CommandContext(ctx, javac, "-nowarn", "-d", classes, "-cp", filepath.Join(d.Cache, component, "lib")+"/*",
			filepath.Join(d.Src, component, "src", launcher+".java"))
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("compiling %s: %w", launcher, err)
		}
		return nil
	}
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

// noANSI drops terminal escape sequences (ESC [ ... letter) from what it
// writes on; a sequence cut between two writes passes in pieces, harmless.
type noANSI struct{ w io.Writer }

func (n noANSI) Write(p []byte) (int, error) {
	if bytes.IndexByte(p, 0x1b) < 0 {
		return n.w.Write(p)
	}
	out := make([]byte, 0, len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == 0x1b && i+1 < len(p) && p[i+1] == '[' {
			j := i + 2
			for j < len(p) && (p[j] >= '0' && p[j] <= '9' || p[j] == ';') {
				j++
			}
			if j < len(p) {
				i = j // the final letter
				continue
			}
		}
		out = append(out, p[i])
	}
	if _, err := n.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
