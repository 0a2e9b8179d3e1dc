package record

import (
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/IBM/sarama"
	"github.com/minio/highwayhash"
)

// HeaderSig carries a record's signature (binary): version SigVersion, the
// 4-byte id of the agent's key, the number n of headers that make the
// record's context, and the 8-byte tag
//
//	HH64(0x02 | HH128(0x01 | topic | key | n | the first n headers) | value | the other headers)
//
// where HH is HighwayHash keyed with the agent's 256-bit secret, every
// field length-prefixed, each header as its name and value, any HeaderSig
// left out. Only the agent that holds the key can make it, so the transfer
// can tell an agent's records from a producer's forgeries (which could
// otherwise take another host's _ids first and have its lines answered
// 409). The context is what the agent sends with every record of a file
// (topic, path, host, fields, pipeline): it hashes it once per file and
// key, and per record only the value and the event's own headers.
//
// HighwayHash is a keyed pseudo-random function built to be used as a MAC
// over short inputs: about 70 ns for a 200-byte line with its headers,
// where HMAC-SHA256 takes 340 ns and AES-GMAC 200 ns. The two calls are
// kept apart by their first byte. A 64-bit tag is checked only online (a
// guess costs a Kafka write, and a wrong one is quarantined and counted):
// one forgery takes 2^63 attempts on average, centuries at millions of
// records a second. Each tag byte is random to the compressor, and costs
// it more than the hash itself; 16 would cost twice that. The tag is
// deterministic: a line the agent re-sends carries the same signature.
const HeaderSig = "sig"

// SigVersion is the signature layout's version byte.
const SigVersion = 1

// SigLen is the size of a HeaderSig value.
const SigLen = 1 + 4 + 1 + highwayhash.Size64

// SecretLen is the size of a signing key's secret.
const SecretLen = highwayhash.Size

// KeyID names a signing key.
type KeyID [4]byte

// String renders the id in hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// ParseKeyID reads an id as String renders it.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("key id %q: want %d hex digits", s, 2*len(id))
	}
	copy(id[:], b)
	return id, nil
}

// SigningKey is one agent key.
type SigningKey struct {
	ID     KeyID
	secret []byte
}

// NewSigningKey returns the key of id for secret (SecretLen bytes).
func NewSigningKey(id KeyID, secret []byte) (*SigningKey, error) {
	if len(secret) != SecretLen {
		return nil, fmt.Errorf("signing key %s: %d bytes, want %d", id, len(secret), SecretLen)
	}
	return &SigningKey{ID: id, secret: append([]byte(nil), secret...)}, nil
}

// Context is a signing key with the part of a record that every record of
// one file shares (topic, key, the first headers) hashed, so a record costs
// only its own bytes.
type Context struct {
	key *SigningKey
	n   byte
	sum [highwayhash.Size128]byte
}

// MaxContextHeaders bounds the headers a Context absorbs.
const MaxContextHeaders = 255

// NewContext hashes topic, key and headers (at most MaxContextHeaders).
func (k *SigningKey) NewContext(topic string, key []byte, headers []sarama.RecordHeader) *Context {
	n := min(len(headers), MaxContextHeaders)
	buf := appendContext(nil, topic, key, n)
	for i := range headers[:n] {
		buf = appendHeader(buf, &headers[i])
	}
	return &Context{key: k, n: byte(n), sum: highwayhash.Sum128(buf, k.secret)}
}

// Headers is how many of a record's first headers the context holds.
func (c *Context) Headers() int { return int(c.n) }

// AppendSig appends the HeaderSig value of a record of c's file with value
// and, after the context's headers, rest (any HeaderSig left out) to dst.
// scratch is reused for what the tag covers; both are returned.
func (c *Context) AppendSig(dst, scratch []byte, value []byte, rest []*sarama.RecordHeader) ([]byte, []byte) {
	scratch = appendRecord(scratch[:0], &c.sum, value, rest)
	tag := sum64(scratch, c.key.secret)
	return appendSig(dst, c.key.ID, c.n, &tag), scratch
}

func appendSig(dst []byte, id KeyID, n byte, tag *[highwayhash.Size64]byte) []byte {
	dst = append(dst, SigVersion)
	dst = append(dst, id[:]...)
	dst = append(dst, n)
	return append(dst, tag[:]...)
}

