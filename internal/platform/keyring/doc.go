// Package keyring provisions and follows the agents' signing keys in etcd.
//
// Each agent has a document at /logagent/keys/<ip> (KeyDoc): the host it
// belongs to and its keys, the first of which signs; the others still
// verify, so a key can be rotated while records signed with the old one
// are in Kafka. An agent creates its document when there is none (an etcd
// transaction, so two agents never both think they made it), keeps a copy
// in its data_dir and follows changes (Holder). The transfer watches every
// document (Ring) and checks each record against the key it names and the
// host that key belongs to.
package keyring

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/logpipe/logpipe/internal/contract/record"
)

// MaxKeys bounds the keys of one document (rotation keeps a few old ones).
const MaxKeys = 8

// MaxDocBytes bounds one key document.
const MaxDocBytes = 4096

// KeyDoc is one agent's keys, as stored in etcd (JSON).
type KeyDoc struct {
	IP   string `json:"ip"`
	Host string `json:"host"`
	Keys []Key  `json:"keys"`
}

// Key is one signing key: its id (8 hex digits), its secret (32 bytes,
// standard base64), and the host and IP it signs for. A key's host and IP
// never change (the agent's records name their host by their key, so a
// record delivered again must find the same one): a renamed host gets a
// new key. Empty, they are the document's.
type Key struct {
	ID      string    `json:"id"`
	Secret  string    `json:"secret"`
	Host    string    `json:"host,omitempty"`
	IP      string    `json:"ip,omitempty"`
	Created time.Time `json:"created,omitzero"`
}

// NewKey draws a fresh key (with no host or IP of its own yet).
func NewKey(now time.Time) (Key, error) {
	var id record.KeyID
	secret := make([]byte, record.SecretLen)
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, fmt.Errorf("drawing a key id: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("drawing a key: %w", err)
	}
	return Key{ID: id.String(), Secret: base64.StdEncoding.EncodeToString(secret), Created: now.UTC().Truncate(time.Second)}, nil
}

// Parsed is a validated KeyDoc: its signing keys, the first one signing,
// and each key's host and IP.
type Parsed struct {
	IP, Host string
	Keys     []*record.SigningKey
	Idents   []Identity
}

// Identity is the host a key signs for.
type Identity struct{ Host, IP string }

// Parse validates a key document whole: an error names what is wrong and
// nothing of it is used.
func Parse(data []byte) (*Parsed, error) {
	if len(data) > MaxDocBytes {
		return nil, fmt.Errorf("key document of %d bytes, more than %d", len(data), MaxDocBytes)
	}
	var d KeyDoc
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parsing key document: %w", err)
	}
	if net.ParseIP(d.IP) == nil {
		return nil, fmt.Errorf("key document: ip %q is not an IP address", d.IP)
	}
	if d.Host == "" || len(d.Host) > 255 {
		return nil, errors.New("key document: host must be 1 to 255 bytes")
	}
	if len(d.Keys) == 0 || len(d.Keys) > MaxKeys {
		return nil, fmt.Errorf("key document: %d keys, want 1 to %d", len(d.Keys), MaxKeys)
	}
	p := &Parsed{IP: d.IP, Host: d.Host}
	seen := map[record.KeyID]bool{}
	for i, k := range d.Keys {
		id, err := record.ParseKeyID(k.ID)
		if err != nil {
			return nil, fmt.Errorf("key document: key %d: %w", i, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("key document: key id %s twice", id)
		}
		seen[id] = true
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("key document: key %s: secret is not base64", id)
		}
		sk, err := record.NewSigningKey(id, secret)
		if err != nil {
			return nil, fmt.Errorf("key document: %w", err)
		}
		ident := Identity{Host: k.Host, IP: k.IP}
		if ident.Host == "" {
			ident.Host = d.Host
		}
		if ident.IP == "" {
			ident.IP = d.IP
		}
		if net.ParseIP(ident.IP) == nil || len(ident.Host) > 255 {
			return nil, fmt.Errorf("key document: key %s: ip %q or host of %d bytes", id, ident.IP, len(ident.Host))
		}
		p.Keys = append(p.Keys, sk)
		p.Idents = append(p.Idents, ident)
	}
	return p, nil
}

// Signing is the key that signs.
func (p *Parsed) Signing() *record.SigningKey { return p.Keys[0] }

// SignsFor reports whether the signing key is host/ip's.
func (p *Parsed) SignsFor(host, ip string) bool { return p.Idents[0] == Identity{Host: host, IP: ip} }
