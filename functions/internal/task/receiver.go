package task

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/kiehook/kiehook/functions/internal/run"
)

// ErrStale reports that a record did not meet a Change's condition (or
// did not exist): someone else moved the task first.
var ErrStale = errors.New("task record changed concurrently")

// StaleError is ErrStale with the record as the Change found it.
type StaleError struct{ Current Task }

func (e *StaleError) Error() string { return ErrStale.Error() }

// Is makes a StaleError an ErrStale.
func (e *StaleError) Is(target error) bool { return target == ErrStale }

// Store keeps task records.
type Store interface {
	// Create writes t unless a record with its id exists; then it returns
	// that record and created=false.
	Create(ctx context.Context, t Task) (existing Task, created bool, err error)
	// Update applies c, as Apply says. When c ends the task it returns the
	// record as it is then, for its event. When the record does not meet
	// c's condition it returns ErrStale: a *StaleError holding the current
	// record when it could be read.
	Update(ctx context.Context, c Change) (current Task, err error)
}

// Queue hands a task to the copier, for its queueing generation.
type Queue interface {
	Enqueue(ctx context.Context, taskID string, generation int) error
}

// Notifier tells the user's application that a task ended. It is called
// only once the task's final status is durable, and again (by a later
// attempt or the reconciler's sweep) until it succeeds.
type Notifier interface {
	Notify(ctx context.Context, t Task) error
}

// Linker records, on the submission a task came through, the task the
// platform made for it (dynamo.Submissions, with submission.Link): a
// submission whose create call lost its answer learns its task this way.
// A submission that has ended already is left as it is, with no error.
type Linker interface {
	LinkTask(ctx context.Context, submissionID, taskID string, now time.Time) error
}

// Receiver applies the task life cycle to authenticated, parsed callbacks.
type Receiver struct {
	Store    Store
	Queue    Queue
	Notifier Notifier // nil: no events
	TTL      time.Duration
	Now      func() time.Time
	// Logger hears what failed after a task was safe (an event not put):
	// nothing the caller must act on. Nil logs to slog's default.
	Logger *slog.Logger
	// Group runs a success's send while its record is written (nil: on a
	// goroutine).
	Group run.NewGroup
	// Submissions links a callback's task to the submission it names, once
	// the task is recorded; nil: none.
	Submissions Linker
}

// maxRaces bounds how often a repeat is re-decided after losing a race to a
// concurrent callback for the same task.
const maxRaces = 3

// Receive records cb and queues the task when it has results to copy,
// links it to the submission it names, and returns the answer to give. An
// error, of code EUNAVAILABLE, means nothing was lost and the platform
// should call again. What fails once the task is safe is logged, not
// returned.
//
// A success costs two round trips, at once (and one naming a submission
// a third, its link, after them): the message is sent while the
// record is written as queued, and the answer waits for both. A 200 thus
// always has its record and its message. When one of them fails, or the
// process dies between them, the answer is not a 200 and the platform
// calls again, and every success callback sends its own message: a
// message without a record is dropped by the copier once AnswerBudget has
// passed, and a record without a message gets one from the retry, or,
// should every retry fail too, from the reconciler (MarkResent). The
// price is a message for every repeat of a success, which the copier ends
// on reading the record. A callback's message is of the first queueing
// (generation 0): after a requeue the copier passes it over, the
// requeue's own message carries the copy.
func (r *Receiver) Receive(ctx context.Context, cb Callback) (Outcome, error) {
	outcome, err := r.receive(ctx, cb)
	// The link comes after the record, so that a task is tracked whatever
	// its link does: a link that fails is a 503, and the platform's next
	// call makes it.
	if err == nil && cb.SubmissionID != "" && r.Submissions != nil {
		if err := r.Submissions.LinkTask(ctx, cb.SubmissionID, cb.TaskID, r.Now().UTC()); err != nil {
			return "", Wrap(EUNAVAILABLE, "submission store unavailable", err)
		}
	}
	return outcome, err
}

// receive records cb, and sends its message when it has results to copy.
func (r *Receiver) receive(ctx context.Context, cb Callback) (Outcome, error) {
	if !cb.Succeeded() {
		return r.record(ctx, cb, false)
	}
	g := r.Group.Or()
	var sendErr error
	g.Go(func() { sendErr = r.send(ctx, cb.TaskID) })
	outcome, err := r.record(ctx, cb, true)
	g.Wait()
	if sendErr != nil {
		return "", sendErr
	}
	return outcome, err
}

// record writes what cb says of its task; sent says its message is sent
// (or being sent) already.
func (r *Receiver) record(ctx context.Context, cb Callback, sent bool) (Outcome, error) {
	now := r.Now().UTC()
	fresh := New(cb, now, r.TTL)
	existing, created, err := r.Store.Create(ctx, fresh)
	if err != nil {
		return "", Wrap(EUNAVAILABLE, "task store unavailable", err)
	}
	if created {
		r.notify(ctx, fresh)
		return Accepted, nil
	}
	for range maxRaces {
		change, outcome, queue := Repeat(existing, cb, now, r.TTL)
		if queue && !sent {
			if err := r.send(ctx, cb.TaskID); err != nil {
				return "", err
			}
			sent = true
		}
		current, err := r.Store.Update(ctx, change)
		var stale *StaleError
		if errors.As(err, &stale) {
			existing = stale.Current
			continue
		}
		if err != nil {
			return "", Wrap(EUNAVAILABLE, "task store unavailable", err)
		}
		if change.Ends() {
			r.notify(ctx, current)
		}
		return outcome, nil
	}
	return "", Errorf(EUNAVAILABLE, "task %s is changing concurrently, try again", cb.TaskID)
}

func (r *Receiver) send(ctx context.Context, id string) error {
	if err := r.Queue.Enqueue(ctx, id, 0); err != nil {
		return Wrap(EUNAVAILABLE, "queue unavailable", err)
	}
	return nil
}

// notify announces t when it has ended. A failure is only logged: the task
// is safe, and the reconciler's sweep announces it later.
func (r *Receiver) notify(ctx context.Context, t Task) {
	if r.Notifier == nil || !Final(t.Status) {
		return
	}
	if err := r.Notifier.Notify(ctx, t); err != nil {
		r.log().WarnContext(ctx, "task event not put; the sweep will", "taskId", t.ID, "error", err.Error())
	}
}

func (r *Receiver) log() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

// Register records a task as pending before its callback, so that the
// reconciler can poll the platform if the callback never comes. A task
// kiehook already knows is left as it is; its record is returned.
func (r *Receiver) Register(ctx context.Context, id, api string, labels map[string]string) (Task, bool, error) {
	t := NewPending(id, api, labels, r.Now().UTC(), r.TTL)
	existing, created, err := r.Store.Create(ctx, t)
	if err != nil {
		return Task{}, false, Wrap(EUNAVAILABLE, "task store unavailable", err)
	}
	if created {
		return t, true, nil
	}
	return existing, false, nil
}
