package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// DefaultPrefix is where custom pipelines live in etcd: one key per
// pipeline, <prefix><name>, its value a JSON list of processors.
const DefaultPrefix = "/logtransfer/pipelines/"

// ValidName reports why name cannot name a custom pipeline ("" if it can).
func ValidName(name string) string {
	if !record.ValidPipelineName(name) {
		return "pipeline names are " + record.PipelineNameRule
	}
	if _, ok := Builtin(name); ok {
		return "is a built-in pipeline"
	}
	return ""
}

// Set is the pipelines the transfer knows: the built-ins and the custom
// ones from etcd. A custom pipeline that fails validation is refused
// whole: the last good version stays in use, and the error is logged,
// counted and shown in Status. Safe for concurrent use.
type Set struct {
	prefix string
	log    *logrus.Entry

	mu     sync.RWMutex
	custom map[string]Func
	inUse  map[string]int64  // name -> mod revision of the version in custom
	raw    map[string][]byte // name -> the value of the version in custom
	seen   map[string]int64  // name -> mod revision applied or refused
	errs   map[string]string // name -> why its latest version was refused
	// from is where the custom pipelines in force came from: "" until the
	// first load, then "cache" or "etcd"; loaded is set with it.
	from   string
	loaded atomic.Bool

	invalid prometheus.Counter
}

// NewSet returns a set with only the built-ins until Update.
func NewSet(prefix string, log *logrus.Entry, reg prometheus.Registerer) *Set {
	s := &Set{prefix: prefix, log: log.WithField("component", "pipelines"), custom: map[string]Func{}, inUse: map[string]int64{}, raw: map[string][]byte{}, seen: map[string]int64{}, errs: map[string]string{},
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_pipeline_config_errors_total",
			Help: "Custom pipeline versions refused (invalid); the last good version stays in use."})}
	if reg != nil {
		reg.MustRegister(s.invalid)
	}
	return s
}

// Lookup returns the pipeline named name.
func (s *Set) Lookup(name []byte) (Func, bool) {
	if f, ok := Builtin(string(name)); ok {
		return f, true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.custom[string(name)]
	return f, ok
}

// Ready reports why records naming a custom pipeline cannot be processed
// yet (nil once the set is loaded, from etcd or from a cached copy): until
// then a name the set does not know may be one etcd holds.
func (s *Set) Ready() error {
	if s.loaded.Load() { // asked for every record that names a pipeline
		return nil
	}
	return errors.New("waiting for the first load of the custom pipelines from etcd (no cached copy)")
}

// Def is a custom pipeline's definition as etcd holds it (the JSON list
// of processors), and the revision it last changed at.
type Def struct {
	Value    []byte
	Revision int64
}

// Update applies the custom pipelines etcd holds at revision: defs by key,
// of which those under the set's prefix are pipelines.
func (s *Set) Update(revision int64, defs map[string]Def) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from != "etcd" {
		s.log.WithFields(logrus.Fields{"revision": revision, "was": s.from}).Info("custom pipelines loaded from etcd")
		// A cached version is not what etcd holds: take etcd's whole.
		clear(s.seen)
		s.from = "etcd"
		defer s.loaded.Store(true) // once etcd's versions are in place
	}
	present := map[string]bool{}
	for key, kv := range defs {
		name, ok := strings.CutPrefix(key, s.prefix)
		if !ok {
			continue
		}
		present[name] = true
		if s.seen[name] == kv.Revision {
			continue
		}
		s.seen[name] = kv.Revision
		log := s.log.WithFields(logrus.Fields{"pipeline": name, "revision": kv.Revision})
		if why := ValidName(name); why != "" {
			s.refuse(log, name, why)
			continue
		}
		f, err := Parse(kv.Value)
		if err != nil {
			s.refuse(log, name, err.Error())
			continue
		}
		_, had := s.custom[name]
		s.custom[name] = f
		s.inUse[name] = kv.Revision
		s.raw[name] = kv.Value
		delete(s.errs, name)
		if had {
			log.Info("custom pipeline updated")
		} else {
			log.Info("custom pipeline loaded")
		}
	}
	for name := range s.custom {
		if !present[name] { // cached, and no longer in etcd
			s.seen[name] = 0
		}
	}
	for name := range s.seen {
		if !present[name] {
			delete(s.seen, name)
			delete(s.errs, name)
			if _, ok := s.custom[name]; ok {
				delete(s.custom, name)
				delete(s.inUse, name)
				delete(s.raw, name)
				s.log.WithField("pipeline", name).Info("custom pipeline deleted")
			}
		}
	}
}

