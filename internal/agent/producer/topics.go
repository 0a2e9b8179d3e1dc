package producer

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/logpipe/logpipe/internal/platform/backoff"
)

// Topic states.
const (
	TopicUnverified = "unverified" // not yet seen in Kafka's metadata
	TopicOK         = "ok"
	TopicBlocked    = "blocked" // Kafka refuses it: missing, not authorised, invalid
)

// TopicStatus is what the producer knows of one topic.
type TopicStatus struct {
	Topic  string    `json:"topic"`
	State  string    `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// gates isolate topics from one another. A topic's batches are accepted
// only once Kafka's metadata has shown the topic (asking creates it where
// the brokers auto-create topics) and while no topic-level error came back
// for it. A closed gate pauses only the files of that topic: their Send
// waits before taking any of the shared bounds, so the other topics keep
// flowing; the prober reopens the gate once metadata shows the topic
// usable (created, or authorised, later).
type gates struct {
	mu      sync.Mutex
	m       map[string]*gate
	wake    chan struct{} // a gate needs probing
	blocked *prometheus.GaugeVec
	log     *logrus.Entry
}

type gate struct {
	open chan struct{} // closed while the topic accepts batches
	st   TopicStatus
	due  time.Time // next probe
	bo   backoff.Backoff
}

func newGates(log *logrus.Entry) *gates {
	return &gates{m: map[string]*gate{}, wake: make(chan struct{}, 1), log: log,
		blocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "logagent_topic_blocked",
			Help: "1 while Kafka refuses the topic (missing, not authorised, invalid): its files are paused, their lines kept."}, []string{"topic"})}
}

func (g *gates) get(topic string) *gate {
	x := g.m[topic]
	if x == nil {
		x = &gate{open: make(chan struct{}), st: TopicStatus{Topic: topic, State: TopicUnverified, Since: time.Now()},
			bo: backoff.Backoff{Min: time.Second, Max: 10 * time.Second}}
		g.m[topic] = x
		g.poke()
	}
	return x
}

func (g *gates) poke() {
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// wait returns once topic accepts batches, or ctx's error.
func (g *gates) wait(ctx context.Context, topic string) error {
	g.mu.Lock()
	ch := g.get(topic).open
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setOK opens topic's gate.
func (g *gates) setOK(topic string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.get(topic)
	if x.st.State == TopicOK {
		return
	}
	if x.st.State == TopicBlocked {
		g.log.WithField("topic", topic).Info("Kafka accepts the topic again; its files resume")
	}
	x.st = TopicStatus{Topic: topic, State: TopicOK, Since: time.Now()}
	x.bo.Reset()
	close(x.open)
	g.blocked.WithLabelValues(topic).Set(0)
}

// block closes topic's gate with reason; the prober checks it again later.
func (g *gates) block(topic string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	x := g.get(topic)
	reason := err.Error()
	if x.st.State == TopicBlocked && x.st.Reason == reason {
		return
	}
	if x.st.State == TopicOK {
		x.open = make(chan struct{})
	}
	if x.st.State != TopicBlocked {
		g.log.WithField("topic", topic).WithError(err).Warn("Kafka refuses the topic; its files are paused (nothing is dropped) until it is usable")
		x.st.Since = time.Now()
	}
	x.st.State, x.st.Reason = TopicBlocked, reason
	x.due = time.Now().Add(x.bo.Next())
	g.blocked.WithLabelValues(topic).Set(1)
}

// status lists every topic seen, by name.
func (g *gates) status() []TopicStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]TopicStatus, 0, len(g.m))
	for _, x := range g.m {
		out = append(out, x.st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}

// topicError reports whether err is about the topic itself (it will not
// go away by retrying the same send), not about the connection.
func topicError(err error) bool {
	return errors.Is(err, sarama.ErrUnknownTopicOrPartition) || errors.Is(err, sarama.ErrTopicAuthorizationFailed) ||
		errors.Is(err, sarama.ErrInvalidTopic)
}

// probe checks, until ctx ends, every topic that is not open and whose
// check is due, through client's metadata.
func (g *gates) probe(ctx context.Context, client metadata) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-g.wake:
		}
		now := time.Now()
		var due []string
		g.mu.Lock()
		for t, x := range g.m {
			if x.st.State != TopicOK && !x.due.After(now) {
				due = append(due, t)
			}
		}
		g.mu.Unlock()
		for _, t := range due {
			if ctx.Err() != nil {
				return
			}
			err := client.RefreshMetadata(t)
			var parts []int32
			if err == nil {
				parts, err = client.Partitions(t)
			}
			switch {
			case err == nil && len(parts) > 0:
				g.setOK(t)
			case err != nil && topicError(err):
				g.block(t, err)
			default: // Kafka unreachable or busy: ask again soon
				g.mu.Lock()
				g.m[t].due = time.Now().Add(time.Second)
				g.mu.Unlock()
			}
		}
	}
}
