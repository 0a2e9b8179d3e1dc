package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Fluent Bit, where one is installed, runs the same scenarios side by side
// (same file, same broker, same sink, same compression): rows "Fluent Bit
// …". It is not packaged for Debian 12 and its sources are not on a
// package registry, so make bench does not install it; build it from
// source (see README, "Benchmarks") and point -fluent-bit or FLUENT_BIT at
// the binary.
var fluentBit = flag.String("fluent-bit", os.Getenv("FLUENT_BIT"), "fluent-bit binary for the side-by-side rows (default $FLUENT_BIT, else fluent-bit on PATH; none: the rows are left out)")

// fluentBitPath is the binary to compare with, or "".
func fluentBitPath() string {
	if *fluentBit != "" {
		return *fluentBit
	}
	p, _ := exec.LookPath("fluent-bit")
	return p
}

type fbProc struct {
	cmd    *exec.Cmd
	stopc  chan struct{}
	peakc  <-chan float64
	exited chan struct{}
	log    string
}

func (b *bench) startFluentBit(run int, name, conf string) *fbProc {
	dir := filepath.Join(b.work, fmt.Sprintf("fb-%s-%d", name, run))
	check(os.MkdirAll(dir, 0o755))
	p := filepath.Join(dir, "fluent-bit.conf")
	check(os.WriteFile(p, []byte(strings.ReplaceAll(conf, "%[1]s", dir)), 0o644))
	cmd := exec.Command(fluentBitPath(), "-c", p)
	lf, err := os.Create(filepath.Join(dir, "fluent-bit.log"))
	check(err)
	cmd.Stdout, cmd.Stderr = lf, lf
	check(cmd.Start())
	f := &fbProc{cmd: cmd, stopc: make(chan struct{}), exited: make(chan struct{}), log: lf.Name()}
	f.peakc = peak(cmd.Process.Pid, f.stopc)
	go func() { cmd.Wait(); close(f.exited) }()
	return f
}

// alive fails the run if Fluent Bit exited by itself.
func (f *fbProc) alive() {
	select {
	case <-f.exited:
		out, _ := os.ReadFile(f.log)
		check(fmt.Errorf("Fluent Bit exited: %s\n%s", f.cmd.ProcessState, out[max(0, len(out)-2000):]))
	default:
	}
}

func (f *fbProc) stop() (cpu, rss float64) {
	close(f.stopc)
	rss = <-f.peakc
	f.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-f.exited:
	case <-time.After(20 * time.Second): // it waits for its grace period
		f.cmd.Process.Kill()
		<-f.exited
	}
	return usage(f.cmd.ProcessState), rss
}

// fbService is the common [SERVICE] section (%[1]s is the work directory).
const fbService = `[SERVICE]
    Flush        1
    Grace        2
    Log_Level    warn
    HTTP_Server  Off
`

// fbFile is tail → kafka with a position database (as the agent's
// registry) and acks from all in-sync replicas (as the agent's default).
func (b *bench) fbFile(run int) result {
	broker := newDiscardBroker(4, "bench")
	defer broker.Close()
	start := time.Now()
	f := b.startFluentBit(run, "file", fbService+fmt.Sprintf(`[INPUT]
    Name            tail
    Path            %s
    Read_from_Head  On
    DB              %%[1]s/tail.db
[OUTPUT]
    Name            kafka
    Match           *
    Brokers         %s
    Topics          bench
    Format          raw
    Raw_Log_Key     log
    rdkafka.request.required.acks  -1
    rdkafka.compression.codec      %s
`, b.file, broker.addr(), *codec))
	for broker.records("bench") < int64(*lines) {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("Fluent Bit: the broker did not get the whole file in 10 minutes (%d)", broker.records("bench")))
		}
		f.alive()
		time.Sleep(50 * time.Millisecond)
	}
	secs := time.Since(start).Seconds()
	cpu, rss := f.stop()
	return result{seconds: secs, bytes: float64(*lines * *lineSize), lines: float64(*lines), cpu: cpu, rss: rss, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		note: "counted in the broker; tail with its position DB, acks all"}
}

