// Package collector reconciles the wanted collect entries with the running
// tail tasks: it starts tasks for new entries, stops removed ones (their
// files are closed before Apply's reconcile moves on), restarts changed
// ones and leaves unchanged ones alone. A glob entry runs one tailer per
// matching file and rescans for new matches.
package collector

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/agent/event"
	"github.com/logpipe/logpipe/internal/agent/registry"
	"github.com/logpipe/logpipe/internal/agent/tailer"
	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/logging"
	"github.com/logpipe/logpipe/internal/platform/pathguard"
)

// Config is what every task shares.
type Config struct {
	Host string
	IP   string
	// AgentID and AgentVersion name the agent in every record
	// (record.HeaderAgentID).
	AgentID      string
	AgentVersion string
	MaxLineBytes int
	PollInterval time.Duration
	ScanInterval time.Duration
	RotateWait   time.Duration
	// Guard refuses files outside the allowlist (nil: no allowlist).
	Guard *pathguard.Guard
	// MaxFiles bounds the files tailed at once (0: no bound). Plain
	// entries are bounded when the config is validated; files matched by
	// globs beyond it are not started (retried at every scan) and counted.
	MaxFiles int
	// PollOnly leaves inotify out: files are polled (file systems without
	// it; a simulation on a fake clock, where a goroutine waiting on the
	// kernel would hold the clock).
	PollOnly bool
}

// Collector runs tail tasks for the latest applied entries.
type Collector struct {
	cfg  Config
	reg  *registry.Registry
	sink tailer.Sink
	log  *logrus.Entry
	tm   *tailer.Metrics
	ntf  *tailer.Notifier // nil: poll only

	mu     sync.Mutex
	wanted []collectconf.Entry
	notify chan struct{}

	tasksMu sync.Mutex
	tasks   map[string]*task

	tasksGauge prometheus.GaugeFunc
	files      atomic.Int64 // tailers running
	thr        *logging.Throttle
	opens      chan struct{}  // tailers opening a file now (tailer.Config.Opens)
	drains     *tailer.Drains // deleted files read on after their task stops
}

// concurrentOpens is how many tailers open a file at once: enough to keep
// a start with thousands of files quick (an open is microseconds), few
// enough that the runtime does not start a thread per file.
const concurrentOpens = 4

// New returns a collector; call Run and Apply.
func New(cfg Config, reg *registry.Registry, sink tailer.Sink, log *logrus.Entry, prom prometheus.Registerer) *Collector {
	c := &Collector{
		cfg: cfg, reg: reg, sink: sink,
		log:    log.WithField("component", "collector"),
		tm:     tailer.NewMetrics(prom),
		notify: make(chan struct{}, 1),
		tasks:  map[string]*task{},
		thr:    logging.NewThrottle(time.Minute),
		opens:  make(chan struct{}, concurrentOpens),
	}
	if !cfg.PollOnly {
		c.ntf = tailer.NewNotifier(c.log)
	}
	c.tasksGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_tasks", Help: "Collect entries running."},
		func() float64 { c.tasksMu.Lock(); defer c.tasksMu.Unlock(); return float64(len(c.tasks)) })
	over := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "logagent_files_over_limit", Help: "Files matched by globs but not tailed because [agent] max_files is reached."},
		func() float64 {
			n := 0
			for _, ts := range c.Status() {
				n += ts.FilesOverLimit
			}
			return float64(n)
		})
	if prom != nil {
		prom.MustRegister(c.tasksGauge, over)
	}
	return c
}

// Apply hands over a new validated set of entries. It does not block;
// bursts collapse to the latest.
func (c *Collector) Apply(entries []collectconf.Entry) {
	c.mu.Lock()
	c.wanted = entries
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// Run reconciles on every Apply until ctx ends, then stops every task.
func (c *Collector) Run(ctx context.Context) error {
	c.drains = &tailer.Drains{Ctx: ctx}
	defer c.drains.Wait()
	if c.ntf != nil {
		nctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.ntf.Run(nctx) }()
		defer func() { cancel(); <-done }()
	}
	for {
		select {
		case <-ctx.Done():
			c.reconcile(ctx, nil, false)
			return nil
		case <-c.notify:
			c.mu.Lock()
			wanted := c.wanted
			c.mu.Unlock()
			c.reconcile(ctx, wanted, true)
		}
	}
}

