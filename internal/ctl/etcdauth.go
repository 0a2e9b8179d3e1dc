package ctl

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/platform/etcdclient"
	"github.com/logpipe/logpipe/internal/platform/security"
)

// etcdFlags are etcdctl's transport and auth flags: --cacert, --cert,
// --key and --user (name:password, or name with the password in
// ETCDCTL_PASSWORD). Unset flags fall back to etcdctl's environment
// variables. They are resolved after parsing, so -h never prints them.
type etcdFlags struct {
	cacert, cert, key, user *string
}

func flagOrEnv(p *string, env string) string {
	if p != nil && *p != "" {
		return *p
	}
	return os.Getenv(env)
}

// clientConfig builds the etcd client configuration with the same helper
// the daemons use. Errors name the flag; they never contain the password.
func (f etcdFlags) clientConfig(endpoints []string, timeout time.Duration, log *zap.Logger) (clientv3.Config, error) {
	var sec config.EtcdSecurity
	files := security.Files{
		CA:   flagOrEnv(f.cacert, "ETCDCTL_CACERT"),
		Cert: flagOrEnv(f.cert, "ETCDCTL_CERT"),
		Key:  flagOrEnv(f.key, "ETCDCTL_KEY"),
	}
	var https, plain string
	for _, ep := range endpoints {
		if strings.HasPrefix(ep, "https://") && https == "" {
			https = ep
		}
		if strings.HasPrefix(ep, "http://") && plain == "" {
			plain = ep
		}
	}
	if files.CA != "" || files.Cert != "" || files.Key != "" || https != "" {
		if plain != "" {
			return clientv3.Config{}, fmt.Errorf("--endpoints: %s is plain http but TLS is on (--cacert/--cert/--key or an https:// endpoint): use https:// or no scheme", plain)
		}
		t, err := config.NewTLS(files)
		if err != nil {
			flag := "--cert"
			var fe *security.FileError
			if errors.As(err, &fe) {
				flag = map[string]string{security.FieldCA: "--cacert", security.FieldCert: "--cert", security.FieldKey: "--key"}[fe.Field]
			}
			return clientv3.Config{}, fmt.Errorf("%s: %v", flag, err)
		}
		sec.TLS = t
	}
	if u := flagOrEnv(f.user, "ETCDCTL_USER"); u != "" {
		name, pass, ok := strings.Cut(u, ":")
		if name == "" {
			return clientv3.Config{}, errors.New("--user: empty user name (want name:password)")
		}
		if !ok {
			pass = os.Getenv("ETCDCTL_PASSWORD")
		}
		if pass == "" {
			return clientv3.Config{}, fmt.Errorf("--user %s has no password: give name:password or set ETCDCTL_PASSWORD", name)
		}
		sec.Username, sec.Password = name, config.NewSecret(pass)
	}
	return etcdclient.Config(endpoints, timeout, sec, log), nil
}
