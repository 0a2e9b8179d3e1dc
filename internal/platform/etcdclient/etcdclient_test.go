package etcdclient

import (
	"testing"
	"time"

	"github.com/logpipe/logpipe/internal/platform/config"
)

// The client configuration carries the config's TLS, user and password,
// endpoints and timeout, and reconnects within seconds.
func TestConfigFromTheIni(t *testing.T) {
	a, err := config.ParseAgent("a.ini", []byte("[etcd]\naddress = etcd1:2379\ntls = true\ntls_insecure_skip_verify = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	cc := Config(a.Etcd.Endpoints, a.Etcd.Timeout, a.Etcd.Security, nil)
	if cc.TLS == nil || !cc.TLS.InsecureSkipVerify || cc.Username != "" || cc.Password != "" || cc.DialTimeout != 5*time.Second || len(cc.Endpoints) != 1 || cc.Logger == nil {
		t.Errorf("etcd client config %+v", cc)
	}
	if len(cc.DialOptions) != 1 {
		t.Errorf("%d dial options, want the reconnect backoff", len(cc.DialOptions))
	}
	a, err = config.ParseAgent("a.ini", []byte("[etcd]\nusername = agent\npassword = pw\nallow_insecure_auth = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cc := Config(a.Etcd.Endpoints, a.Etcd.Timeout, a.Etcd.Security, nil); cc.TLS != nil || cc.Username != "agent" || cc.Password != "pw" {
		t.Errorf("etcd auth client config %+v", cc)
	}
}