func (c *Collector) reconcile(ctx context.Context, wanted []collectconf.Entry, record bool) {
	want := make(map[string]collectconf.Entry, len(wanted))
	for _, e := range wanted {
		want[e.Key()] = e
	}
	c.tasksMu.Lock()
	current := c.tasks
	c.tasksMu.Unlock()

	next := make(map[string]*task, len(want))
	var stopping []*task
	started, stopped, restarted := 0, 0, 0
	for k, t := range current {
		e, ok := want[k]
		switch {
		case !ok:
			stopping = append(stopping, t)
			stopped++
		case !e.Equal(&t.entry):
			stopping = append(stopping, t)
			restarted++
		default:
			next[k] = t
		}
	}
	// Stop first, so a restarted entry's new tailers can take over the
	// files the old ones release.
	for _, t := range stopping {
		t.stop()
	}
	if ctx.Err() == nil {
		for k, e := range want {
			if _, ok := next[k]; ok {
				continue
			}
			if _, ok := current[k]; !ok {
				started++
			}
			fromEnd := e.FromEnd() && !c.reg.EntrySeen(k)
			next[k] = c.start(ctx, e, fromEnd)
		}
	}
	c.tasksMu.Lock()
	c.tasks = next
	c.tasksMu.Unlock()
	if record {
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		c.reg.SetEntries(keys)
		c.log.WithFields(logrus.Fields{"entries": len(want), "started": started, "stopped": stopped, "restarted": restarted}).Info("collect config applied")
	}
}

// task runs one entry.
type task struct {
	entry  collectconf.Entry
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	tailers map[string]*tailer.Tailer
	over    int // glob matches not tailed at the last scan (max_files)
}

