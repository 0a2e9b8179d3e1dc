package testutil

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// ClientCN is the common name of Certs' client certificate. It is not an
// etcd user, so etcd cannot authenticate a request by the certificate
// alone once auth is on.
const ClientCN = "logpipe-test-client"

// Certs is a throwaway PKI made with crypto/x509 and written as PEM files
// to a temporary directory: a CA, a server certificate for 127.0.0.1, ::1
// and localhost, and a client certificate (CN ClientCN), both signed by
// the CA.
type Certs struct {
	Dir string
	// CA is the CA certificate file.
	CA string
	// ServerCert, ServerKey, ClientCert and ClientKey are PEM files.
	ServerCert, ServerKey string
	ClientCert, ClientKey string

	pool           *x509.CertPool
	server, client tls.Certificate
}

// NewCerts makes a fresh CA with a server and a client certificate. Two
// calls give two unrelated CAs (for wrong-CA tests).
func NewCerts(t testing.TB) *Certs {
	t.Helper()
	dir := t.TempDir()
	c := &Certs{Dir: dir, pool: x509.NewCertPool()}
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: "logpipe test CA", Organization: []string{"logpipe tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c.pool.AddCert(caCert)
	c.CA = writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER)

	leaf := func(name, cn string, usage []x509.ExtKeyUsage, server bool) (certFile, keyFile string, pair tls.Certificate) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: serial(t),
			Subject:      pkix.Name{CommonName: cn, Organization: []string{"logpipe tests"}},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage:  usage,
		}
		if server {
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile = writePEM(t, dir, name+".pem", "CERTIFICATE", der)
		keyFile = writePEM(t, dir, name+"-key.pem", "PRIVATE KEY", keyDER)
		pair, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile, pair
	}
	// etcd's gateway dials its own listener with the server certificate
	// when client certificates are required, so it is a client one too.
	c.ServerCert, c.ServerKey, c.server = leaf("server", "localhost",
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, true)
	c.ClientCert, c.ClientKey, c.client = leaf("client", ClientCN, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false)
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func serial(t testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func writePEM(t testing.TB, dir, name, typ string, der []byte) string {
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Pool holds the CA.
func (c *Certs) Pool() *x509.CertPool { return c.pool }

// ServerTLS is a server configuration with the server certificate;
// clientAuth decides whether clients must present a certificate signed by
// the CA (tls.RequireAndVerifyClientCert).
func (c *Certs) ServerTLS(clientAuth tls.ClientAuthType) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.server},
		ClientCAs:    c.pool,
		ClientAuth:   clientAuth,
	}
}

// ClientTLS trusts the CA and presents the client certificate.
func (c *Certs) ClientTLS() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.pool, Certificates: []tls.Certificate{c.client}}
}

// ConsumeWith is Consume with extra kgo options (TLS, SASL).
func ConsumeWith(t testing.TB, addr string, opts []kgo.Opt, topics ...string) *Consumer {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(strings.Split(addr, ",")...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{cl: cl, cancel: cancel, done: make(chan struct{})}
	go c.loop(ctx)
	t.Cleanup(c.Close)
	return c
}

// SecureEtcd is an embedded etcd that serves clients over https only,
// requires client certificates signed by Certs' CA, and has
// authentication enabled (user root, password RootPassword).
type SecureEtcd struct {
	*Etcd
	Certs        *Certs
	RootPassword string
}

// StartSecureEtcd starts a TLS + auth etcd in t.TempDir(); it stops at
// test cleanup.
func StartSecureEtcd(t testing.TB, certs *Certs) *SecureEtcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Dir = filepath.Join(t.TempDir(), "etcd")
	cfg.Name = "test"
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.BcryptCost = uint(bcrypt.MinCost)
	cp, pp := FreePort(t), FreePort(t)
	cu, _ := url.Parse("https://127.0.0.1:" + strconv.Itoa(cp))
	pu, _ := url.Parse("http://127.0.0.1:" + strconv.Itoa(pp))
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       certs.ServerCert,
		KeyFile:        certs.ServerKey,
		TrustedCAFile:  certs.CA,
		ClientCertAuth: true,
	}
	e := &Etcd{t: t, cfg: cfg, clientPort: cp}
	e.Start()
	t.Cleanup(e.Stop)
	s := &SecureEtcd{Etcd: e, Certs: certs, RootPassword: "root-pw-" + strconv.Itoa(cp)}

	cli := s.Client("", "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.UserAdd(ctx, "root", s.RootPassword); err != nil {
		t.Fatalf("etcd user add root: %v", err)
	}
	if _, err := cli.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatalf("etcd grant root: %v", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		t.Fatalf("etcd auth enable: %v", err)
	}
	return s
}

// Endpoint is the https:// URL of the client listener.
func (s *SecureEtcd) Endpoint() string { return "https://127.0.0.1:" + strconv.Itoa(s.clientPort) }

// Client returns a TLS client presenting the client certificate,
// authenticated as user (none if ""); it is closed at cleanup.
func (s *SecureEtcd) Client(user, password string) *clientv3.Client {
	s.t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{s.Endpoint()}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		TLS: s.Certs.ClientTLS(), Username: user, Password: password,
	})
	if err != nil {
		s.t.Fatalf("etcd client as %q: %v", user, err)
	}
	s.t.Cleanup(func() { c.Close() })
	return c
}

// AddUser creates user with password and read-write access to the keys
// under prefix.
func (s *SecureEtcd) AddUser(user, password, prefix string) {
	s.t.Helper()
	cli := s.Client("root", s.RootPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	role := "role-" + user
	steps := []func() error{
		func() error { _, err := cli.RoleAdd(ctx, role); return err },
		func() error {
			_, err := cli.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := cli.UserAdd(ctx, user, password); return err },
		func() error { _, err := cli.UserGrantRole(ctx, user, role); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			s.t.Fatalf("etcd add user %s: %v", user, err)
		}
	}
}

// Put writes key=value as root.
func (s *SecureEtcd) Put(key, value string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client("root", s.RootPassword).Put(ctx, key, value); err != nil {
		s.t.Fatalf("etcd put %s: %v", key, err)
	}
}

// Delete removes key as root.
func (s *SecureEtcd) Delete(key string) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client("root", s.RootPassword).Delete(ctx, key); err != nil {
		s.t.Fatalf("etcd delete %s: %v", key, err)
	}
}
