// Package buildinfo is what a daemon was built from, as the conventional
// <daemon>_build_info gauge (always 1, the facts in its labels), so a
// fleet's versions are one PromQL query away:
// count by (version) (logagent_build_info).
package buildinfo

import (
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info is what a binary was built from.
type Info struct {
	Version   string // set at build time (-X main.version)
	Revision  string // the VCS revision Go recorded ("" if none)
	GoVersion string
}

// Read returns the build facts of the running binary.
func Read(version string) Info {
	i := Info{Version: version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				i.Revision = s.Value
			}
		}
	}
	return i
}

// Gauge is <daemon>_build_info{version, revision, goversion} = 1.
func Gauge(daemon, version string) prometheus.Collector {
	i := Read(version)
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        daemon + "_build_info",
		Help:        "Always 1: the version, VCS revision and Go version the " + daemon + " binary was built from.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	return g
}
