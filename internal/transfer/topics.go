package transfer

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/collectconf"
	"github.com/logpipe/logpipe/internal/platform/confwatch"
	"github.com/logpipe/logpipe/internal/platform/metricsconf"
)

// Topics is the set of topics to consume: the configured ones plus every
// topic named in an agent's collect config or host metrics config. A topic no config names any
// more may still hold records not yet consumed: it stays until the
// consumer finds it drained and releases it. An invalid collect config
// never removes topics; the key's last valid topics stay.
type Topics struct {
	log       *logrus.Entry
	keyRE     *regexp.Regexp
	metricsRE *regexp.Regexp // nil: metrics configs are not read
	mu        sync.Mutex
	static    []string
	perKey    map[string][]string // last valid topics per agent key
	revs      map[string]int64    // mod revision last parsed per key
	set       map[string]bool
	notify    chan struct{}

	invalid prometheus.Counter
	refused prometheus.Counter
	pattern *regexp.Regexp
	seenBad map[string]bool // refused topics already logged
}

// NewTopics starts with the static topics. collectKey and metricsKey are
// the agents' key patterns ("/logagent/%s/collect_config",
// "/logagent/%s/metrics_config"; "" for none); only matching keys are
// read.
func NewTopics(static []string, collectKey, metricsKey string, log *logrus.Entry, reg prometheus.Registerer) *Topics {
	t := &Topics{
		log:    log.WithField("component", "topics"),
		keyRE:  keyPattern(collectKey),
		static: static, perKey: map[string][]string{}, revs: map[string]int64{}, set: map[string]bool{},
		notify: make(chan struct{}, 1),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_discovery_invalid_configs_total",
			Help: "Agent collect configs seen in etcd that did not parse (their topics were kept)."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "logtransfer_discovery_refused_topics_total",
			Help: "Topics named in agents' collect configs that discovery does not consume (internal names, or outside [etcd] discover_pattern)."}),
		seenBad: map[string]bool{},
	}
	if metricsKey != "" {
		t.metricsRE = keyPattern(metricsKey)
	}
	for _, s := range static {
		t.set[s] = true
	}
	if reg != nil {
		reg.MustRegister(t.invalid, t.refused)
	}
	return t
}

// keyPattern matches the keys of a pattern with one %s (an agent's IP).
func keyPattern(p string) *regexp.Regexp {
	prefix, suffix, _ := strings.Cut(p, "%s")
	return regexp.MustCompile("^" + regexp.QuoteMeta(prefix) + "([^/]+)" + regexp.QuoteMeta(suffix) + "$")
}

// SetPattern restricts discovered topics to those matching re (nil: any).
// Call before the first Update.
func (t *Topics) SetPattern(re *regexp.Regexp) { t.pattern = re }

// discoverable reports why an agent's topic is not consumed, or "".
// Internal topics (__consumer_offsets, .kibana-like names) never are: an
// agent's config must not make the transfer index them.
func (t *Topics) discoverable(tp string) string {
	switch {
	case strings.HasPrefix(tp, "_") || strings.HasPrefix(tp, "."):
		return "internal topic names (starting with _ or .) are never discovered"
	case t.pattern != nil && !t.pattern.MatchString(tp):
		return "outside [etcd] discover_pattern " + t.pattern.String()
	}
	return ""
}

// WatchPrefix is the etcd prefix that holds every agent's key.
func WatchPrefix(collectKey string) string {
	prefix, _, _ := strings.Cut(collectKey, "%s")
	return prefix
}

// Changed is signalled when topics were added.
func (t *Topics) Changed() <-chan struct{} { return t.notify }

// List returns the topics, sorted.
func (t *Topics) List() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.set))
	for k := range t.set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Unnamed lists the discovered topics that no collect config names any
// more (and that are not configured): to be released once drained.
func (t *Topics) Unnamed() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	named := t.namedLocked()
	var out []string
	for tp := range t.set {
		if !named[tp] {
			out = append(out, tp)
		}
	}
	sort.Strings(out)
	return out
}

func (t *Topics) namedLocked() map[string]bool {
	named := make(map[string]bool, len(t.set))
	for _, s := range t.static {
		named[s] = true
	}
	for _, topics := range t.perKey {
		for _, tp := range topics {
			named[tp] = true
		}
	}
	return named
}

// Release drops a topic that is still unnamed (a config naming it again
// in the meantime keeps it). It reports whether it was dropped.
func (t *Topics) Release(tp string) bool {
	t.mu.Lock()
	if !t.set[tp] || t.namedLocked()[tp] {
		t.mu.Unlock()
		return false
	}
	delete(t.set, tp)
	t.mu.Unlock()
	t.log.WithField("topic", tp).Info("topic named by no collect config any more and consumed to its end; released")
	select {
	case t.notify <- struct{}{}:
	default:
	}
	return true
}

// Update applies a snapshot of the agents' prefix.
func (t *Topics) Update(s *confwatch.Snapshot) {
	if s == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for key, kv := range s.KVs {
		metrics := t.metricsRE != nil && t.metricsRE.MatchString(key)
		if !metrics && !t.keyRE.MatchString(key) {
			continue // not an agent's config (inventory keys, …)
		}
		seen[key] = true
		if t.revs[key] == kv.ModRevision {
			continue // unchanged since last parsed
		}
		t.revs[key] = kv.ModRevision
		var topics []string
		var err error
		if metrics {
			var tp string
			if tp, err = metricsconf.ParseTopic(kv.Value); err == nil && tp != "" {
				topics = []string{tp}
			}
		} else {
			topics, err = collectconf.ParseTopics(kv.Value)
		}
		if err != nil {
			t.invalid.Inc()
			t.log.WithError(err).WithField("key", key).Warn("ignoring an invalid agent config; its previous topics stay")
			continue
		}
		t.perKey[key] = topics
	}
	for key := range t.revs {
		if !seen[key] {
			delete(t.perKey, key)
			delete(t.revs, key)
		}
	}
	var added []string
	for _, topics := range t.perKey {
		for _, tp := range topics {
			if why := t.discoverable(tp); why != "" {
				if !t.seenBad[tp] && len(t.seenBad) < 1000 {
					t.seenBad[tp] = true
					t.refused.Inc()
					t.log.WithField("topic", tp).Warn("not consuming a topic named in an agent's collect config: " + why)
				}
				continue
			}
			if !t.set[tp] {
				t.set[tp] = true
				added = append(added, tp)
			}
		}
	}
	if len(added) > 0 {
		sort.Strings(added)
		t.log.WithField("added", fmt.Sprint(added)).Info("discovered topics")
		select {
		case t.notify <- struct{}{}:
		default:
		}
	}
}
