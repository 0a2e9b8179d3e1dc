package main

// The fleet mode (-only fleet; not part of the default run): many real
// logagent processes against one etcd (devstack's, its own process, so its
// CPU and database can be measured) and one broker, and the transfer
// scaled out over 24 partitions.

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

var (
	fleetAgents  = flag.Int("fleet-agents", 200, "fleet mode: logagent processes")
	fleetWindow  = flag.Duration("fleet-window", 2*time.Minute, "fleet mode: how long the idle fleet is watched (etcd writes, database growth, agents' CPU)")
	fleetRecords = flag.Int("fleet-records", 1_000_000, "fleet mode: records for the transfer scale-out")
)

type fleetAgent struct {
	cmd *exec.Cmd
	ip  string
	dir string
}

// fleet runs the fleet scenarios and returns their report (markdown).
func (b *bench) fleet() string {
	var w strings.Builder
	n := *fleetAgents
	fmt.Fprintf(&w, "\n## Fleet\n\n`go run ./scripts/bench -only fleet` on %s, %d CPUs, %s: %d logagent processes (`memory_limit = 16MiB`, one tailed file each) against one etcd (devstack, its own process) and one kfake broker.\n\n",
		hostname(), numCPU(), time.Now().UTC().Format("2006-01-02 15:04 MST"), n)

	// etcd as its own process.
	etcdDir := filepath.Join(b.work, "fleet-etcd")
	ep := fmt.Sprintf("127.0.0.1:%d", freePort())
	etcd := exec.Command(filepath.Join(*binDir, "devstack"), "-data", etcdDir, "-etcd", ep, "-etcd-peer", fmt.Sprintf("127.0.0.1:%d", freePort()), "-kafka-port", "0")
	lf, err := os.Create(filepath.Join(b.work, "fleet-etcd.log"))
	check(err)
	etcd.Stdout, etcd.Stderr = lf, lf
	check(etcd.Start())
	defer func() { etcd.Process.Signal(syscall.SIGTERM); etcd.Wait() }()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	check(err)
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Status(ctx, ep)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			check(fmt.Errorf("fleet etcd did not start: %w", err))
		}
		time.Sleep(100 * time.Millisecond)
	}
	broker := newBroker(4, "fleet")
	defer broker.Close()
	baddr := broker.ListenAddrs()[0]

	// Start the fleet, each agent collecting one file.
	start := time.Now()
	agents := make([]*fleetAgent, n)
	for i := range agents {
		// No HTTP endpoint: hundreds of ports picked ahead of time collide.
		a := &fleetAgent{ip: fmt.Sprintf("10.%d.%d.%d", 100+i/62500, (i/250)%250, 1+i%250), dir: filepath.Join(b.work, fmt.Sprintf("fleet-%d", i))}
		check(os.MkdirAll(a.dir, 0o755))
		check(os.WriteFile(filepath.Join(a.dir, "app.log"), []byte("started\n"), 0o644))
		ini := filepath.Join(a.dir, "logagent.ini")
		check(os.WriteFile(ini, []byte(fmt.Sprintf("[kafka]\naddress = %s\nbuffer_bytes = 4MiB\n[etcd]\naddress = %s\n[agent]\nip = %s\ndata_dir = %s\nallowed_paths = /**\nmemory_limit = 16MiB\n[http]\naddr =\n[log]\nlevel = warn\n",
			baddr, ep, a.ip, filepath.Join(a.dir, "data"))), 0o644))
		put(cli, "/logagent/"+a.ip+"/collect_config", fmt.Sprintf(`[{"path":%q,"topic":"fleet"}]`, filepath.Join(a.dir, "app.log")))
		a.cmd = exec.Command(filepath.Join(*binDir, "logagent"), "-config", ini)
		alf, err := os.Create(filepath.Join(a.dir, "agent.log"))
		check(err)
		a.cmd.Stdout, a.cmd.Stderr = alf, alf
		check(a.cmd.Start())
		agents[i] = a
	}
	defer func() {
		for _, a := range agents {
			a.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, a := range agents {
			a.cmd.Wait()
		}
	}()
	for inventoryCount(cli) < n {
		if time.Since(start) > 3*time.Minute {
			for _, a := range agents {
				a.cmd.Process.Kill()
			}
			check(fmt.Errorf("only %d of %d agents registered in 3 minutes", inventoryCount(cli), n))
		}
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(&w, "- **Start:** all %d agents registered in the inventory %.1f s after the first was launched (launched one after another).\n", n, time.Since(start).Seconds())

	// Config propagation: one put per agent adding a file with a line of
	// its own; applied = that line in the broker.
	cons, err := kgo.NewClient(kgo.SeedBrokers(baddr), kgo.ConsumeTopics("fleet"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	check(err)
	defer cons.Close()
	putAt := make(map[string]time.Time, n)
	for _, a := range agents {
		p := filepath.Join(a.dir, "new.log")
		check(os.WriteFile(p, []byte("applied "+a.ip+"\n"), 0o644))
	}
	for _, a := range agents {
		putAt[a.ip] = time.Now()
		put(cli, "/logagent/"+a.ip+"/collect_config", fmt.Sprintf(`[{"path":%q,"topic":"fleet"},{"path":%q,"topic":"fleet"}]`,
			filepath.Join(a.dir, "app.log"), filepath.Join(a.dir, "new.log")))
	}
	lats := make([]float64, 0, n)
	seen := map[string]bool{}
	pollDeadline := time.Now().Add(2 * time.Minute)
	for len(seen) < n && time.Now().Before(pollDeadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cons.PollFetches(ctx)
		cancel()
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			if ip, ok := strings.CutPrefix(string(r.Value), "applied "); ok && !seen[ip] {
				seen[ip] = true
				lats = append(lats, now.Sub(putAt[ip]).Seconds())
			}
		})
	}
	sort.Float64s(lats)
	q := func(x float64) float64 {
		if len(lats) == 0 {
			return math.NaN()
		}
		return lats[min(int(x*float64(len(lats))), len(lats)-1)]
	}
	fmt.Fprintf(&w, "- **Config change:** one put per agent (%d puts in a row), applied = the new file's line in the broker: %d of %d applied; p50 %s, p99 %s, max %s after its put.\n",
		n, len(lats), n, dur(q(0.5)), dur(q(0.99)), dur(q(1)))

	// The idle fleet: etcd writes, database growth, CPU.
	time.Sleep(15 * time.Second) // let the config change settle out of the window
	st0 := etcdStatus(cli, ep)
	etcdCPU0 := procCPU(etcd.Process.Pid)
	agentCPU0 := make([]float64, n)
	for i, a := range agents {
		agentCPU0[i] = procCPU(a.cmd.Process.Pid)
	}
	t0 := time.Now()
	time.Sleep(*fleetWindow)
	secs := time.Since(t0).Seconds()
	st1 := etcdStatus(cli, ep)
	etcdCPU := procCPU(etcd.Process.Pid) - etcdCPU0
	var cpus, rss []float64
	for i, a := range agents {
		cpus = append(cpus, 100*(procCPU(a.cmd.Process.Pid)-agentCPU0[i])/secs)
		rss = append(rss, procStatus(a.cmd.Process.Pid, "VmRSS:")/(1<<20))
	}
	sort.Float64s(cpus)
	sort.Float64s(rss)
	fmt.Fprintf(&w, "- **Idle fleet over %s:** etcd revision +%d (%.2f writes/s for %d agents: %.4f per agent per s), database %.1f → %.1f MB (in use %.1f → %.1f MB), etcd CPU %.2f %% of a core; per agent CPU median %.2f %%, max %.2f %% of a core, RSS median %.1f MB, max %.1f MB.\n",
		fleetWindow.String(), st1.rev-st0.rev, float64(st1.rev-st0.rev)/secs, n, float64(st1.rev-st0.rev)/secs/float64(n),
		float64(st0.db)/1e6, float64(st1.db)/1e6, float64(st0.inUse)/1e6, float64(st1.inUse)/1e6, 100*etcdCPU/secs,
		cpus[len(cpus)/2], cpus[len(cpus)-1], rss[len(rss)/2], rss[len(rss)-1])

	// The transfer scaled out over 24 partitions.
	fmt.Fprintf(&w, "- **Transfer scale-out** (%d records over 24 partitions into the bench sink, one consumer group):", *fleetRecords)
	base := 0.0
	for k := 1; k <= 3; k++ {
		rate := b.transferScale(k)
		if k == 1 {
			base = rate
		}
		fmt.Fprintf(&w, " %d instance(s) %.0f docs/s (%.2f×);", k, rate, rate/base)
	}
	w.WriteString(" every instance shares the same 2 cores here, so this shows the group spreading partitions, not added capacity.\n")
	return w.String()
}

func put(cli *clientv3.Client, key, value string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, key, value)
	check(err)
}

