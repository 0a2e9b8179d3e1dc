package record

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderSig carries a record's signature (binary): version SigVersion, the
// 4-byte id of the agent's key, a 12-byte nonce and the 16-byte GMAC tag
// (AES-GCM over no plaintext) of the record's topic, key, value and every
// other header, in the order they are sent. Only the agent that holds the
// key can make it, so the transfer can tell an agent's records from a
// producer's forgeries (which could otherwise take another host's _ids
// first and have its lines answered 409).
const HeaderSig = "sig"

// SigVersion is the signature layout's version byte.
const SigVersion = 1

// SigLen is the size of a HeaderSig value.
const SigLen = 1 + 4 + 12 + 16

// KeyID names a signing key.
type KeyID [4]byte

// String renders the id in hex.
func (id KeyID) String() string { return fmt.Sprintf("%x", id[:]) }

// SigningKey is one agent key: AES-GCM used as a MAC (GMAC).
type SigningKey struct {
	ID   KeyID
	aead cipher.AEAD
}

// NewSigningKey returns the key of id for secret (16 or 32 bytes).
func NewSigningKey(id KeyID, secret []byte) (*SigningKey, error) {
	if len(secret) != 16 && len(secret) != 32 {
		return nil, fmt.Errorf("signing key %s: %d bytes, want 16 or 32", id, len(secret))
	}
	b, err := aes.NewCipher(secret)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", id, err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", id, err)
	}
	return &SigningKey{ID: id, aead: g}, nil
}

// Signer signs records with one key. A nonce is never used twice with a
// key: 8 random bytes drawn at start and again every 2^32 records, and a
// counter. Not safe for concurrent use.
type Signer struct {
	key    *SigningKey
	prefix [8]byte
	ctr    uint32
	aad    []byte
}

// NewSigner returns a signer for key.
func NewSigner(key *SigningKey) *Signer {
	s := &Signer{key: key}
	s.redraw()
	return s
}

func (s *Signer) redraw() {
	if _, err := rand.Read(s.prefix[:]); err != nil {
		panic("record: no randomness for nonces: " + err.Error())
	}
	s.ctr = 0
}

// Key is the signer's key.
func (s *Signer) Key() *SigningKey { return s.key }

// Header is a record's header as the signature covers it.
type Header struct{ Key, Value []byte }

// Append appends the HeaderSig value for a record of topic with key, value
// and headers (HeaderSig itself left out) to dst.
func (s *Signer) Append(dst []byte, topic string, key, value []byte, headers []Header) []byte {
	if s.ctr == ^uint32(0) {
		s.redraw()
	}
	s.ctr++
	var nonce [12]byte
	copy(nonce[:8], s.prefix[:])
	binary.BigEndian.PutUint32(nonce[8:], s.ctr)
	s.aad = AppendSigned(s.aad[:0], topic, key, value, headers)
	dst = append(dst, SigVersion)
	dst = append(dst, s.key.ID[:]...)
	dst = append(dst, nonce[:]...)
	return s.key.aead.Seal(dst, nonce[:], nil, s.aad)
}

// AppendSigned appends what a signature covers: each of topic, key, value
// and every header's name and value (HeaderSig left out), length-prefixed,
// so no two records share it.
func AppendSigned(dst []byte, topic string, key, value []byte, headers []Header) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	dst = append(dst, value...)
	for _, h := range headers {
		if string(h.Key) == HeaderSig {
			continue
		}
		dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	return dst
}

// Signature errors, for the transfer's quarantine reasons.
var (
	ErrUnsigned     = errors.New("unsigned record")
	ErrBadSignature = errors.New("signature does not match the record")
)

// ParseSig splits a HeaderSig value into its key id, nonce and tag.
func ParseSig(sig []byte) (KeyID, []byte, []byte, error) {
	var id KeyID
	if len(sig) != SigLen || sig[0] != SigVersion {
		return id, nil, nil, fmt.Errorf("malformed %s header (%d bytes)", HeaderSig, len(sig))
	}
	copy(id[:], sig[1:5])
	return id, sig[5:17], sig[17:], nil
}

// Verify checks sig (a HeaderSig value) with key over a record; scratch is
// reused for what the signature covers and returned.
func (k *SigningKey) Verify(scratch []byte, sig []byte, topic string, key, value []byte, headers []Header) ([]byte, error) {
	id, nonce, tag, err := ParseSig(sig)
	if err != nil {
		return scratch, err
	}
	if id != k.ID {
		return scratch, fmt.Errorf("signed with key %s, not %s", id, k.ID)
	}
	scratch = AppendSigned(scratch[:0], topic, key, value, headers)
	if _, err := k.aead.Open(nil, nonce, tag, scratch); err != nil {
		return scratch, ErrBadSignature
	}
	return scratch, nil
}
