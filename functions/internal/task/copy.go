package task

import "time"

// The changes of a copy, and the ones that end it. Each applies only to a
// queued task, and all but the taking of a lease only under the lease
// their caller holds: the lease is what keeps two deliveries of one task,
// or a delivery and the reconciler's give-up, from ruining each other.

// TakeLease gives a queued task to the copier l names, unless a lease
// (another copier's, or the reconciler's give-up) is live at now; receives
// is the delivery count of the message that takes it. The record's
// updatedAt stays: the reconciler claims tasks on it.
func TakeLease(id string, l Lease, receives int, now time.Time) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, FreeAt: now}, set: Effect{Lease: &l, Receives: receives}}
}

// Requeue moves a copy_failed task of queueing generation-1 back to queued
// as queueing generation, for an operator's requeue (or redrive) once the
// cause is fixed, and gives it at once to the copier l names, the one
// that carries the request: one write, so that nothing can take the task
// between. Its error, its event's acceptance (its next end is announced)
// and its resend go. A request whose queueing already began acts no more.
func Requeue(id string, generation int, l Lease, receives int, now time.Time) Change {
	prior := generation - 1
	return Change{id: id, when: Condition{Status: StatusCopyFailed, FreeAt: now, Generation: &prior},
		set: Effect{Status: StatusQueued, Generation: &generation, Lease: &l, Receives: receives, UpdatedAt: now,
			DropError: true, DropNotified: true, DropResent: true}}
}

// Seize is the reconciler's hold on a queued task of queueing generation
// whose message is in the dead-letter queue and that no copier holds at
// now, before it gives the task up: until the task ends, or l expires
// should the reconciler die, no copier, requeue or redrive starts on it,
// so nothing it cleans up can be a copy in progress.
func Seize(id string, generation int, l Lease, now time.Time) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, FreeAt: now, Generation: &generation}, set: Effect{Lease: &l}}
}

// ReleaseLease gives up owner's lease on a task whose copy failed and will
// be retried, so that another delivery need not wait for it to expire.
func ReleaseLease(id, owner string) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, LeasedBy: owner}, set: Effect{DropLease: true}}
}

// RecordUpload keeps a multipart upload owner has started, before any of
// its parts is sent, for a later copy to abort should this one die.
func RecordUpload(id, owner string, up Upload) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, LeasedBy: owner}, set: Effect{AddUpload: &up}}
}

// ForgetUploads drops the uploads of a task once owner has aborted them.
func ForgetUploads(id, owner string) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, LeasedBy: owner}, set: Effect{DropUploads: true}}
}

// MarkStored records, at now, the copied objects of a task whose lease
// owner holds; anything else means another copier, or the reconciler's
// give-up, took it.
func MarkStored(id, owner string, objects []Object, now time.Time) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, LeasedBy: owner},
		set: Effect{Status: StatusStored, Objects: objects, StoredAt: now, UpdatedAt: now,
			DropError: true, DropLease: true, DropUploads: true}}
}

// MarkCopyFailed records why a task can never be copied, by the copier (or
// the reconciler's give-up) whose lease owner names, once what its copies
// left under the task's prefix is gone.
func MarkCopyFailed(id, owner, reason string, now time.Time) Change {
	return Change{id: id, when: Condition{Status: StatusQueued, LeasedBy: owner},
		set: Effect{Status: StatusCopyFailed, Error: reason, UpdatedAt: now, DropLease: true, DropUploads: true}}
}