func (s *Set) refuse(log *logrus.Entry, name, why string) {
	s.errs[name] = why
	s.invalid.Inc()
	keeps := "none in use"
	if _, ok := s.custom[name]; ok {
		keeps = "the last good version stays in use"
	}
	log.WithField("error", why).Error("custom pipeline refused; " + keeps)
}

// Status is the custom pipelines in use and the refused versions.
type Status struct {
	// From is where the custom pipelines in force came from: "etcd",
	// "cache", or "" while the first load is awaited.
	From    string   `json:"from"`
	Builtin []string `json:"builtin"`
	Custom  []string `json:"custom"`
	// Revisions is the etcd mod revision of each custom pipeline's version
	// in use (compare with etcdctl get -w json).
	Revisions map[string]int64  `json:"revisions,omitempty"`
	Errors    map[string]string `json:"errors,omitempty"`
}

// Status reports what the set holds.
func (s *Set) Status() Status {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := Status{From: s.from, Builtin: Builtins(), Custom: []string{}}
	for n := range s.custom {
		st.Custom = append(st.Custom, n)
		if st.Revisions == nil {
			st.Revisions = map[string]int64{}
		}
		st.Revisions[n] = s.inUse[n]
	}
	sort.Strings(st.Custom)
	if len(s.errs) > 0 {
		st.Errors = map[string]string{}
		for n, e := range s.errs {
			st.Errors[n] = e
		}
	}
	return st
}

// cacheFile is the set's custom pipelines in force, as the transfer keeps
// them in its data_dir.
type cacheFile struct {
	Prefix    string                    `json:"prefix"`
	Pipelines map[string]cachedPipeline `json:"pipelines"`
}

type cachedPipeline struct {
	Revision int64           `json:"revision"`
	Value    json.RawMessage `json:"value"`
}

// MarshalCache is the custom pipelines in force, to be kept for a start
// while etcd is unreachable; false until the set was loaded from etcd.
func (s *Set) MarshalCache() ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.from != "etcd" {
		return nil, false
	}
	c := cacheFile{Prefix: s.prefix, Pipelines: map[string]cachedPipeline{}}
	for n, v := range s.raw {
		c.Pipelines[n] = cachedPipeline{Revision: s.inUse[n], Value: json.RawMessage(v)}
	}
	data, err := json.Marshal(c)
	return data, err == nil
}

// LoadCache loads the custom pipelines kept by MarshalCache, each checked
// as one from etcd (a version that no longer validates is left out, and
// said). It does nothing once the set was loaded from etcd.
func (s *Set) LoadCache(data []byte) error {
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("decoding the pipeline cache: %w", err)
	}
	if c.Prefix != s.prefix {
		return fmt.Errorf("the pipeline cache is of prefix %q, not %q", c.Prefix, s.prefix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.from != "" {
		return nil
	}
	for name, p := range c.Pipelines {
		if why := ValidName(name); why != "" {
			s.refuse(s.log.WithField("pipeline", name), name, "cached copy: "+why)
			continue
		}
		f, err := Parse(p.Value)
		if err != nil {
			s.refuse(s.log.WithField("pipeline", name), name, "cached copy: "+err.Error())
			continue
		}
		s.custom[name], s.inUse[name], s.raw[name], s.seen[name] = f, p.Revision, []byte(p.Value), p.Revision
	}
	s.from = "cache"
	s.loaded.Store(true)
	s.log.WithField("pipelines", len(s.custom)).Info("custom pipelines loaded from the cache; etcd's replace them when it answers")
	return nil
}
