// Package httpserver serves a daemon's operational endpoints: /metrics
// from its own Prometheus registry, /healthz (the process is alive),
// /readyz (its dependencies are reachable), /debug/pprof if enabled, plus
// any extra handlers.
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Check is one readiness condition; it returns nil when ready.
type Check struct {
	Name string
	Fn   func() error
}

// Server is the operational HTTP server.
type Server struct {
	addr   string
	mux    *http.ServeMux
	log    *logrus.Entry
	checks []Check
	ln     net.Listener
}

// New builds the server; Listen binds it and Run serves.
func New(addr string, pprofOn bool, gatherer prometheus.Gatherer, checks []Check, log *logrus.Entry) *Server {
	s := &Server{addr: addr, mux: http.NewServeMux(), log: log.WithField("component", "http"), checks: checks}
	s.mux.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.HandleFunc("/readyz", s.ready)
	if pprofOn { // [http] pprof = true
		s.mux.HandleFunc("/debug/pprof/", pprof.Index)
		s.mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		s.mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		s.mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		s.mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return s
}

// Handle adds a handler.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

func (s *Server) ready(w http.ResponseWriter, _ *http.Request) {
	var bad []string
	for _, c := range s.checks {
		if err := c.Fn(); err != nil {
			bad = append(bad, c.Name+": "+err.Error())
		}
	}
	if len(bad) > 0 {
		http.Error(w, strings.Join(bad, "\n"), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Listen binds the address, so a port conflict stops the daemon at start.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	// Write covers a 30 s CPU profile; idle connections do not pile up.
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.ln) }()
	s.log.WithField("addr", s.Addr()).Info("serving /metrics, /healthz, /readyz")
	select {
	case err := <-errc:
		return fmt.Errorf("serving http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		// A client still in a request (a slow scrape) must not turn a
		// clean stop into a failed one: cut it off.
		s.log.WithError(err).Warn("http requests still running at shutdown; closing them")
		_ = srv.Close()
	}
	return nil
}
