package realstack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one server JVM, its PID in <dir>/<name>.pid and its output
// in <dir>/<name>.log.
type Process struct {
	Name    string
	Dir     string
	PID     int
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when a child of ours has been reaped
}

// marker is the system property that tags a JVM with its directory, so a
// PID read from a file is only signalled when it still is that server.
const marker = "-Dlogpipe.realstack="

// startJava starts java with args in dir. Detached, it gets its own session
// and outlives the caller (devstack start); otherwise it is killed when the
// caller dies (tests).
func startJava(java, dir, name string, detach bool, args []string) (*Process, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "\n=== %s starting %s at %s\n", name, java, time.Now().Format(time.RFC3339))
	cmd := exec.Command(java, append([]string{marker + dir}, args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	if detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Dir: dir, PID: cmd.Process.Pid, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	if err := os.WriteFile(p.pidFile(), []byte(strconv.Itoa(p.PID)+"\n"), 0o644); err != nil {
		p.Kill()
		return nil, fmt.Errorf("writing %s: %w", p.pidFile(), err)
	}
	return p, nil
}

func (p *Process) pidFile() string { return filepath.Join(p.Dir, p.Name+".pid") }

// FromPIDFile finds the server recorded in <dir>/<name>.pid, or nil when
// none of that name runs there.
func FromPIDFile(dir, name string) *Process {
	p := &Process{Name: name, Dir: dir, LogPath: filepath.Join(dir, name+".log")}
	b, err := os.ReadFile(p.pidFile())
	if err != nil {
		return nil
	}
	p.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	if p.PID <= 0 || !p.Alive() {
		return nil
	}
	return p
}

// Alive reports whether the process still runs (and, when not our child,
// still is the server started in Dir).
func (p *Process) Alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
	if err != nil {
		return false
	}
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID)); err == nil {
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return bytes.Contains(cmdline, []byte(marker+p.Dir+"\x00"))
}

// Stop sends SIGTERM (a clean shutdown: Kafka moves leadership away and
// flushes its log, the search node closes its shards) and waits up to
// timeout, then kills.
func (p *Process) Stop(timeout time.Duration) error {
	if !p.Alive() {
		os.Remove(p.pidFile())
		return nil
	}
	syscall.Kill(p.PID, syscall.SIGTERM)
	if p.wait(timeout) {
		os.Remove(p.pidFile())
		return nil
	}
	p.Kill()
	return fmt.Errorf("%s (pid %d) did not stop within %s after SIGTERM; killed", p.Name, p.PID, timeout)
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	if p.Alive() {
		syscall.Kill(p.PID, syscall.SIGKILL)
		p.wait(30 * time.Second)
	}
	os.Remove(p.pidFile())
}

// Pause stops the process (SIGSTOP): it holds its sockets but answers
// nothing, like a hung server. Resume continues it.
func (p *Process) Pause() error  { return syscall.Kill(p.PID, syscall.SIGSTOP) }
func (p *Process) Resume() error { return syscall.Kill(p.PID, syscall.SIGCONT) }

func (p *Process) wait(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for p.Alive() {
		if time.Now().After(deadline) {
			return false
		}
		if p.done != nil {
			select {
			case <-p.done:
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// LogTail is the last n lines the process wrote.
func (p *Process) LogTail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	return lastLines(string(b), n)
}

// errExited is returned while waiting for readiness when the server died.
func errExited(p *Process) error {
	return fmt.Errorf("%s exited while starting; last lines of %s:\n%s", p.Name, p.LogPath, p.LogTail(30))
}

var errNotReady = errors.New("not ready")

// jvmArgs are the flags every server JVM gets: a fixed heap sized for a
// 2-core test machine, the serial collector and C1 only (fast start, little
// CPU), and the component's log4j2 configuration.
func (d *Dist) jvmArgs(component string, heapMB int) []string {
	return []string{
		fmt.Sprintf("-Xms%dm", heapMB), fmt.Sprintf("-Xmx%dm", heapMB),
		"-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss1m",
		"-Djava.awt.headless=true", "-Dfile.encoding=UTF-8",
		"-Dlog4j2.configurationFile=" + filepath.Join(d.Src, component, "log4j2.properties"),
		"-Dlog4j2.disable.jmx=true",
	}
}
