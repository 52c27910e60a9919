package task

import "time"

// The copier's changes, and the ones that end a copy. Each applies only to
// a task still received or queued, under the lease its copier holds; the
// lease is what keeps two deliveries of one task from ruining each other.

// TakeLease gives a task to the copier l names, unless another copier's
// lease is live at now; receives is the delivery count of the message
// that takes it. A lease held is ErrStale. The record's updatedAt stays:
// the reconciler claims tasks on it.
func TakeLease(id string, l Lease, receives int, now time.Time) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, FreeAt: now, Lease: &l, Receives: receives}
}

// ReleaseLease gives up owner's lease on a task whose copy failed and will
// be retried, so that another delivery need not wait for it to expire.
func ReleaseLease(id, owner string) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, LeasedBy: owner, EndLease: true}
}

// RecordUpload keeps a multipart upload owner has started, before any of
// its parts is sent, for a later copy to abort should this one die.
func RecordUpload(id, owner string, up Upload) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, LeasedBy: owner, Upload: &up}
}

// ForgetUploads drops the uploads of a task once owner has aborted them.
func ForgetUploads(id, owner string) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, LeasedBy: owner, DropUploads: true}
}

// MarkStored records the copied objects of a task leased by owner;
// anything else means another copier finished it.
func MarkStored(id, owner string, objects []Object, now time.Time) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, LeasedBy: owner, FreeAt: now, Now: now,
		To: StatusStored, Objects: objects, DropError: true, EndLease: true, DropUploads: true}
}

// MarkCopyFailed records why a task can never be copied: by the copier
// whose lease owner names, or, with no owner (the reconciler), while no
// copier's lease is live at now.
func MarkCopyFailed(id, owner, reason string, now time.Time) Change {
	return Change{ID: id, From: StatusQueued, OrFrom: StatusReceived, LeasedBy: owner, FreeAt: now, Now: now,
		To: StatusCopyFailed, Error: reason, EndLease: true, DropUploads: true}
}

// Requeue moves a copy_failed task that no copier's lease holds at now
// back to queued, as an operator asks once the cause is fixed: its error,
// its event's notifiedAt (so that its next end is announced), its lease
// and its delivery count go.
func Requeue(id string, now time.Time) Change {
	return Change{ID: id, From: StatusCopyFailed, FreeAt: now, Now: now,
		To: StatusQueued, DropError: true, EndLease: true, DropReceives: true}
}

// MarkNotified records that the event of the task's final status was
// accepted, taking it out of the open index. It is ErrStale on a record
// that has moved on since (a success after a failure): its new status has
// an event of its own. Its updatedAt stays: the sweep's age is the status
// change's.
func MarkNotified(id string, status Status, at time.Time) Change {
	return Change{ID: id, From: status, NotifiedAt: at}
}
