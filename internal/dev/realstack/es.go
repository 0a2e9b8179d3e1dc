package realstack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// ESOptions configure one search node on 127.0.0.1.
type ESOptions struct {
	Engine        string            // "" or Elasticsearch (7.17), or OpenSearch (2.19; ProvisionOpenSearch first)
	Dir           string            // path.home: data, logs, PID file; kept across restarts
	HTTPPort      int               // REST API
	TransportPort int               // node-to-node transport (unused by clients)
	Settings      map[string]string // extra node settings, e.g. thread_pool.write.queue_size
	HeapMB        int               // default 384 for Elasticsearch, 256 for OpenSearch
	Detach        bool              // the JVM outlives this process (devstack)
}

// ES is a running (or stopped) search node, Elasticsearch or OpenSearch.
type ES struct {
	d  *Dist
	o  ESOptions
	se searchEngine
	p  *Process
}

// NewES prepares a node; Start runs it. An OpenSearch node needs
// Dist.ProvisionOpenSearch to have run.
func NewES(d *Dist, o ESOptions) (*ES, error) {
	se, err := engineOf(o.Engine)
	if err != nil {
		return nil, err
	}
	o.Engine = se.name
	if se.name == OpenSearch && !d.provisioned(se.component) {
		return nil, fmt.Errorf("starting opensearch: not provisioned in %s (call Dist.ProvisionOpenSearch first)", d.Cache)
	}
	if o.HeapMB == 0 {
		o.HeapMB = se.heapMB
	}
	if o.HTTPPort == 0 || o.TransportPort == 0 {
		return nil, fmt.Errorf("search node needs an HTTP and a transport port")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", o.Dir, err)
	}
	o.Dir = dir
	return &ES{d: d, o: o, se: se, p: FromPIDFile(dir, se.component)}, nil
}

// Engine is Elasticsearch or OpenSearch.
func (e *ES) Engine() string { return e.se.name }

// Version is the node's version.
func (e *ES) Version() string { return e.se.version }

// URL is the node's REST address.
func (e *ES) URL() string { return "http://127.0.0.1:" + strconv.Itoa(e.o.HTTPPort) }

// Process is the node's process (nil if never started).
func (e *ES) Process() *Process { return e.p }

// Start starts the node (if stopped) and waits for a yellow or green
// cluster.
func (e *ES) Start(ctx context.Context) error {
	if e.p == nil || !e.p.Alive() {
		args := append(e.d.jvmArgs(e.se.component, e.o.HeapMB), "-cp", e.d.classpath(e.se.component), e.se.launcher,
			e.o.Dir, strconv.Itoa(e.o.HTTPPort), strconv.Itoa(e.o.TransportPort))
		keys := make([]string, 0, len(e.o.Settings))
		for k := range e.o.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, k+"="+e.o.Settings[k])
		}
		p, err := startJava(e.d.Java, e.o.Dir, e.se.component, e.o.Detach, args)
		if err != nil {
			return err
		}
		e.p = p
	}
	ctx, cancel := context.WithTimeout(ctx, 180*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 3 * time.Second}
	for {
		if !e.p.Alive() {
			return errExited(e.p)
		}
		resp, err := hc.Get(e.URL() + "/_cluster/health?wait_for_status=yellow&timeout=1s")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s node at %s not ready: %w; last lines of %s:\n%s", e.se.name, e.URL(), ctx.Err(), e.p.LogPath, e.p.LogTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop closes the node cleanly (SIGTERM), keeping its data.
func (e *ES) Stop() error {
	if e.p == nil {
		return nil
	}
	return e.p.Stop(60 * time.Second)
}

// Kill SIGKILLs the node.
func (e *ES) Kill() {
	if e.p != nil {
		e.p.Kill()
	}
}

// Describe writes the node's address and state.
func (e *ES) Describe(w io.Writer) {
	state := "stopped"
	if e.p != nil && e.p.Alive() {
		state = fmt.Sprintf("running (pid %d)", e.p.PID)
	}
	fmt.Fprintf(w, "%s %s  %s  %s  log %s\n", e.se.name, e.se.version, e.URL(), state, filepath.Join(e.o.Dir, e.se.component+".log"))
}
