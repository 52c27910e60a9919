package kie

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// The platform's webhook signature headers. Function URLs lower-case header
// names, so callers look them up case-insensitively.
const (
	HeaderTimestamp = "X-Webhook-Timestamp"
	HeaderSignature = "X-Webhook-Signature"
)

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

// Verifier checks webhook signatures with one key.
type Verifier struct {
	key       []byte
	tolerance time.Duration
	macs      sync.Pool // keyed HMACs, reused across calls
}

// NewVerifier returns a Verifier for key that refuses timestamps farther
// than tolerance from the time of the check.
func NewVerifier(key []byte, tolerance time.Duration) *Verifier {
	v := &Verifier{key: key, tolerance: tolerance}
	v.macs.New = func() any { return hmac.New(sha256.New, key) }
	return v
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
	var got, want [sha256.Size]byte
	n, err := base64.StdEncoding.Decode(got[:], []byte(signature))
	if err != nil || len(signature) != base64.StdEncoding.EncodedLen(sha256.Size) {
		return task.Errorf(task.EUNAUTHORIZED, "invalid %s", HeaderSignature)
	}
	m := v.macs.Get().(hash.Hash)
	m.Reset()
	write(m, taskID, timestamp)
	m.Sum(want[:0])
	v.macs.Put(m)
	if !hmac.Equal(got[:n], want[:]) {
		return task.Errorf(task.EUNAUTHORIZED, "invalid %s", HeaderSignature)
	}
	return nil
}
