package task

import (
	"context"
	"errors"
	"time"
)

// ErrStale reports that a Change found the record in another status than
// its From: someone else moved the task first.
var ErrStale = errors.New("task record changed concurrently")

// Store keeps task records.
type Store interface {
	// Create writes t unless a record with its id exists; then it returns
	// that record and created=false.
	Create(ctx context.Context, t Task) (existing Task, created bool, err error)
	// Update applies c. When c ends the task (To is final) it returns the
	// record as it is then, for its event. When the record's status is no
	// longer c.From it returns ErrStale and, when it can, the current record.
	Update(ctx context.Context, c Change) (current Task, err error)
}

// Queue hands a task to the copier.
type Queue interface {
	Enqueue(ctx context.Context, taskID string) error
}

// Notifier tells the user's application that a task ended. It is called
// only once the task's final status is durable, and again (by a later
// attempt or the reconciler's sweep) until it succeeds.
type Notifier interface {
	Notify(ctx context.Context, t Task) error
}

// Receiver applies the task life cycle to authenticated, parsed callbacks.
type Receiver struct {
	Store    Store
	Queue    Queue
	Notifier Notifier // nil: no events
	TTL      time.Duration
	Now      func() time.Time
}

// maxRaces bounds how often a repeat is re-decided after losing a race to a
// concurrent callback for the same task.
const maxRaces = 3

// Receive records cb and queues the task when it has results to copy. A
// non-empty outcome is the answer to give even when err is set; err is then
// only for the log. With no outcome, an error of code EUNAVAILABLE means
// nothing was lost and the platform should call again.
func (r *Receiver) Receive(ctx context.Context, cb Callback) (Outcome, error) {
	now := r.Now().UTC()
	fresh := New(cb, now, r.TTL)
	existing, created, err := r.Store.Create(ctx, fresh)
	if err != nil {
		return "", Wrap(EUNAVAILABLE, "task store unavailable", err)
	}
	if created {
		if fresh.Status == StatusReceived {
			return r.enqueue(ctx, cb.TaskID, now, Accepted)
		}
		return Accepted, r.notify(ctx, fresh)
	}
	for range maxRaces {
		change, outcome, queue := Repeat(existing, cb, now, r.TTL)
		current, err := r.Store.Update(ctx, change)
		if errors.Is(err, ErrStale) && current.ID != "" {
			existing = current
			continue
		}
		if err != nil {
			return "", Wrap(EUNAVAILABLE, "task store unavailable", err)
		}
		if queue {
			return r.enqueue(ctx, cb.TaskID, now, outcome)
		}
		if change.To != "" {
			return outcome, r.notify(ctx, current)
		}
		return outcome, nil
	}
	return "", Errorf(EUNAVAILABLE, "task %s is changing concurrently, try again", cb.TaskID)
}

// enqueue sends the task to the copier and then marks it queued. A failed
// send leaves the record received, so the platform's retry finishes it.
func (r *Receiver) enqueue(ctx context.Context, id string, now time.Time, outcome Outcome) (Outcome, error) {
	if err := r.Queue.Enqueue(ctx, id); err != nil {
		return "", Wrap(EUNAVAILABLE, "queue unavailable", err)
	}
	// The task is safely queued now. If marking it fails, or the copier has
	// already moved it on (ErrStale), the record stays or becomes correct
	// without us: the copier accepts received as well as queued.
	_, err := r.Store.Update(ctx, Change{ID: id, From: StatusReceived, To: StatusQueued, Now: now})
	if err != nil && !errors.Is(err, ErrStale) {
		return outcome, Wrap(EINTERNAL, "marking queued failed after send", err)
	}
	return outcome, nil
}

// notify announces t when it has ended. A failure is only for the log: the
// task is safe, and the reconciler's sweep announces it later.
func (r *Receiver) notify(ctx context.Context, t Task) error {
	if r.Notifier == nil || !Final(t.Status) {
		return nil
	}
	if err := r.Notifier.Notify(ctx, t); err != nil {
		return Wrap(EUNAVAILABLE, "task event not put; the sweep will", err)
	}
	return nil
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
