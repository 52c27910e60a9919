// Package task is the life of one generation task in kiehook: what a
// callback says, the record kept for it, and the rules that move it from
// received to stored. It is pure: no SDK, no I/O beyond the small interfaces
// its callers implement.
package task

import (
	"time"

	"github.com/kiehook/kiehook/functions/schema"
)

// Status is where a task is in its life.
type Status string

// The statuses are the schema's; it says what each means.
const (
	StatusPending    Status = schema.Pending
	StatusQueued     Status = schema.Queued
	StatusStored     Status = schema.Stored
	StatusFailed     Status = schema.Failed
	StatusCopyFailed Status = schema.CopyFailed
)

// CodeSuccess is the platform's code for a finished generation.
const CodeSuccess = 200

// DefaultTTL is how long a task record lives by default (RECORD_TTL).
const DefaultTTL = 720 * time.Hour

// AnswerBudget is the longest a callback takes to answer, so that a slow
// dependency ends in a 503 the platform retries rather than in its 15 s
// timeout. Past it, a callback's writes are over: the copier drops a
// message whose task still has no record that long after it was sent.
const AnswerBudget = 10 * time.Second

// Callback is what one platform callback says about a task.
type Callback struct {
	TaskID  string
	Code    int
	Msg     string
	API     string
	Sources []string
	// Progress marks a callback sent before the task is final (Suno's
	// text and first): the platform is still working, more will follow.
	Progress bool
	// Labels are the application's own identifiers from the callback
	// URL's query; the first request that brings any sets them for good.
	Labels map[string]string
	// Polled marks what the reconciler found by polling the platform: no
	// callback arrived, so none is counted in Deliveries.
	Polled bool
	// SubmissionID is the submission whose callback URL the platform
	// called (its sid): the task came through kiehook's submit.
	SubmissionID string
}

// Succeeded reports whether the callback carries results to copy. A
// progress callback never does: its URLs are a part of the results.
func (c Callback) Succeeded() bool {
	return !c.Progress && c.Code == CodeSuccess && len(c.Sources) > 0
}

// Object is one copied result in the bucket.
type Object struct {
	Key         string
	Bytes       int64
	SHA256      string
	ContentType string
	Source      string
}

// Task is the record kept for one task id.
type Task struct {
	ID         string
	Status     Status
	Code       int
	Msg        string
	API        string
	Sources    []string
	Objects    []Object
	Deliveries int
	ReceivedAt time.Time
	// SubmittedAt is when a pending task was registered.
	SubmittedAt time.Time
	UpdatedAt   time.Time
	StoredAt    time.Time
	ExpiresAt   time.Time
	Error       string
	// NotifiedAt is when the event of the record's final status was
	// accepted by the bus; zero until then.
	NotifiedAt time.Time
	// Uploads are the multipart uploads a copy of the task started and
	// has not finished: a copier that died leaves them for the next one to
	// abort once its lease has expired.
	Uploads []Upload
	// Lease is the claim of the copier working on the task, if any.
	Lease Lease
	// Receives is how many times SQS had delivered the copy message that
	// last took the lease (its ApproximateReceiveCount): the copies really
	// tried, which the reconciler gives up on, never the time queued.
	Receives int
	// Labels are the application's, from the first request that had any.
	Labels map[string]string
	// Generation counts the task's queueings after a copy failed: each
	// requeue starts a new one, and every copy message names the one it
	// was sent for, so that a message (a dead letter above all) of an
	// older one is told apart from the current copy's.
	Generation int
	// ResentAt is when the reconciler last sent a copy message for a
	// queued task whose copy never started (its first one may never have
	// been sent); zero if it never did.
	ResentAt time.Time
	// SubmissionID is the submission the task came through, if any.
	SubmissionID string
}

// Started reports whether a copy of the task was ever tried: a copier took
// its lease at least once in this queueing.
func (t Task) Started() bool { return t.Lease.Owner != "" || t.Receives > 0 }

// Lease is a copier's claim on a task: SQS delivers at least once, so two
// copiers may hold messages of one task at once. Until it expires no
// other copier starts, nor aborts the holder's uploads; it lasts as long
// as the holder's invocation can, so an expired lease is a dead copier's.
type Lease struct {
	Owner string
	Until time.Time
}

