// Package security builds the daemons' transport security from files and
// resolves secrets: client *tls.Config from PEM files (CA bundle, client
// certificate and key), secret values given as env:NAME or file:/path,
// and the SCRAM client sarama needs for SASL/SCRAM. It never puts a secret
// or key material in an error message.
package security

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/xdg-go/scram"
)

// Files names the PEM files and options of a client TLS setup.
type Files struct {
	// CA is a PEM bundle of the CAs that sign the servers' certificates;
	// empty trusts the system's roots.
	CA string
	// Cert and Key are the client certificate (chain) and its private key,
	// for servers that require client certificates; both or neither.
	Cert, Key string
	// ServerName overrides the name the server certificate is checked
	// against (default: the host dialed).
	ServerName string
	// InsecureSkipVerify accepts any server certificate. Tests only.
	InsecureSkipVerify bool
}

// Which file of Files a FileError is about.
const (
	FieldCA   = "ca"
	FieldCert = "cert"
	FieldKey  = "key"
)

// FileError is a problem with one of Files: Field is FieldCA, FieldCert or
// FieldKey, so callers can name their own setting (an ini key, a flag).
type FileError struct {
	Field string
	Err   error
}

func (e *FileError) Error() string { return e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// Config reads the files and returns a client TLS configuration (TLS 1.2 or
// newer). Errors are *FileError.
func (f Files) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.InsecureSkipVerify}
	if f.CA != "" {
		pool, err := LoadCA(f.CA)
		if err != nil {
			return nil, &FileError{Field: FieldCA, Err: err}
		}
		c.RootCAs = pool
	}
	if f.Cert != "" || f.Key != "" {
		cert, err := LoadKeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, err
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// LoadCA reads a PEM bundle of CA certificates.
func LoadCA(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// LoadKeyPair reads a client certificate and its key. Errors are
// *FileError naming the file at fault (a mismatch is blamed on the
// certificate); they never quote the key.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	switch {
	case certPath == "":
		return tls.Certificate{}, &FileError{Field: FieldKey, Err: errors.New("a client key needs its certificate")}
	case keyPath == "":
		return tls.Certificate{}, &FileError{Field: FieldCert, Err: errors.New("a client certificate needs its key")}
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, &FileError{Field: FieldCert, Err: fmt.Errorf("reading client certificate: %w", err)}
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, &FileError{Field: FieldKey, Err: fmt.Errorf("reading client key: %w", err)}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls names what is wrong ("failed to find any PEM data
		// in key input", "private key does not match public key")
		// without quoting either file.
		field := FieldCert
		if msg := err.Error(); !strings.Contains(msg, "certificate input") &&
			(strings.Contains(msg, "key input") || strings.Contains(msg, "for the private key") || strings.Contains(msg, "parse private key")) {
			field = FieldKey
		}
		return tls.Certificate{}, &FileError{Field: field, Err: fmt.Errorf("%s and %s: %w", certPath, keyPath, err)}
	}
	return cert, nil
}

// Secret reference prefixes: a value written "env:NAME" is the value of
// the environment variable NAME, one written "file:/path" is the content
// of the file (a trailing newline removed). Anything else is literal.
const (
	EnvPrefix  = "env:"
	FilePrefix = "file:"
)

// IsReference reports whether v is an env: or file: reference.
func IsReference(v string) bool {
	return strings.HasPrefix(v, EnvPrefix) || strings.HasPrefix(v, FilePrefix)
}

// ResolveSecret returns the secret v stands for. Errors name the variable
// or file, never the value.
func ResolveSecret(v string) (string, error) {
	switch {
	case strings.HasPrefix(v, EnvPrefix):
		name := strings.TrimSpace(v[len(EnvPrefix):])
		if name == "" {
			return "", errors.New("env: needs a variable name (env:NAME)")
		}
		s, ok := os.LookupEnv(name)
		if !ok {
			return "", fmt.Errorf("environment variable %s is not set", name)
		}
		if s == "" {
			return "", fmt.Errorf("environment variable %s is empty", name)
		}
		return s, nil
	case strings.HasPrefix(v, FilePrefix):
		path := strings.TrimSpace(v[len(FilePrefix):])
		if path == "" {
			return "", errors.New("file: needs a path (file:/path)")
		}
		data, err := os.ReadFile(path)
		if err != nil {
			// *PathError names the operation and the path only.
			return "", fmt.Errorf("reading secret: %w", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("secret file %s is empty", path)
		}
		return s, nil
	}
	return v, nil
}

// SCRAM hash functions for NewSCRAMClient.
var (
	SHA256 = scram.SHA256
	SHA512 = scram.SHA512
)

// SCRAMClient is a SASL/SCRAM client conversation for sarama (it satisfies
// sarama.SCRAMClient: Begin, Step, Done), as in sarama's SCRAM example.
type SCRAMClient struct {
	*scram.Client
	*scram.ClientConversation
	scram.HashGeneratorFcn
}

// NewSCRAMClient returns a client for hash (SHA256 or SHA512).
func NewSCRAMClient(hash scram.HashGeneratorFcn) *SCRAMClient {
	return &SCRAMClient{HashGeneratorFcn: hash}
}

// Begin starts a conversation.
func (x *SCRAMClient) Begin(userName, password, authzID string) error {
	c, err := x.HashGeneratorFcn.NewClient(userName, password, authzID)
	if err != nil {
		return err
	}
	x.Client = c
	x.ClientConversation = c.NewConversation()
	return nil
}

// Step answers the server's challenge.
func (x *SCRAMClient) Step(challenge string) (string, error) {
	return x.ClientConversation.Step(challenge)
}

// Done reports whether the conversation is over.
func (x *SCRAMClient) Done() bool { return x.ClientConversation.Done() }
