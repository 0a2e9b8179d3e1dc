package security

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/logpipe/logpipe/internal/dev/testutil"
)

// handshake runs a real TLS handshake over loopback between a server with
// srv and a client with cli, and returns the client's error (or the
// server's, when the client's side completed).
func handshake(t *testing.T, srv, cli *tls.Config) error {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	serr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			serr <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		err = c.(*tls.Conn).Handshake()
		if err == nil {
			// TLS 1.3 reports a rejected client certificate only on the
			// first read.
			_, err = c.Write([]byte("ok"))
		}
		serr <- err
	}()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), cli)
	if err != nil {
		<-serr
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil {
		<-serr
		return err
	}
	return <-serr
}

func TestFilesConfigHandshake(t *testing.T) {
	certs, other := testutil.NewCerts(t), testutil.NewCerts(t)
	srv := certs.ServerTLS(tls.RequireAndVerifyClientCert)

	good, err := Files{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, good); err != nil {
		t.Fatalf("handshake with the right CA and client certificate: %v", err)
	}
	if good.MinVersion != tls.VersionTLS12 || good.InsecureSkipVerify {
		t.Errorf("config %+v", good)
	}

	// The server certificate is checked against the CA: another CA fails.
	wrongCA, err := Files{CA: other.CA, Cert: certs.ClientCert, Key: certs.ClientKey}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, wrongCA); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("handshake with the wrong CA: %v, want unknown authority", err)
	}

	// The client certificate is sent: without it the server refuses.
	noCert, err := Files{CA: certs.CA}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, noCert); err == nil {
		t.Fatal("handshake without a client certificate succeeded against a server requiring one")
	}

	// ServerName is what the certificate is checked against.
	badName, err := Files{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: "kafka.example"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, badName); err == nil || !strings.Contains(err.Error(), "kafka.example") {
		t.Fatalf("handshake with server name kafka.example: %v", err)
	}
	okName, err := Files{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey, ServerName: "localhost"}.Config()
	if err != nil {
		t.Fatal(err)
	}
	if err := handshake(t, srv, okName); err != nil {
		t.Fatalf("handshake with server name localhost: %v", err)
	}
}

func TestFilesConfigErrors(t *testing.T) {
	certs := testutil.NewCerts(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	keyPEM, err := os.ReadFile(certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		files Files
		field string
		want  string
	}{
		{"missing CA", Files{CA: missing}, FieldCA, "reading CA bundle: open " + missing + ": no such file or directory"},
		{"CA not PEM", Files{CA: notPEM}, FieldCA, notPEM + " holds no PEM certificate"},
		{"cert without key", Files{Cert: certs.ClientCert}, FieldCert, "a client certificate needs its key"},
		{"key without cert", Files{Key: certs.ClientKey}, FieldKey, "a client key needs its certificate"},
		{"missing cert", Files{Cert: missing, Key: certs.ClientKey}, FieldCert, "reading client certificate: open " + missing},
		{"missing key", Files{Cert: certs.ClientCert, Key: missing}, FieldKey, "reading client key: open " + missing},
		{"key is not PEM", Files{Cert: certs.ClientCert, Key: notPEM}, FieldKey, "failed to find any PEM data in key input"},
		{"key is a certificate", Files{Cert: certs.ClientCert, Key: certs.CA}, FieldKey, "found a certificate rather than a key"},
		{"cert is not PEM", Files{Cert: notPEM, Key: certs.ClientKey}, FieldCert, "failed to find any PEM data in certificate input"},
		{"pair mismatch", Files{Cert: certs.ClientCert, Key: certs.ServerKey}, FieldCert, "private key does not match public key"},
	} {
		_, err := tc.files.Config()
		var fe *FileError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %v is not a *FileError", tc.name, err)
			continue
		}
		if fe.Field != tc.field || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: field %q error %q; want field %q containing %q", tc.name, fe.Field, err, tc.field, tc.want)
		}
		if strings.Contains(err.Error(), string(keyPEM[30:60])) {
			t.Errorf("%s: error quotes the private key: %v", tc.name, err)
		}
	}
}

func TestResolveSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("LOGPIPE_TEST_SECRET", "s3cr3t-env")
	t.Setenv("LOGPIPE_TEST_EMPTY", "")
	ok := map[string]string{
		"plain literal":                        "plain literal",
		"":                                     "",
		"env:LOGPIPE_TEST_SECRET":              "s3cr3t-env",
		"file:" + write("nl", "s3cr3t-file\n"): "s3cr3t-file",
		"file:" + write("crlf", "win\r\n"):     "win",
		"file:" + write("raw", "no newline"):   "no newline",
		// Only one trailing newline is part of the file format.
		"file:" + write("two", "a\n\n"): "a\n",
	}
	for in, want := range ok {
		got, err := ResolveSecret(in)
		if err != nil || got != want {
			t.Errorf("ResolveSecret(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	missing := filepath.Join(dir, "missing")
	bad := map[string]string{
		"env:LOGPIPE_TEST_UNSET":       "environment variable LOGPIPE_TEST_UNSET is not set",
		"env:LOGPIPE_TEST_EMPTY":       "environment variable LOGPIPE_TEST_EMPTY is empty",
		"env:":                         "env: needs a variable name (env:NAME)",
		"file:":                        "file: needs a path (file:/path)",
		"file:" + missing:              "reading secret: open " + missing + ": no such file or directory",
		"file:" + write("empty", "\n"): "secret file " + filepath.Join(dir, "empty") + " is empty",
		"file:" + dir:                  "reading secret: read " + dir + ": is a directory",
	}
	for in, want := range bad {
		got, err := ResolveSecret(in)
		if err == nil || err.Error() != want || got != "" {
			t.Errorf("ResolveSecret(%q) = %q, %v; want error %q", in, got, err, want)
		}
	}
	if !IsReference("env:X") || !IsReference("file:/x") || IsReference("hunter2") {
		t.Error("IsReference")
	}
}

// TestSCRAMConversation runs the client against xdg-go/scram's server for
// both hashes: the right password authenticates, a wrong one does not.
func TestSCRAMConversation(t *testing.T) {
	for name, hash := range map[string]scram.HashGeneratorFcn{"SHA-256": SHA256, "SHA-512": SHA512} {
		t.Run(name, func(t *testing.T) {
			stored := func() scram.StoredCredentials {
				c, err := hash.NewClient("agent", "right-password", "")
				if err != nil {
					t.Fatal(err)
				}
				return c.GetStoredCredentials(scram.KeyFactors{Salt: "salt-0123456789", Iters: 4096})
			}()
			server, err := hash.NewServer(func(user string) (scram.StoredCredentials, error) {
				if user != "agent" {
					return scram.StoredCredentials{}, errors.New("unknown user")
				}
				return stored, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			run := func(password string) error {
				cl := NewSCRAMClient(hash)
				if err := cl.Begin("agent", password, ""); err != nil {
					return err
				}
				sc := server.NewConversation()
				msg, err := cl.Step("")
				for err == nil && !cl.Done() {
					var challenge string
					if challenge, err = sc.Step(msg); err != nil {
						break
					}
					msg, err = cl.Step(challenge)
				}
				if err == nil && !sc.Valid() {
					err = errors.New("server did not accept the client")
				}
				return err
			}
			if err := run("right-password"); err != nil {
				t.Fatalf("right password: %v", err)
			}
			err = run("wrong-password")
			if err == nil {
				t.Fatal("wrong password authenticated")
			}
			if strings.Contains(err.Error(), "wrong-password") {
				t.Errorf("error quotes the password: %v", err)
			}
		})
	}
}