// fbIdle is 1,000 files that do not grow.
func (b *bench) fbIdle(run int) result {
	broker := newDiscardBroker(4, "idle")
	defer broker.Close()
	dir := b.idleFiles(fmt.Sprintf("fb-idlefiles-%d", run))
	const n = idleN
	f := b.startFluentBit(run, "idle", fbService+fmt.Sprintf(`[INPUT]
    Name            tail
    Path            %s/*.log
    Read_from_Head  On
    DB              %%[1]s/tail.db
[OUTPUT]
    Name            kafka
    Match           *
    Brokers         %s
    Topics          idle
    Format          raw
    Raw_Log_Key     log
    rdkafka.compression.codec      %s
`, dir, broker.addr(), *codec))
	deadline := time.Now().Add(2 * time.Minute)
	for broker.records("idle") < n {
		f.alive()
		if time.Now().After(deadline) {
			check(fmt.Errorf("Fluent Bit sent %d of %d lines in 2 minutes", broker.records("idle"), n))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(idleSettle)
	pid := f.cmd.Process.Pid
	c0, t0 := procCPU(pid), time.Now()
	time.Sleep(idleWindow)
	c1, t1 := procCPU(pid), time.Now()
	rssNow := procStatus(pid, "VmRSS:")
	_, rss := f.stop()
	return result{seconds: t1.Sub(t0).Seconds(), cpu: c1 - c0, rss: math.Max(rss, rssNow), p50: math.NaN(), p99: math.NaN(),
		cpuPercent: 100 * (c1 - c0) / t1.Sub(t0).Seconds(), note: fmt.Sprintf("1,000 files; %s, idle %v before it; at rest RSS %.1f MB", idleWindow, idleSettle, rssNow/(1<<20))}
}

// fbTransfer is kafka → es into the bulk sink, counted by distinct line
// (Fluent Bit may send a line more than once).
func (b *bench) fbTransfer(run int) result {
	broker := newBroker(8, "tbench")
	defer broker.Close()
	n := *transferN
	b.fill(broker.ListenAddrs()[0], "tbench", n, "")
	s := newSink()
	s.uniq = make([]uint64, (n+63)/64)
	defer s.srv.Close()
	host, port, _ := bytes.Cut([]byte(s.addr), []byte(":"))
	pn, _ := strconv.Atoi(string(port))
	start := time.Now()
	f := b.startFluentBit(run, "transfer", strings.Replace(fbService, "Flush        1", "Flush        0.2", 1)+fmt.Sprintf(`[INPUT]
    Name            kafka
    Brokers         %s
    Topics          tbench
    Group_Id        fb-bench-%d
    Threaded        On
    Poll_Ms         10
    Enable_Auto_Commit On
    rdkafka.auto.offset.reset  earliest
[OUTPUT]
    Name            es
    Match           *
    Host            %s
    Port            %d
    Index           tbench
    Suppress_Type_Name On
    Buffer_Size     False
    Retry_Limit     False
    Workers         2
`, broker.ListenAddrs()[0], run, host, pn))
	for s.distinct.Load() < int64(n) {
		f.alive()
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("Fluent Bit did not index %d records in 10 minutes (%d distinct)", n, s.distinct.Load()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	total := time.Since(start).Seconds()
	secs := s.since()
	cpu, rss := f.stop()
	dup := s.docs.Load() - s.distinct.Load()
	return result{seconds: secs, lines: float64(n), bytes: float64(n * *lineSize), cpu: cpu, rss: rss, p50: math.NaN(), p99: math.NaN(), cpuPercent: math.NaN(),
		note: fmt.Sprintf("%d records over 8 partitions; %.1f s from the first bulk request to the last document (%.1f s from the start); %d documents received, %d of them (%.1f %%) duplicates", n, secs, total, s.docs.Load(), dup, 100*float64(dup)/float64(n))}
}