func inventoryCount(cli *clientv3.Client) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/logagent/agents/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0
	}
	return int(resp.Count)
}

type etcdStat struct{ rev, db, inUse int64 }

func etcdStatus(cli *clientv3.Client, ep string) etcdStat {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := cli.Status(ctx, ep)
	check(err)
	return etcdStat{rev: s.Header.Revision, db: s.DbSize, inUse: s.DbSizeInUse}
}

// transferScale runs k transfer processes in one group over a 24-partition
// topic and returns the documents per second the sink received.
func (b *bench) transferScale(k int) float64 {
	topic := "scale"
	broker := newBroker(24, topic)
	defer broker.Close()
	b.fill(broker.ListenAddrs()[0], topic, *fleetRecords, "")
	s := newSink()
	defer s.srv.Close()
	start := time.Now()
	var procs []*transferProc
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < k; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			t := b.startTransferGroup(i, broker.ListenAddrs()[0], s.addr, topic, fmt.Sprintf("scale%d", k), fmt.Sprintf("bench-scale-%d", k))
			mu.Lock()
			procs = append(procs, t)
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	for s.docs.Load() < int64(*fleetRecords) {
		if time.Since(start) > 10*time.Minute {
			check(fmt.Errorf("scale-out with %d instances: %d of %d documents in 10 minutes", k, s.docs.Load(), *fleetRecords))
		}
		time.Sleep(20 * time.Millisecond)
	}
	rate := float64(*fleetRecords) / time.Since(start).Seconds()
	for _, t := range procs {
		t.stop()
	}
	return rate
}
