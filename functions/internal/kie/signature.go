package kie

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// The platform's webhook signature headers. Function URLs lower-case header
// names, so callers look them up case-insensitively.
const (
	HeaderTimestamp = "X-Webhook-Timestamp"
	HeaderSignature = "X-Webhook-Signature"
)

// RegistrationPrefix starts the text a POST /tasks is signed over:
// RegistrationPrefix + taskID + "." + timestamp. A task id never holds "/",
// so no callback's signed text can equal a registration's.
const RegistrationPrefix = "register/"

// Sign is the platform's signature of a callback: standard base64 of
// HMAC-SHA256 over taskID + "." + timestamp, keyed with the webhook key.
func Sign(key []byte, taskID, timestamp string) string {
	return base64.StdEncoding.EncodeToString(mac(key, taskID, timestamp))
}

func mac(key []byte, taskID, timestamp string) []byte {
	m := hmac.New(sha256.New, key)
	write(m, taskID, timestamp)
	return m.Sum(nil)
}

// write feeds the signed text, taskID + "." + timestamp, to m.
func write(m hash.Hash, taskID, timestamp string) {
	io.WriteString(m, taskID)
	io.WriteString(m, ".")
	io.WriteString(m, timestamp)
}

// Verifier checks webhook signatures against the keys it holds: several
// while the platform's key is being rotated. Keys may be replaced at any
// time, concurrently with checks.
type Verifier struct {
	keys      atomic.Pointer[[]*keyMAC]
	tolerance time.Duration
}

// keyMAC is one key's pool of keyed HMACs, reused across calls.
type keyMAC struct{ pool sync.Pool }

// NewVerifier returns a Verifier that refuses timestamps farther than
// tolerance from the time of the check. It holds no key, and so refuses
// every signature, until SetKeys gives it some.
func NewVerifier(tolerance time.Duration) *Verifier {
	v := &Verifier{tolerance: tolerance}
	v.keys.Store(&[]*keyMAC{})
	return v
}

// SetKeys replaces the keys held with list: one key, or several separated
// by commas, white space around each trimmed. A list without a key is
// refused and the keys held are kept.
func (v *Verifier) SetKeys(list string) error {
	var macs []*keyMAC
	for _, k := range envconf.Values(list) {
		key := []byte(k)
		m := &keyMAC{}
		m.pool.New = func() any { return hmac.New(sha256.New, key) }
		macs = append(macs, m)
	}
	if len(macs) == 0 {
		return errors.New("no webhook key in the list")
	}
	v.keys.Store(&macs)
	return nil
}

// CheckTimestamp refuses a missing, malformed or stale timestamp. It needs
// no body, so a replayed or forged call is refused before parsing.
func (v *Verifier) CheckTimestamp(timestamp string, now time.Time) error {
	if timestamp == "" {
		return task.Errorf(task.EUNAUTHORIZED, "missing %s", HeaderTimestamp)
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return task.Errorf(task.EUNAUTHORIZED, "malformed %s", HeaderTimestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > v.tolerance || d < -v.tolerance {
		return task.Errorf(task.EUNAUTHORIZED, "%s is outside the accepted window", HeaderTimestamp)
	}
	return nil
}

// Verify checks the signature of a callback for taskID, in constant time.
func (v *Verifier) Verify(taskID, timestamp, signature string, now time.Time) error {
	if err := v.CheckTimestamp(timestamp, now); err != nil {
		return err
	}
	if signature == "" {
		return task.Errorf(task.EUNAUTHORIZED, "missing %s", HeaderSignature)
	}
	// The length is checked before decoding: Decode writes as many bytes
	// as its input holds and panics past its buffer (44 characters
	// without padding decode to 33 bytes).
	invalid := task.Errorf(task.EUNAUTHORIZED, "invalid %s", HeaderSignature)
	if len(signature) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return invalid
	}
	var got [sha256.Size + 1]byte
	if n, err := base64.StdEncoding.Decode(got[:], []byte(signature)); err != nil || n != sha256.Size {
		return invalid
	}
	// Every key is tried, each compared in constant time.
	var want [sha256.Size]byte
	match := 0
	for _, k := range *v.keys.Load() {
		m := k.pool.Get().(hash.Hash)
		m.Reset()
		write(m, taskID, timestamp)
		m.Sum(want[:0])
		k.pool.Put(m)
		match |= subtle.ConstantTimeCompare(got[:sha256.Size], want[:])
	}
	if match != 1 {
		return task.Wrap(task.EUNAUTHORIZED, "invalid "+HeaderSignature, task.ErrNoMatch)
	}
	return nil
}