// Live reports whether the lease still holds at now.
func (l Lease) Live(now time.Time) bool { return l.Owner != "" && now.Before(l.Until) }

// Upload is one multipart upload of an object.
type Upload struct {
	Key string
	ID  string
}

// Final reports whether a task in status s has ended: its event is due.
func Final(s Status) bool {
	return s == StatusStored || s == StatusFailed || s == StatusCopyFailed
}

// New is the record that the first callback for a task creates: queued
// when there is something to copy (its message is sent first), failed
// otherwise, and pending after a progress callback (so that the reconciler
// polls it if the final callback never comes).
func New(cb Callback, now time.Time, ttl time.Duration) Task {
	if cb.Progress {
		t := NewPending(cb.TaskID, cb.API, cb.Labels, now, ttl)
		t.Code, t.Msg, t.Deliveries, t.ReceivedAt, t.SubmissionID = cb.Code, cb.Msg, 1, now, cb.SubmissionID
		return t
	}
	t := Task{
		ID:         cb.TaskID,
		Status:     StatusFailed,
		Code:       cb.Code,
		Msg:        cb.Msg,
		API:        cb.API,
		Sources:    cb.Sources,
		Deliveries: 1,
		ReceivedAt: now,
		UpdatedAt:  now,
		ExpiresAt:  now.Add(ttl),
		Labels:     cb.Labels,
	}
	t.SubmissionID = cb.SubmissionID
	if cb.Succeeded() {
		t.Status = StatusQueued
	}
	return t
}

// Queueable reports whether a callback may still move a task in status s
// to queued: a success moves a pending or failed task on. Its message is
// sent while that change is made, so a copier may read the record first.
func Queueable(s Status) bool {
	return s == StatusPending || s == StatusFailed
}

// Open reports whether a task in status s still needs kiehook's work: it
// is then listed in the table's sparse index for the reconciler.
func Open(s Status) bool {
	return s == StatusPending || s == StatusQueued
}

// NewPending is the record of a task registered before its callback.
func NewPending(id, api string, labels map[string]string, now time.Time, ttl time.Duration) Task {
	return Task{ID: id, Status: StatusPending, API: api, Labels: labels, SubmittedAt: now, UpdatedAt: now, ExpiresAt: now.Add(ttl)}
}

// Outcome is what the platform is told about a callback.
type Outcome string

const (
	Accepted  Outcome = "accepted"
	Duplicate Outcome = "duplicate"
)

// Repeat decides what a callback does to a task that already has a record.
// queue reports that the change moves the task to queued: its message must
// be sent too before the answer.
func Repeat(existing Task, cb Callback, now time.Time, ttl time.Duration) (change Change, outcome Outcome, queue bool) {
	change = Change{id: existing.ID, when: Condition{Status: existing.Status}}
	change.set = Effect{AddDelivery: !cb.Polled, Labels: cb.Labels, SubmissionID: cb.SubmissionID, UpdatedAt: now}
	switch {
	case cb.Progress:
		// Progress moves nothing, whatever it carries and whenever it comes.
		// It is news only to a registered task that no callback reached yet.
		if existing.Status == StatusPending && existing.Deliveries == 0 {
			change.set.ReceivedAt = now
			return change, Accepted, false
		}
		return change, Duplicate, false
	case existing.Status == StatusPending:
		// A pending task's final callback proceeds as a new one.
		fresh := New(cb, now, ttl)
		change.set.Status, change.set.Result = fresh.Status, &cb
		change.set.ExpiresAt = fresh.ExpiresAt
		if existing.ReceivedAt.IsZero() {
			change.set.ReceivedAt = now
		}
		return change, Accepted, fresh.Status == StatusQueued
	case existing.Status == StatusFailed && cb.Succeeded():
		// A later success wins over an earlier failure; the failure's
		// event was put, the copy's will be.
		change.set.Status, change.set.Result, change.set.DropNotified = StatusQueued, &cb, true
		return change, Accepted, true
	default:
		return change, Duplicate, false
	}
}
