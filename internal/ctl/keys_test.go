package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/dev/testutil"
	"github.com/logpipe/logpipe/internal/platform/keyring"
)

// logctl keys lists key ids and never a secret; rotate puts a new signing
// key first and keeps the old ones; retire keeps only the signing one; an
// invalid document is shown with its problem and not rewritten.
func TestKeysListRotateRetire(t *testing.T) {
	etcd := testutil.StartEtcd(t)
	ep := "--endpoints=" + etcd.Endpoint()
	k, err := keyring.NewKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(keyring.KeyDoc{IP: "10.0.0.1", Host: "web-1", Keys: []keyring.Key{k}})
	etcd.Put("/logagent/keys/10.0.0.1", string(raw))
	etcd.Put("/logagent/keys/10.0.0.2", `{"ip":"10.0.0.2","host":"x","keys":[]}`)

	code, out, errOut := run(t, "", ep, "keys")
	if code != 0 || !strings.Contains(out, k.ID) || !strings.Contains(out, "web-1") || !strings.Contains(out, "0 keys") {
		t.Fatalf("keys: %d %q %q", code, out, errOut)
	}
	if strings.Contains(out, k.Secret) {
		t.Fatal("a secret was printed")
	}
	code, out, errOut = run(t, "", ep, "keys", "rotate", "10.0.0.1")
	if code != 0 || !strings.Contains(out, "2 key(s)") {
		t.Fatalf("rotate: %d %q %q", code, out, errOut)
	}
	doc := getDoc(t, etcd, "/logagent/keys/10.0.0.1")
	if len(doc.Keys) != 2 || doc.Keys[1].ID != k.ID || doc.Keys[0].ID == k.ID {
		t.Fatalf("after rotate: %+v", ids(doc))
	}
	code, out, _ = run(t, "", ep, "keys", "retire", "10.0.0.1")
	if d := getDoc(t, etcd, "/logagent/keys/10.0.0.1"); code != 0 || len(d.Keys) != 1 || d.Keys[0].ID != doc.Keys[0].ID {
		t.Fatalf("retire: %d %q %+v", code, out, ids(d))
	}
	if code, _, errOut = run(t, "", ep, "keys", "rotate", "10.0.0.2"); code != 1 || !strings.Contains(errOut, "0 keys") {
		t.Fatalf("rotate of an invalid document: %d %q", code, errOut)
	}
	if code, _, _ = run(t, "", ep, "keys", "rotate"); code != 2 {
		t.Fatalf("usage exit %d", code)
	}
}

func getDoc(t *testing.T, etcd *testutil.Etcd, key string) keyring.KeyDoc {
	t.Helper()
	resp, err := etcd.Client().Get(context.Background(), key)
	if err != nil || len(resp.Kvs) == 0 {
		t.Fatalf("get %s: %v", key, err)
	}
	var d keyring.KeyDoc
	if err := json.Unmarshal(resp.Kvs[0].Value, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func ids(d keyring.KeyDoc) []string {
	var out []string
	for _, k := range d.Keys {
		out = append(out, k.ID)
	}
	return out
}