// acquire takes one of the MaxFiles slots.
func (c *Collector) acquire() bool {
	for {
		n := c.files.Load()
		if c.cfg.MaxFiles > 0 && n >= int64(c.cfg.MaxFiles) {
			return false
		}
		if c.files.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (t *task) stop() {
	t.cancel()
	<-t.done
}

func (c *Collector) start(ctx context.Context, e collectconf.Entry, fromEnd bool) *task {
	tctx, cancel := context.WithCancel(ctx)
	t := &task{entry: e, cancel: cancel, done: make(chan struct{}), tailers: map[string]*tailer.Tailer{}}
	log := c.log.WithFields(logrus.Fields{"entry": e.Path, "topic": e.Topic})
	go func() {
		defer close(t.done)
		if !e.IsGlob() {
			tl := c.newTailer(e, e.Path, fromEnd, false, log)
			t.add(e.Path, tl)
			c.files.Add(1) // bounded by validation
			defer c.files.Add(-1)
			_ = tl.Run(tctx)
			return
		}
		c.runGlob(tctx, t, fromEnd, log)
	}()
	return t
}

func (t *task) add(path string, tl *tailer.Tailer) {
	t.mu.Lock()
	t.tailers[path] = tl
	t.mu.Unlock()
}

func (t *task) remove(path string) {
	t.mu.Lock()
	delete(t.tailers, path)
	t.mu.Unlock()
}

func (c *Collector) newTailer(e collectconf.Entry, path string, fromEnd, glob bool, log *logrus.Entry) *tailer.Tailer {
	src := event.NewSource(e.Topic, path, c.cfg.Host, c.cfg.IP, e.Fields).FieldsUnderRoot(e.FieldsUnderRoot).
		WithAgent(c.cfg.AgentID, c.cfg.AgentVersion).WithPipeline(e.Pipeline)
	var keep func([]byte) bool
	if e.Filtered() {
		keep = e.Keep
	}
	return tailer.New(tailer.Config{
		Keep:         keep,
		Path:         path,
		Source:       src,
		FromEnd:      fromEnd,
		Multiline:    e.Multiline,
		MaxLineBytes: c.cfg.MaxLineBytes,
		PollInterval: c.cfg.PollInterval,
		RotateWait:   c.cfg.RotateWait,
		GlobMember:   glob,
		Notifier:     c.ntf,
		Guard:        c.cfg.Guard,
		Drains:       c.drains,
		Opens:        c.opens,
	}, c.reg, c.sink, log, c.tm)
}

// runGlob starts a tailer for every file matching the entry's pattern and
// rescans every ScanInterval. Only files present at the first scan honour
// `from`; later ones appeared while the entry was active and are read from
// their start.
func (c *Collector) runGlob(ctx context.Context, t *task, fromEnd bool, log *logrus.Entry) {
	var wg sync.WaitGroup
	defer wg.Wait()
	running := map[string]chan struct{}{}
	first := true
	tick := time.NewTicker(c.cfg.ScanInterval)
	defer tick.Stop()
	var skip globSkip
	over := 0
	for {
		ended := false
		for p, done := range running {
			select {
			case <-done:
				delete(running, p)
				t.remove(p)
				ended = true
			default:
			}
		}
		if same := skip.unchanged(t.entry.Path, time.Now()); same && !first && over == 0 && !ended {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			continue
		}
		matches, err := filepath.Glob(t.entry.Path)
		if err != nil { // validated already; only a bad pattern errors
			log.WithError(err).Error("expanding glob")
			return
		}
		sort.Strings(matches)
		over = 0
		for _, p := range matches {
			if _, ok := running[p]; ok {
				continue
			}
			if !c.acquire() {
				over++
				continue
			}
			tl := c.newTailer(t.entry, p, first && fromEnd, true, log)
			done := make(chan struct{})
			running[p] = done
			t.add(p, tl)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(done)
				defer c.files.Add(-1)
				_ = tl.Run(ctx)
			}()
		}
		t.mu.Lock()
		t.over = over
		t.mu.Unlock()
		if over > 0 {
			c.thr.Log("max-files", log.WithFields(logrus.Fields{"not_tailed": over, "max_files": c.cfg.MaxFiles}), logrus.WarnLevel, "glob matches more files than [agent] max_files allows; the rest are not tailed")
		}
		first = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// globSkip tells a glob rescan that cannot find anything new: the
// pattern's directory (one without wildcards) has the modification time it
// had at the last scan. A directory's mtime changes whenever an entry is
// created, removed or renamed in it. It is not trusted while it is within
// a second of the scan (a change in the same clock tick would not move
// it), nor for longer than globFullScan.
type globSkip struct {
	mod, scanned time.Time
}

// globFullScan is how often a glob is expanded even when its directory
// looks unchanged.
const globFullScan = time.Minute

// unchanged reports whether the rescan of pattern at now can be skipped,
// and otherwise records the directory's state for the scan about to run.
func (g *globSkip) unchanged(pattern string, now time.Time) bool {
	dir := filepath.Dir(pattern)
	if hasMeta(dir) {
		return false
	}
	fi, err := os.Stat(dir)
	if err != nil {
		g.mod, g.scanned = time.Time{}, time.Time{}
		return false
	}
	mod := fi.ModTime()
	if !g.scanned.IsZero() && mod.Equal(g.mod) && g.scanned.Sub(mod) > time.Second && now.Sub(g.scanned) < globFullScan {
		return true
	}
	g.mod, g.scanned = mod, now
	return false
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// TaskStatus describes one entry and its files.
type TaskStatus struct {
	Entry collectconf.Entry `json:"entry"`
	Files []tailer.Status   `json:"files"`
	// FilesOverLimit are matches not tailed because of max_files.
	FilesOverLimit int `json:"files_over_limit,omitempty"`
}

// Status lists the running entries and the state of each of their files.
func (c *Collector) Status() []TaskStatus {
	c.tasksMu.Lock()
	tasks := make([]*task, 0, len(c.tasks))
	for _, t := range c.tasks {
		tasks = append(tasks, t)
	}
	c.tasksMu.Unlock()
	out := make([]TaskStatus, 0, len(tasks))
	for _, t := range tasks {
		ts := TaskStatus{Entry: t.entry}
		t.mu.Lock()
		for _, tl := range t.tailers {
			ts.Files = append(ts.Files, tl.Status())
		}
		ts.FilesOverLimit = t.over
		t.mu.Unlock()
		sort.Slice(ts.Files, func(i, j int) bool { return ts.Files[i].Path < ts.Files[j].Path })
		out = append(out, ts)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Entry.Key() < out[j].Entry.Key() })
	return out
}