func appendContext(dst []byte, topic string, key []byte, n int) []byte {
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return append(dst, byte(n))
}

// appendRecord appends what a record's tag covers: its context's hash, its
// value and its own headers.
func appendRecord(dst []byte, ctx *[highwayhash.Size128]byte, value []byte, rest []*sarama.RecordHeader) []byte {
	dst = append(dst, 2)
	dst = append(dst, ctx[:]...)
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	dst = append(dst, value...)
	for _, h := range rest {
		if h != nil && string(h.Key) != HeaderSig {
			dst = appendHeader(dst, h)
		}
	}
	return dst
}

func appendHeader(dst []byte, h *sarama.RecordHeader) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(h.Key)))
	dst = append(dst, h.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(h.Value)))
	return append(dst, h.Value...)
}

// sum64 is the HighwayHash-64 tag of data.
func sum64(data, key []byte) [highwayhash.Size64]byte {
	var t [highwayhash.Size64]byte
	binary.LittleEndian.PutUint64(t[:], highwayhash.Sum64(data, key))
	return t
}

// tag computes a record's tag in one go into scratch; false if it has
// fewer than n headers (besides HeaderSig).
func (k *SigningKey) tag(scratch []byte, topic string, key, value []byte, n int, headers []*sarama.RecordHeader) ([highwayhash.Size64]byte, []byte, bool) {
	scratch = appendContext(scratch[:0], topic, key, n)
	i := 0
	for ; i < len(headers) && n > 0; i++ {
		h := headers[i]
		if h == nil || string(h.Key) == HeaderSig {
			continue
		}
		scratch = appendHeader(scratch, h)
		n--
	}
	if n > 0 {
		return [highwayhash.Size64]byte{}, scratch, false
	}
	ctx := highwayhash.Sum128(scratch, k.secret)
	scratch = appendRecord(scratch[:0], &ctx, value, headers[i:])
	return sum64(scratch, k.secret), scratch, true
}

// Sign appends the HeaderSig value of a record to dst, computed in one go
// (the agent's Context gives the same bytes); the first n headers are its
// context. For producers other than the agent, and tests.
func (k *SigningKey) Sign(dst []byte, topic string, key, value []byte, n int, headers []*sarama.RecordHeader) ([]byte, error) {
	if n > MaxContextHeaders {
		return dst, fmt.Errorf("%d context headers, at most %d", n, MaxContextHeaders)
	}
	tag, _, ok := k.tag(nil, topic, key, value, n, headers)
	if !ok {
		return dst, fmt.Errorf("%d context headers, but only %d headers", n, len(headers))
	}
	return appendSig(dst, k.ID, byte(n), &tag), nil
}

// ErrBadSignature is a signature that does not match its record.
var ErrBadSignature = errors.New("signature does not match the record")

// ParseSig splits a HeaderSig value into its key id, the number of headers
// before the value, and the tag.
func ParseSig(sig []byte) (KeyID, int, []byte, error) {
	var id KeyID
	if len(sig) != SigLen || sig[0] != SigVersion {
		return id, 0, nil, fmt.Errorf("malformed %s header (%d bytes)", HeaderSig, len(sig))
	}
	copy(id[:], sig[1:5])
	return id, int(sig[5]), sig[6:], nil
}

// Verify checks sig (a HeaderSig value) with k over a record; scratch is
// reused for what the signature covers and returned.
func (k *SigningKey) Verify(scratch, sig []byte, topic string, key, value []byte, headers []*sarama.RecordHeader) ([]byte, error) {
	id, n, tag, err := ParseSig(sig)
	if err != nil {
		return scratch, err
	}
	if id != k.ID {
		return scratch, fmt.Errorf("signed with key %s, not %s", id, k.ID)
	}
	want, scratch, ok := k.tag(scratch, topic, key, value, n, headers)
	if !ok {
		return scratch, fmt.Errorf("the signature names %d context headers; the record has fewer", n)
	}
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		return scratch, ErrBadSignature
	}
	return scratch, nil
}

// Verdict is what the transfer's check says of a record.
type Verdict struct {
	// Quarantine, if set, is why the record is not indexed.
	Quarantine string
	// Signed reports a verified signature: the headers are the agent's.
	Signed bool
	// HostName and HostIP are the host the verifying key signs for (the
	// agent leaves them out of its records); shared, never to be written.
	HostName, HostIP []byte
}
