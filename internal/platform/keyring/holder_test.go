package keyring

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	tu "github.com/logpipe/logpipe/internal/dev/testutil"
)

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	l.SetLevel(logrus.ErrorLevel)
	return logrus.NewEntry(l)
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tu.Eventually(t, 20*time.Second, cond, func() string { return what })
}

func runHolder(t *testing.T, etcd *tu.Etcd, key, ip, host, cache string) (*Holder, func()) {
	t.Helper()
	h := NewHolder(etcd.Client(), HolderOptions{Key: key, IP: ip, Host: host, CachePath: cache, Timeout: 2 * time.Second}, quiet(), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Run(ctx)
	}()
	return h, func() { cancel(); <-done }
}

// Two agents starting at once on one key document (a re-imaged host with
// the same IP) end with one key: the document is created once.
// Rotations an operator writes take over; an invalid document is
// refused, counted and visible, and the key in force stays; a document
// naming another host is repaired, keeping its keys.
func TestHolderCreatesOnceAndFollows(t *testing.T) {
	etcd := tu.StartEtcd(t)
	dir := t.TempDir()
	const key = "/logagent/keys/10.1.1.1"
	a, stopA := runHolder(t, etcd, key, "10.1.1.1", "web-1", filepath.Join(dir, "a.json"))
	defer stopA()
	b, stopB := runHolder(t, etcd, key, "10.1.1.1", "web-1", filepath.Join(dir, "b.json"))
	defer stopB()
	until(t, "both keys", func() bool { return a.Key() != nil && b.Key() != nil })
	until(t, "one key", func() bool { return a.Key().ID == b.Key().ID })
	first := a.Key().ID
	if fi, err := os.Stat(filepath.Join(dir, "a.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache: %v %v", fi, err)
	}

	// Rotation: a new key first, the old one kept for verification.
	var doc KeyDoc
	raw := get(t, etcd, key)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	nk, err := NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	doc.Keys = append([]Key{nk}, doc.Keys...)
	put(t, etcd, key, doc)
	until(t, "the rotated key", func() bool { return a.Key().ID.String() == nk.ID })
	if a.Key().ID == first {
		t.Fatal("still the first key")
	}

	// Invalid: refused, the rotated key stays, the error is visible.
	etcd.Put(key, `{"ip":"10.1.1.1","host":"web-1","keys":[{"id":"zz","secret":"x"}]}`)
	until(t, "the error", func() bool { return a.Err() != nil })
	if a.Key().ID.String() != nk.ID || testutil.ToFloat64(a.errs) == 0 {
		t.Fatalf("after an invalid document: key %s, errors %v", a.Key().ID, testutil.ToFloat64(a.errs))
	}

	// Another host's name: repaired, keys kept.
	doc.Host = "somebody-else"
	put(t, etcd, key, doc)
	// A key never changes the host it signs for: the agent adds one for
	// itself, the others stay.
	until(t, "the repair", func() bool {
		var d KeyDoc
		return json.Unmarshal(get(t, etcd, key), &d) == nil && d.Host == "web-1" && len(d.Keys) == 3 &&
			d.Keys[0].Host == "web-1" && d.Keys[0].IP == "10.1.1.1" && d.Keys[1].ID == nk.ID && d.Keys[1].Host == "somebody-else"
	})
	until(t, "signing with the new key", func() bool { return a.Key().ID.String() != nk.ID && a.Key().ID != first })
	until(t, "no error", func() bool { return a.Err() == nil })

	// Deleted (revoked): a new document, with the cached key.
	etcd.Delete(key)
	until(t, "the document again", func() bool { return len(get(t, etcd, key)) > 0 })
}

// An agent restarted while etcd is down signs at once with its cached key.
func TestHolderSignsFromCacheWhileEtcdIsDown(t *testing.T) {
	etcd := tu.StartEtcd(t)
	cache := filepath.Join(t.TempDir(), "signing_key.json")
	const key = "/logagent/keys/10.1.1.2"
	h, stop := runHolder(t, etcd, key, "10.1.1.2", "web-2", cache)
	until(t, "a key", func() bool { return h.Key() != nil })
	id := h.Key().ID
	stop()
	etcd.Stop()

	h2, stop2 := runHolder(t, etcd, key, "10.1.1.2", "web-2", cache)
	defer stop2()
	select {
	case <-h2.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("not ready from the cache")
	}
	if h2.Key().ID != id {
		t.Fatalf("cached key %s, want %s", h2.Key().ID, id)
	}
	// Another host's cache is not used.
	h3, stop3 := runHolder(t, etcd, key, "10.1.1.3", "web-3", cache)
	defer stop3()
	if err := h3.Err(); err == nil || h3.Key() != nil {
		t.Fatalf("a foreign cache was used: %v", h3.Key())
	}
}

func get(t *testing.T, etcd *tu.Etcd, key string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := etcd.Client().Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	return resp.Kvs[0].Value
}

func put(t *testing.T, etcd *tu.Etcd, key string, doc KeyDoc) {
	t.Helper()
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	etcd.Put(key, string(raw))
}
