// Package submission is the life of one task kiehook creates on the
// platform for an application: the request it accepts, the submission it
// keeps, and what each of the platform's answers does to it. It is pure:
// the submit function, the submitter and the stores around it do the I/O.
package submission

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kiehook/kiehook/functions/internal/kie"
)

// The statuses of a submission, as the contract names them.
const (
	Accepted      = "accepted"       // waiting for its turn, or for a retry
	Submitted     = "submitted"      // the platform made its task; the task goes on as every task does
	SubmitFailed  = "submit_failed"  // the platform refused it for good (final)
	Unknown       = "unknown"        // a create request went out and no usable answer came
	SubmitUnknown = "submit_unknown" // still unknown after SUBMIT_UNKNOWN_AFTER (final)
)

// MaxBody is the largest request body the submit function reads.
const MaxBody = 64 << 10

// MaxKey is the longest Idempotency-Key, in bytes.
const MaxKey = 64

// Submission is what kiehook keeps of one request to create a task.
type Submission struct {
	ID       string
	Key      string // the application's Idempotency-Key
	BodyHash string // of the request's canonical JSON: the same key with another body is refused
	API      string
	Input    json.RawMessage // the platform's create body, as the application gave it
	Labels   map[string]string
	Status   string
	Attempts int // create calls made, or tried
	TaskID   string
	Code     int
	Msg      string
	Error    string
	// ClaimedBy names the submitter whose create call may be in flight:
	// set, with ClaimedAt, before the call, so that no other one sends it.
	ClaimedBy string
	ClaimedAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	// NotifiedAt is when the bus took the event of its end: until then,
	// the reconciler puts it, so that every end is told at least once.
	NotifiedAt time.Time
}

// Final reports whether a submission in status s has ended.
func Final(s string) bool { return s == Submitted || s == SubmitFailed || s == SubmitUnknown }

// Unannounced reports whether s has ended and the bus has not taken the
// event of its end.
func (s Submission) Unannounced() bool { return Final(s.Status) && s.NotifiedAt.IsZero() }

// Request is the body of POST /submissions.
type Request struct {
	API    string            `json:"api"`
	Input  json.RawMessage   `json:"input"`
	Labels map[string]string `json:"labels,omitempty"`
}

// An error of a request is one of these, saying what is wrong: the
// submit function answers it 400.
var ErrInvalid = errors.New("invalid submission")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// New reads a request with its key into a new submission, accepted at
// now, or says what is wrong with it (ErrInvalid). Its ID follows from the
// key alone, so that a repeat finds it.
func New(key string, body []byte, now time.Time, ttl time.Duration) (Submission, error) {
	if !kie.IsName(key, "_.:-", MaxKey) {
		return Submission{}, invalid("the Idempotency-Key header must be 1-%d characters of A-Z a-z 0-9 _ - . :", MaxKey)
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Submission{}, invalid("the body is not {\"api\", \"input\", \"labels\"}: %v", err)
	}
	if !slices.Contains(kie.KnownAPIs, req.API) {
		return Submission{}, invalid("api %.40q is not one of %v", req.API, kie.KnownAPIs)
	}
	var input map[string]json.RawMessage
	if err := json.Unmarshal(req.Input, &input); err != nil || input == nil {
		return Submission{}, invalid("input must be a JSON object: the platform's create body for %s", req.API)
	}
	if _, ok := input["callBackUrl"]; ok {
		return Submission{}, invalid("input has a callBackUrl: kiehook sets it")
	}
	if err := kie.CheckLabels(req.Labels); err != nil {
		return Submission{}, invalid("labels: %v", err)
	}
	hash, err := canonicalHash(req)
	if err != nil {
		return Submission{}, invalid("%v", err)
	}
	return Submission{
		ID: IDOf(key), Key: key, BodyHash: hash, API: req.API, Input: req.Input, Labels: req.Labels,
		Status: Accepted, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(ttl),
	}, nil
}

// IDOf is the submission id of an Idempotency-Key.
func IDOf(key string) string {
	sum := sha256.Sum256([]byte("kiehook submission\x00" + key))
	return "sub_" + hex.EncodeToString(sum[:12])
}

// canonicalHash hashes req in one form whatever its spacing and order:
// decoded into plain values and encoded again, Go writes object keys
// sorted.
func canonicalHash(req Request) (string, error) {
	var plain any
	if err := json.Unmarshal(req.Input, &plain); err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]any{"api": req.API, "input": plain, "labels": req.Labels})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Same reports whether a repeat with body hash h is the same submission.
func (s Submission) Same(h string) bool { return s.BodyHash == h }
