package election

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// act is one act a leader made after Confirm said it may.
type act struct {
	who string
	at  time.Time
}

// recorder is what the three candidates did, in order.
type recorder struct {
	mu   sync.Mutex
	acts []act
}

func (r *recorder) add(who string) {
	r.mu.Lock()
	r.acts = append(r.acts, act{who, time.Now()})
	r.mu.Unlock()
}

// actors is who acted, in order, each run of acts by one candidate once.
func (r *recorder) actors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.acts {
		if len(out) == 0 || out[len(out)-1] != a.who {
			out = append(out, a.who)
		}
	}
	return out
}

// candidate is one elector on its own connection to etcd, through a proxy
// the test can break (a partition).
type candidate struct {
	id    string
	el    *Elector
	proxy *testutil.Proxy
	stop  context.CancelFunc
	done  chan struct{}
}

// Three candidates on one election: exactly one acts at a time. The
// leader partitioned from etcd stops acting (it cannot confirm) before
// another, elected once its lease has expired, starts; a leader that
// stops resigns and another takes over at once. Acts are whatever a
// leader does after Confirm: the sequence of actors changes only at a
// hand-over and never comes back to a leader that lost the lead while cut
// off.
func TestOneLeaderActsAtATime(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	rec := &recorder{}
	const ttl = 2 * time.Second
	cands := map[string]*candidate{}
	for i := range 3 {
		c := &candidate{id: fmt.Sprintf("transfer-%d", i), proxy: testutil.StartProxy(t, etcd.Endpoint()), done: make(chan struct{})}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{c.proxy.Addr()}, DialTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		c.el = New(cli, Options{Key: "/test/leader", ID: c.id, TTL: ttl, Timeout: time.Second, Metric: fmt.Sprintf("test%d", i)}, testutil.Logger(t), nil)
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		go func() {
			defer close(c.done)
			c.el.Run(ctx, func(ctx context.Context) error {
				tick := time.NewTicker(50 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-tick.C:
					}
					if c.el.Confirm(ctx) == nil {
						rec.add(c.id)
					}
				}
			})
		}()
		t.Cleanup(func() { cancel(); <-c.done })
		cands[c.id] = c
	}
	leader := func() string {
		a := rec.actors()
		if len(a) == 0 {
			return ""
		}
		return a[len(a)-1]
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return leader() != "" }, testutil.Msg("a leader acting"))
	first := leader()
	for id, c := range cands {
		if st := c.el.Status(); st.Leading != (id == first) {
			t.Errorf("%s: status %+v while %s acts", id, st, first)
		}
	}

	// Cut the leader off from etcd: another takes over after the lease.
	cut := time.Now()
	cands[first].proxy.Break()
	// Cut off, it still holds its session (it notices only when its
	// keep-alives run out), but it cannot confirm: it acts no more.
	if !cands[first].el.Status().Leading {
		t.Fatalf("%s noticed the partition at once; the check below would prove nothing", first)
	}
	if err := cands[first].el.Confirm(context.Background()); err == nil {
		t.Fatalf("%s, cut off from etcd, confirmed its lead", first)
	}
	testutil.Eventually(t, 5*ttl, func() bool { return leader() != first }, testutil.Msg("a new leader after %s was cut off", first))
	second := leader()
	rec.mu.Lock()
	var lastOld, firstNew time.Time
	for _, a := range rec.acts {
		if a.who == first {
			lastOld = a.at
		}
		if a.who == second && firstNew.IsZero() {
			firstNew = a.at
		}
	}
	rec.mu.Unlock()
	if !lastOld.Before(firstNew) {
		t.Fatalf("%s acted at %v, after %s started at %v", first, lastOld, second, firstNew)
	}
	t.Logf("%s cut off at +0; its last act at %v; %s's first at %v", first, lastOld.Sub(cut), second, firstNew.Sub(cut))

	// The second stops cleanly: it resigns, the third takes over at once
	// (no lease to wait for).
	cands[second].stop()
	<-cands[second].done
	stopped := time.Now()
	testutil.Eventually(t, 5*ttl, func() bool { l := leader(); return l != second && l != first }, testutil.Msg("the third leads"))
	if d := time.Since(stopped); d > ttl {
		t.Errorf("the hand-over after a resignation took %v, more than the lease's %v", d, ttl)
	}
	// The first, back in touch, does not act again while the third leads.
	cands[first].proxy.Heal()
	third := leader()
	n := len(rec.actors())
	// Back in touch is when it observes the leader again (a new session,
	// campaigning behind the third).
	testutil.Eventually(t, 5*ttl, func() bool {
		st := cands[first].el.Status()
		return !st.Leading && st.Leader == third
	}, func() string {
		return fmt.Sprintf("%s following %s again: %+v", first, third, cands[first].el.Status())
	})
	if a := rec.actors(); len(a) != n || a[len(a)-1] != third {
		t.Fatalf("actors after the partition healed: %v (want %s alone since)", a, third)
	}
}
