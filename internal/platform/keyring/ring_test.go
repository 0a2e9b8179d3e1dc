package keyring

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"pgregory.net/rapid"

	"github.com/logpipe/logpipe/internal/contract/record"
	tu "github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/kafka"
)

const prefix = "/logagent/keys/"

type agentKey struct {
	ip, host string
	key      *record.SigningKey
	raw      Key
}

func newAgentKey(t testing.TB, ip, host string) agentKey {
	t.Helper()
	k, err := NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, _ := record.ParseKeyID(k.ID)
	secret, _ := base64.StdEncoding.DecodeString(k.Secret)
	sk, err := record.NewSigningKey(id, secret)
	if err != nil {
		t.Fatal(err)
	}
	return agentKey{ip: ip, host: host, key: sk, raw: k}
}

func startRing(t *testing.T, etcd *tu.Etcd, opt RingOptions) *Ring {
	t.Helper()
	opt.Prefix, opt.Timeout = prefix, 2*time.Second
	r := NewRing(etcd.Client(), opt, quiet(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

// message builds a record as the agent sends it, claiming host (none:
// the key names it), signed on its own with k (nil: unsigned).
func message(topic string, host, ip string, value []byte, k *record.SigningKey) *sarama.ConsumerMessage {
	var hs []*sarama.RecordHeader
	if host != "" || ip != "" {
		hs = append(hs, &sarama.RecordHeader{Key: []byte(record.HeaderHostName), Value: []byte(host)},
			&sarama.RecordHeader{Key: []byte(record.HeaderHostIP), Value: []byte(ip)})
	}
	hs = append(hs, &sarama.RecordHeader{Key: []byte(record.HeaderEventID), Value: []byte("0123456789abcdef-42")})
	msg := &sarama.ConsumerMessage{Topic: topic, Key: []byte("/var/log/app.log"), Value: value, Headers: hs}
	if k != nil {
		sig := k.Sign(nil, topic, msg.Key, value, kafka.Headers(hs)) // a chunk of one
		msg.Headers = append(msg.Headers, &sarama.RecordHeader{Key: []byte(record.HeaderSig), Value: sig})
	}
	return msg
}

// checkOne has r judge msg alone, taken in hand at round.
func checkOne(r *Ring, msg *sarama.ConsumerMessage, round time.Time) (record.View, record.Verdict, bool) {
	v := []record.View{record.ParseRecord(msg.Key, kafka.Headers(msg.Headers))}
	out := make([]record.Verdict, 1)
	var ch record.Chunk
	ok := r.Check(context.Background(), []*sarama.ConsumerMessage{msg}, v, round, &ch, out)
	return v[0], out[0], ok
}

func check(t interface{ Fatal(...any) }, r *Ring, msg *sarama.ConsumerMessage) string {
	v, verdict, ok := checkOne(r, msg, time.Now())
	if !ok {
		t.Fatal("check gave up")
	}
	if verdict.Signed != (verdict.Quarantine == "" && v.Sigs > 0) {
		t.Fatal("signed is not 'indexed with a signature'")
	}
	return verdict.Quarantine
}

// The guarantee: a record is indexed if and only if it is exactly what
// the agent of the host it claims signed, with one of that host's keys
// (the one that signs now or an older one kept for rotation), or it is
// unsigned, accept_unsigned is on and no agent of that IP signs. Records
// are generated from every signer (each agent's keys, a key nobody has,
// none) claiming every host (each agent, a host without a key), then
// changed or not in every way a producer can (value, topic, key, a header
// changed, added or dropped, the signature cut, doubled or of another
// record), and checked against both switch positions.
func TestRingIndexesOnlyWhatTheClaimedHostSigned(t *testing.T) {
	etcd := tu.StartEtcd(t)
	a0, a1 := newAgentKey(t, "10.0.0.1", "web-1"), newAgentKey(t, "10.0.0.1", "web-1")
	b := newAgentKey(t, "10.0.0.2", "db-1")
	stranger := newAgentKey(t, "10.0.0.9", "nobody")
	put(t, etcd, prefix+"10.0.0.1", KeyDoc{IP: "10.0.0.1", Host: "web-1", Keys: []Key{a1.raw, a0.raw}})
	put(t, etcd, prefix+"10.0.0.2", KeyDoc{IP: "10.0.0.2", Host: "db-1", Keys: []Key{b.raw}})
	strict := startRing(t, etcd, RingOptions{})
	lenient := startRing(t, etcd, RingOptions{AcceptUnsigned: true})
	until(t, "keys loaded", func() bool { return strict.Ready() == nil && lenient.Ready() == nil })
	until(t, "both documents", func() bool { return len(strict.state.Load().hosts) == 2 && len(lenient.state.Load().hosts) == 2 })

	claims := []struct{ host, ip string }{{"web-1", "10.0.0.1"}, {"db-1", "10.0.0.2"}, {"laptop", "10.0.0.3"}, {"web-1", "10.0.0.2"}, {"", ""}}
	signers := []*agentKey{&a0, &a1, &b, &stranger, nil}
	rapid.Check(t, func(rt *rapid.T) {
		claim := claims[rapid.IntRange(0, len(claims)-1).Draw(rt, "claim")]
		signer := signers[rapid.IntRange(0, len(signers)-1).Draw(rt, "signer")]
		value := rapid.SliceOfN(rapid.Byte(), 0, 80).Draw(rt, "value")
		var sk *record.SigningKey
		if signer != nil {
			sk = signer.key
		}
		msg := message("app", claim.host, claim.ip, value, sk)
		change := rapid.IntRange(0, 8).Draw(rt, "change")
		switch change {
		case 1:
			msg.Value = append(bytes.Clone(msg.Value), '!')
		case 2:
			msg.Topic = "other"
		case 3:
			msg.Key = []byte("/var/log/other.log")
		case 4:
			for i, h := range msg.Headers {
				if string(h.Key) == record.HeaderEventID {
					msg.Headers[i] = &sarama.RecordHeader{Key: h.Key, Value: []byte("0123456789abcdef-43")}
				}
			}
		case 5:
			msg.Headers = append([]*sarama.RecordHeader{{Key: []byte(record.HeaderPipeline), Value: []byte("x")}}, msg.Headers...)
		case 6:
			if n := len(msg.Headers); n > 0 && string(msg.Headers[n-1].Key) == record.HeaderSig {
				msg.Headers = append(msg.Headers[:n-1:n-1], &sarama.RecordHeader{Key: []byte(record.HeaderSig), Value: msg.Headers[n-1].Value[:record.SigLen-1]})
			} else {
				change = 0
			}
		case 7:
			if n := len(msg.Headers); n > 0 && string(msg.Headers[n-1].Key) == record.HeaderSig {
				msg.Headers = append(msg.Headers, msg.Headers[n-1])
			} else {
				change = 0
			}
		case 8: // another record's signature, by the same key
			if sk != nil {
				other := message("app", claim.host, claim.ip, append(bytes.Clone(value), 'x'), sk)
				msg.Headers[len(msg.Headers)-1] = other.Headers[len(other.Headers)-1]
			} else {
				change = 0
			}
		}
		intact := change == 0
		// A record without host headers claims its key's host.
		signedByClaimed := signer != nil && signer != &stranger && (claim.ip == "" || signer.ip == claim.ip && signer.host == claim.host)
		for _, c := range []struct {
			r      *Ring
			accept bool
		}{{strict, false}, {lenient, true}} {
			want := intact && signedByClaimed
			if signer == nil {
				// Unsigned: any content goes, if unsigned records are
				// accepted at all and the IP is not a signer's.
				want = c.accept && claim.ip != a0.ip && claim.ip != b.ip
			}
			_, verdict, ok := checkOne(c.r, msg, time.Now())
			if !ok {
				rt.Fatal("check gave up")
			}
			reason := verdict.Quarantine
			if verdict.Signed && (string(verdict.HostName) != signer.host || string(verdict.HostIP) != signer.ip) {
				rt.Fatalf("a record signed by %v indexed as %s/%s's", signer, verdict.HostName, verdict.HostIP)
			}
			if (reason == "") != want {
				rt.Fatalf("accept_unsigned=%v, signer %v, claim %v, change %d: verdict %q, want indexed=%v", c.accept, signer, claim, change, reason, want)
			}
			if reason != "" && !strings.HasPrefix(reason, "quarantined: ") {
				rt.Fatalf("reason %q", reason)
			}
		}
	})
}

// A record signed with a key the watch has not brought yet (the agent
// created it a moment ago) is checked against a fresh read of etcd, once
// for every record taken in hand before that read; a key id still unknown
// then is quarantined without another read.
func TestRingReadsEtcdForAKeyNotSeenYet(t *testing.T) {
	etcd := tu.StartEtcd(t)
	cache := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(cache, []byte(`{"prefix":"`+prefix+`","docs":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// Not run: no watch, only the cache and the reads.
	r := NewRing(etcd.Client(), RingOptions{Prefix: prefix, CachePath: cache, Timeout: 2 * time.Second}, quiet(), prometheus.NewRegistry())
	r.loadCache()
	if r.Ready() != nil {
		t.Fatal("not ready from the cache")
	}
	a := newAgentKey(t, "10.0.0.1", "web-1")
	before := time.Now()
	put(t, etcd, prefix+"10.0.0.1", KeyDoc{IP: a.ip, Host: a.host, Keys: []Key{a.raw}})
	if reason := check(t, r, message("app", a.host, a.ip, []byte("hello"), a.key)); reason != "" {
		t.Fatalf("a new agent's record: %s", reason)
	}
	if n := testutil.ToFloat64(r.syncs); n != 1 {
		t.Fatalf("%v reads, want 1", n)
	}
	// Taken in hand before that read: no read again, quarantined.
	x := newAgentKey(t, "10.0.0.1", "web-1")
	msg := message("app", a.host, a.ip, []byte("forged"), x.key)
	_, verdict, ok := checkOne(r, msg, before)
	reason := verdict.Quarantine
	if !ok || !strings.Contains(reason, "no agent has") || testutil.ToFloat64(r.syncs) != 1 {
		t.Fatalf("unknown key: %q %v, %v reads", reason, ok, testutil.ToFloat64(r.syncs))
	}
	if raw, err := os.ReadFile(cache); err != nil || !bytes.Contains(raw, []byte("10.0.0.1")) {
		t.Fatalf("cache not kept: %v", err)
	}
}

// While etcd does not answer, a record naming a key not seen yet holds
// its partition (it may be a new agent's), and goes on once etcd answers;
// a ring with no keys at all holds every record.
func TestRingHoldsWhileItCannotTell(t *testing.T) {
	etcd := tu.StartEtcd(t)
	a := newAgentKey(t, "10.0.0.1", "web-1")
	put(t, etcd, prefix+"10.0.0.1", KeyDoc{IP: a.ip, Host: a.host, Keys: []Key{a.raw}})
	etcd.Stop()
	r := startRing(t, etcd, RingOptions{})
	if r.Ready() == nil {
		t.Fatal("ready with no keys")
	}
	done := make(chan string, 1)
	go func() { done <- check(t, r, message("app", a.host, a.ip, []byte("hello"), a.key)) }()
	until(t, "the claim to wait", func() bool { return testutil.ToFloat64(r.waiting) == 1 })
	select {
	case reason := <-done:
		t.Fatalf("decided without keys: %q", reason)
	default:
	}
	etcd.Start()
	select {
	case reason := <-done:
		if reason != "" {
			t.Fatalf("after etcd came back: %s", reason)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("still waiting after etcd came back")
	}
}

// String names the key without its secret.
func (k *agentKey) String() string { return k.host + "/" + k.ip + "/" + k.key.ID.String() }
