// Package probe checks, step by step, that a daemon can reach what its
// config names, as Filebeat's `test output` does: for each endpoint the
// name lookup, the TCP connection, the TLS handshake (with the
// certificate it was shown), then the service's own checks (auth, API
// version, the topic or template that would be used). Each step prints one
// line; the first failure stops the run with its reason.
package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/logpipe/logpipe/internal/platform/termsafe"
)

// Run prints the steps of a check and stops at the first failure.
type Run struct {
	w      io.Writer
	Failed error // the first step that failed (nil: none)
}

// New returns a Run printing to w.
func New(w io.Writer) *Run { return &Run{w: w} }

// Section prints a heading for what follows (a service).
func (r *Run) Section(format string, args ...any) {
	if r.Failed == nil {
		fmt.Fprintf(r.w, "%s\n", termsafe.String(fmt.Sprintf(format, args...)))
	}
}

// Step runs f unless an earlier step failed and prints its outcome: its
// detail, or why it failed. It reports whether it passed.
func (r *Run) Step(name string, f func() (string, error)) bool {
	if r.Failed != nil {
		return false
	}
	start := time.Now()
	detail, err := f()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		r.Failed = fmt.Errorf("%s: %w", name, err)
		fmt.Fprintf(r.w, "  %-26s FAIL  %s\n", name, termsafe.String(err.Error()))
		return false
	}
	fmt.Fprintf(r.w, "  %-26s ok    %s (%s)\n", name, termsafe.String(detail), took)
	return true
}

// Endpoint checks that addr ("host:port", or a URL) can be reached: the
// name lookup, a TCP connection and, when tc is set, a TLS handshake
// verified as tc says (the certificate's subject and issuer are shown).
func (r *Run) Endpoint(ctx context.Context, addr string, tc *tls.Config, timeout time.Duration) {
	hostport := addr
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		hostport = u.Host
		if u.Port() == "" {
			switch u.Scheme {
			case "https":
				hostport += ":443"
			default:
				hostport += ":80"
			}
		}
	}
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		r.Step("address "+addr, func() (string, error) { return "", err })
		return
	}
	r.Step("DNS "+host, func() (string, error) {
		if ip := net.ParseIP(host); ip != nil {
			return "an IP address, nothing to look up", nil
		}
		lctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		addrs, err := net.DefaultResolver.LookupHost(lctx, host)
		if err != nil {
			return "", fmt.Errorf("looking up %s: %w", host, err)
		}
		return strings.Join(addrs, ", "), nil
	})
	var conn net.Conn
	r.Step("TCP "+hostport, func() (string, error) {
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", hostport)
		if err != nil {
			return "", fmt.Errorf("connecting: %w", err)
		}
		conn = c
		return "connected to " + c.RemoteAddr().String(), nil
	})
	if conn == nil {
		return
	}
	defer conn.Close()
	if tc == nil {
		r.Step("TLS", func() (string, error) { return "off (plain text)", nil })
		return
	}
	r.Step("TLS handshake", func() (string, error) {
		cfg := tc.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		conn.SetDeadline(time.Now().Add(timeout))
		c := tls.Client(conn, cfg)
		if err := c.HandshakeContext(ctx); err != nil {
			return "", explainTLS(err)
		}
		st := c.ConnectionState()
		if len(st.PeerCertificates) == 0 {
			return "", errors.New("the server showed no certificate")
		}
		cert := st.PeerCertificates[0]
		verified := "verified"
		if cfg.InsecureSkipVerify {
			verified = "NOT verified (tls_insecure_skip_verify)"
		}
		return fmt.Sprintf("%s, certificate %s issued by %s, valid until %s, %s", tls.VersionName(st.Version),
			cert.Subject, cert.Issuer, cert.NotAfter.Format("2006-01-02"), verified), nil
	})
}

// explainTLS says what a handshake failure means for an operator.
func explainTLS(err error) error {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua):
		return fmt.Errorf("the server's certificate (%s, issued by %s) is not signed by the configured CA (tls_ca): %w",
			ua.Cert.Subject, ua.Cert.Issuer, err)
	case errors.As(err, &hn):
		return fmt.Errorf("the server's certificate does not name this host (set tls_server_name to one it names): %w", err)
	case errors.As(err, &ci):
		return fmt.Errorf("the server's certificate is not valid now or for this use: %w", err)
	}
	return fmt.Errorf("handshaking: %w", err)
}

// Done prints the outcome and returns the first failure (nil: every step
// passed).
func (r *Run) Done() error {
	if r.Failed != nil {
		fmt.Fprintf(r.w, "FAILED: %s\n", termsafe.String(r.Failed.Error()))
		return r.Failed
	}
	fmt.Fprintln(r.w, "all checks passed")
	return nil
}
