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
	StatusReceived   Status = schema.Received
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
}

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
		t.Code, t.Msg, t.Deliveries, t.ReceivedAt = cb.Code, cb.Msg, 1, now
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
	return s == StatusPending || s == StatusReceived || s == StatusQueued
}

// NewPending is the record of a task registered before its callback.
func NewPending(id, api string, labels map[string]string, now time.Time, ttl time.Duration) Task {
	return Task{ID: id, Status: StatusPending, API: api, Labels: labels, SubmittedAt: now, UpdatedAt: now, ExpiresAt: now.Add(ttl)}
}

// Change is one conditional update of a record: it applies only while the
// record's status is still From (or OrFrom), so concurrent callers cannot
// undo each other's work. Every change has a constructor that names it;
// the store turns it into its update.
type Change struct {
	ID          string
	From        Status
	OrFrom      Status    // when set, a record in this status takes the change too
	To          Status    // empty keeps the status
	AddDelivery bool      // count one more callback
	Callback    *Callback // when set, its code, message, API and sources replace the record's
	ReceivedAt  time.Time // when set, the first receipt (a pending task's first callback)
	ExpiresAt   time.Time // when set, the new TTL deadline
	// Labels, when set, become the record's unless it has labels already.
	Labels map[string]string
	// IfUpdatedAt, when set, also requires the record's updatedAt to be
	// exactly this: a claim that only one of several concurrent callers wins.
	IfUpdatedAt time.Time

	// LeasedBy, when set, requires that copier's lease; otherwise FreeAt,
	// when set, requires that no copier's lease is live then.
	LeasedBy string
	FreeAt   time.Time
	Lease    *Lease // takes the lease, for a message delivered Receives times
	Receives int
	EndLease bool    // drops the lease
	Upload   *Upload // records a multipart upload the leaseholder started
	// DropUploads forgets the recorded uploads; DropError the error;
	// DropReceives the delivery count of the last lease.
	DropUploads, DropError, DropReceives bool
	Objects                              []Object // with To stored: what was copied
	Error                                string   // with To copy_failed: why
	// NotifiedAt, when set, is when the event of the record's status was
	// accepted: the record leaves the open index.
	NotifiedAt time.Time
	// Now, when set, moves the record's updatedAt (and, with To stored,
	// is its storedAt).
	Now time.Time
}

// The changes other than a callback's (New, Repeat), each named here so
// that the rules that move a task live in one place; dynamo turns each into
// its conditional update, and owns the copier's own (Lease, Stored,
// CopyFailed, Requeue…), whose conditions are the lease's.

// Claim is a reconciler run's hold on a task it listed: it moves only the
// task's updatedAt, and only if no other run or callback moved it since.
func Claim(t Task, now time.Time) Change {
	return Change{ID: t.ID, From: t.Status, IfUpdatedAt: t.UpdatedAt, Now: now}
}

// Expire fails a pending task whose results the platform can no longer
// have, saying why; as a claim, only if nothing moved it since it was
// listed.
func Expire(t Task, reason string, now time.Time) Change {
	cb := Callback{TaskID: t.ID, API: t.API, Msg: reason}
	return Change{ID: t.ID, From: StatusPending, To: StatusFailed, Callback: &cb, IfUpdatedAt: t.UpdatedAt, Now: now}
}

// MarkQueued moves a received task, whose message has been sent, to queued.
func MarkQueued(id string, now time.Time) Change {
	return Change{ID: id, From: StatusReceived, To: StatusQueued, Now: now}
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
	change = Change{ID: existing.ID, From: existing.Status, AddDelivery: !cb.Polled, Labels: cb.Labels, Now: now}
	switch {
	case cb.Progress:
		// Progress moves nothing, whatever it carries and whenever it comes.
		// It is news only to a registered task that no callback reached yet.
		if existing.Status == StatusPending && existing.Deliveries == 0 {
			change.ReceivedAt = now
			return change, Accepted, false
		}
		return change, Duplicate, false
	case existing.Status == StatusPending:
		// A pending task's final callback proceeds as a new one.
		fresh := New(cb, now, ttl)
		change.To, change.Callback = fresh.Status, &cb
		change.ExpiresAt = fresh.ExpiresAt
		if existing.ReceivedAt.IsZero() {
			change.ReceivedAt = now
		}
		return change, Accepted, fresh.Status == StatusQueued
	case existing.Status == StatusReceived:
		// An earlier attempt died before queueing: finish its work.
		change.To = StatusQueued
		return change, Accepted, true
	case existing.Status == StatusFailed && cb.Succeeded():
		// A later success wins over an earlier failure.
		change.To, change.Callback = StatusQueued, &cb
		return change, Accepted, true
	default:
		return change, Duplicate, false
	}
}
