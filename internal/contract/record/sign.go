package record

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/minio/highwayhash"
)

// HeaderSig carries the signature of a chunk: the last record of N
// consecutive records of one partition (one Kafka record batch) carries it
// and it covers all N. Its value (binary) is version SigVersion, the 4-byte
// id of the agent's key, N (2 bytes, big endian, 1..MaxChunk), the number
// c of headers that make the chunk's context, and the 8-byte tag
//
//	HH64(0x03 | topic | c | key | the first c headers |
//	     for each record: value | its other headers | 0 | N)
//
// where HH64 is HighwayHash keyed with the agent's 256-bit secret, every
// field length-prefixed, each header as its name and value (a record's own
// headers with their name's length plus one, so the 0 ends the list),
// HeaderSig left out. The context (key and first c headers: the file's path, host
// and fields) is the first record's, and every record of the chunk must
// carry the same. Only the agent that holds the key can make the tag, so
// the transfer can tell an agent's records from a producer's forgeries
// (which could otherwise take another host's _ids first and have its
// lines answered 409).
//
// Why chunks and not each record: the records of a chunk sit at
// consecutive offsets of one partition (a record batch is written whole),
// so the transfer sees them together; and a tag per record costs the agent
// more than the 10 % of its work on a line that signing may take: 60 ns of
// hashing a 200-byte line with its headers, 30 ns of LZ4 (8 random bytes in
// otherwise repetitive records double what a line compresses to) and a
// header to encode, a quarter more agent CPU per GB in make bench. Over a
// chunk, HighwayHash costs about 0.1 ns a byte of value and event
// headers. A chunk of one record is a record signed on its own (other
// producers, tests).
//
// A 64-bit tag is checked only online (a guess costs a Kafka write, and a
// wrong one is quarantined and counted): one forgery takes 2^63 attempts on
// average, centuries at millions of records a second. The tag is
// deterministic: a chunk the agent re-sends carries the same signature.
const HeaderSig = "sig"

// SigVersion is the signature layout's version byte.
const SigVersion = 2

// SigLen is the size of a HeaderSig value.
const SigLen = 1 + 4 + 2 + 1 + highwayhash.Size64

// MaxContextHeaders bounds the headers of a chunk's context.
const MaxContextHeaders = 255

// MaxChunk is the most records one signature covers.
const MaxChunk = 4096

// MaxChunkBytes bounds a chunk of more than one record: its keys, values
// and headers. The transfer holds at most this much of a partition's
// records while it waits for their signature.
const MaxChunkBytes = 1 << 20

// HeldSize is what a record counts against MaxChunkBytes.
func HeldSize(key, value []byte, headers []*Header) int {
	n := len(key) + len(value)
	for _, h := range headers {
		if h != nil {
			n += len(h.Key) + len(h.Value)
		}
	}
	return n
}

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

// Chunk hashes the records of one chunk, in order. The zero value is
// ready for Reset; one Chunk is reused by one goroutine.
type Chunk struct {
	key *SigningKey
	d   *highwayhash.Digest64
	n   int
	// ctx is the number of context headers, and key and hdrs the first
	// record's context, which every other record must repeat; bad is set
	// when one did not (or had fewer headers).
	ctx  int
	ck   []byte
	hdrs []*Header
	bad  bool
	buf  []byte
}

// Reset starts a chunk of topic's records signed with k, whose first ctx
// headers (at most MaxContextHeaders) are the same for every record.
func (c *Chunk) Reset(k *SigningKey, topic string, ctx int) {
	if c.d == nil || c.key != k {
		d, err := highwayhash.NewDigest64(k.secret)
		if err != nil { // the secret's length was checked by NewSigningKey
			panic("highwayhash with a checked key: " + err.Error())
		}
		c.d = d
	} else {
		c.d.Reset()
	}
	clear(c.hdrs)
	c.key, c.n, c.ctx, c.ck, c.hdrs, c.bad = k, 0, ctx, nil, c.hdrs[:0], ctx < 0 || ctx > MaxContextHeaders
	c.buf = append(c.buf[:0], 3)
	c.buf = appendBytes(c.buf, topic)
	c.buf = append(c.buf, byte(ctx))
	c.d.Write(c.buf)
}

// Len is the number of records added since Reset.
func (c *Chunk) Len() int { return c.n }

