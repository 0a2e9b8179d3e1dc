package testutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Proc is a daemon running as a subprocess, its output in a log file.
type Proc struct {
	t    testing.TB
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
}

// StartProc runs bin with args, writing its output to logPath. It is
// killed at test cleanup if still running.
func StartProc(t testing.TB, logPath, bin string, args ...string) *Proc {
	t.Helper()
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Proc{t: t, Cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(p.Kill)
	return p
}

// Running reports whether the process has not exited.
func (p *Proc) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the exit.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Term sends SIGTERM, waits for the exit and returns the exit code.
func (p *Proc) Term() int {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	if p.Running() {
		p.t.Fatalf("%s did not exit after SIGTERM", p.Cmd.Path)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Wait waits for the exit (after a signal sent with Signal) and returns
// the exit code.
func (p *Proc) Wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not exit", p.Cmd.Path)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// Signal sends s without waiting for anything.
func (p *Proc) Signal(s syscall.Signal) {
	if p.Running() {
		p.Cmd.Process.Signal(s)
	}
}

func (p *Proc) signal(s syscall.Signal) {
	if !p.Running() {
		return
	}
	p.Cmd.Process.Signal(s)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
	}
}

// PeakRSS is the process's peak resident set size (VmHWM) in bytes, or 0
// once it has exited.
func (p *Proc) PeakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// LogText returns what the process wrote so far.
func (p *Proc) LogText() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// Output runs bin with args to its end and returns what it printed
// (stdout and stderr) and its exit status; a binary that cannot be run
// fails the test.
func Output(t testing.TB, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", bin, err)
	}
	return string(out), 0
}