// Add hashes the next record: its key, value and headers (any HeaderSig
// left out).
func (c *Chunk) Add(key, value []byte, headers []*Header) {
	c.n++
	if c.bad {
		return // the chunk fails whatever follows
	}
	b := c.buf[:0]
	i := 0 // headers[i:] are the record's own
	for seen := 0; seen < c.ctx; i++ {
		if i == len(headers) {
			c.bad = true // fewer headers than the context
			return
		}
		h := headers[i]
		if h == nil || string(h.Key) == HeaderSig {
			continue
		}
		if c.n == 1 {
			c.hdrs = append(c.hdrs, h)
		} else if p := c.hdrs[seen]; !bytes.Equal(p.Key, h.Key) || !bytes.Equal(p.Value, h.Value) {
			c.bad = true
		}
		seen++
	}
	if c.n == 1 {
		c.ck = key
		b = appendBytes(b, key)
		for _, h := range c.hdrs {
			b = appendBytes(b, h.Key)
			b = appendBytes(b, h.Value)
		}
	} else if !bytes.Equal(c.ck, key) {
		c.bad = true
	}
	b = binary.AppendUvarint(b, uint64(len(value)))
	if len(value) >= 256 {
		c.d.Write(b) // a long value is hashed in place
		c.d.Write(value)
		b = b[:0]
	} else {
		b = append(b, value...)
	}
	// The record's own headers, each as its name's length plus one, name,
	// value; a zero ends the list.
	for _, hd := range headers[i:] {
		if hd != nil && string(hd.Key) != HeaderSig {
			b = binary.AppendUvarint(b, uint64(len(hd.Key))+1)
			b = append(b, hd.Key...)
			b = appendBytes(b, hd.Value)
		}
	}
	b = append(b, 0)
	c.d.Write(b)
	c.buf = b
}

// errContext is a chunk whose records do not share their context.
var errContext = errors.New("the records of the chunk differ in their key or context headers")

// tag finishes the hash of the records added.
func (c *Chunk) tag() ([highwayhash.Size64]byte, error) {
	var t [highwayhash.Size64]byte
	if c.bad {
		return t, errContext
	}
	c.buf = binary.AppendUvarint(c.buf[:0], uint64(c.n))
	c.d.Write(c.buf)
	binary.LittleEndian.PutUint64(t[:], c.d.Sum64())
	return t, nil
}

// AppendSig appends the HeaderSig value of the records added (1 to
// MaxChunk of them, sharing their context) to dst. It ends the chunk:
// Reset before adding more.
func (c *Chunk) AppendSig(dst []byte) ([]byte, error) {
	if c.n < 1 || c.n > MaxChunk {
		return dst, fmt.Errorf("a signature covers 1 to %d records, not %d", MaxChunk, c.n)
	}
	tag, err := c.tag()
	if err != nil {
		return dst, err
	}
	dst = append(dst, SigVersion)
	dst = append(dst, c.key.ID[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.n))
	dst = append(dst, byte(c.ctx))
	return append(dst, tag[:]...), nil
}

func appendBytes[T string | []byte](dst []byte, b T) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// Sign appends the HeaderSig value of one record signed on its own (a
// chunk of one, no context) to dst. For producers other than the agent,
// and tests.
func (k *SigningKey) Sign(dst []byte, topic string, key, value []byte, headers []*Header) []byte {
	var c Chunk
	c.Reset(k, topic, 0)
	c.Add(key, value, headers)
	dst, _ = c.AppendSig(dst) // one record, no context: always signs
	return dst
}

// ErrBadSignature is a signature that does not match its record.
var ErrBadSignature = errors.New("signature does not match the record")

// ParseSig splits a HeaderSig value into its key id, the number of
// records it covers (1..MaxChunk), the number of context headers and the
// tag.
func ParseSig(sig []byte) (id KeyID, n, ctx int, tag []byte, err error) {
	if len(sig) != SigLen || sig[0] != SigVersion {
		return id, 0, 0, nil, fmt.Errorf("malformed %s header (%d bytes, version %d)", HeaderSig, len(sig), firstByte(sig))
	}
	copy(id[:], sig[1:5])
	n = int(binary.BigEndian.Uint16(sig[5:7]))
	if n < 1 || n > MaxChunk {
		return id, 0, 0, nil, fmt.Errorf("malformed %s header: covers %d records, not 1 to %d", HeaderSig, n, MaxChunk)
	}
	return id, n, int(sig[7]), sig[8:], nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// Verify checks sig (a HeaderSig value) with k over the records added to c
// since c.Reset(k, topic, ctx) with the ctx sig names; c's chunk ends.
func (c *Chunk) Verify(sig []byte) error {
	id, n, ctx, tag, err := ParseSig(sig)
	if err != nil {
		return err
	}
	if id != c.key.ID {
		return fmt.Errorf("signed with key %s, not %s", id, c.key.ID)
	}
	if n != c.n || ctx != c.ctx {
		return fmt.Errorf("the signature covers %d records with %d context headers; %d records with %d given", n, ctx, c.n, c.ctx)
	}
	want, err := c.tag()
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(want[:], tag) != 1 {
		return ErrBadSignature
	}
	return nil
}

// Verdict is what the transfer's check says of a record.
type Verdict struct {
	// Quarantine, if set, is why the record is not indexed.
	Quarantine string
	// Signed reports a verified signature: the headers are the agent's.
	Signed bool
	// HostName and HostIP are the host the verifying key signs for;
	// shared, never to be written.
	HostName, HostIP []byte
}
