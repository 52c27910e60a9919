package task

import (
	"slices"
	"time"
)

// Change is one conditional update of a task's record: what the record
// must be for it to apply, and what it then does. A Change is made only by
// the constructors that name it (Repeat, Claim, TakeLease, MarkStored…),
// so that every rule of the life cycle is in this package; Apply is what
// it means, and a store (dynamo) only translates it.
type Change struct {
	id   string
	when Condition
	set  Effect
}

// ID is the task the change is for.
func (c Change) ID() string { return c.id }

// Condition is what the record must be for the change to apply.
func (c Change) Condition() Condition { return c.when }

// Effect is what the change does to a record that meets its condition.
func (c Change) Effect() Effect { return c.set }

// Ends reports whether the change gives the task a final status: its
// event is then due.
func (c Change) Ends() bool { return Final(c.set.Status) }

// Condition is what a record must be for a change to apply. Every part
// that is set must hold.
type Condition struct {
	Status Status // the record's status
	// LeasedBy is the copier (or reconciler) whose lease the record must
	// carry, live or not: its holder's own writes.
	LeasedBy string
	// FreeAt, when set, requires that no lease is live then.
	FreeAt time.Time
	// UpdatedAt, when set, requires the record's updatedAt to be exactly
	// this (to the second, as it is stored): a claim that only one of
	// several concurrent callers wins.
	UpdatedAt time.Time
	// Generation, when set, is the queueing the record must be in.
	Generation *int
	// NeverStarted requires that no copy of the queueing ever took the
	// lease; ResentAt then is the record's resentAt, zero for none.
	NeverStarted bool
	ResentAt     time.Time
}

// Effect is what a change does. Zero fields change nothing.
type Effect struct {
	Status      Status // the new status
	AddDelivery bool   // count one more callback
	// Result, when set, is the callback whose code, message, API and
	// sources replace the record's.
	Result     *Callback
	ReceivedAt time.Time // the first receipt (a pending task's first callback)
	ExpiresAt  time.Time // the new TTL deadline
	// Labels become the record's unless it has labels already, and so
	// does SubmissionID.
	Labels       map[string]string
	SubmissionID string
	UpdatedAt    time.Time
	// Lease is taken, by a message delivered Receives times (0 keeps the
	// count); DropLease ends the lease.
	Lease     *Lease
	Receives  int
	DropLease bool
	// AddUpload records a multipart upload the leaseholder started;
	// DropUploads forgets them all.
	AddUpload   *Upload
	DropUploads bool
	// Objects, with Status stored, is what was copied, at StoredAt.
	Objects  []Object
	StoredAt time.Time
	Error    string // why the copy failed
	// DropError, DropNotified and DropResent remove the error, the
	// event's acceptance and the resend.
	DropError, DropNotified, DropResent bool
	NotifiedAt                          time.Time // the event of the status was accepted
	Generation                          *int      // the queueing the task is in from now on
	ResentAt                            time.Time // a copy message was sent again
}

// Apply is the whole rule of a change: the record that c makes of t, or a
// *StaleError holding t when t does not meet c's condition. It is pure;
// times are kept as the record stores them (seconds; a lease's end in
// milliseconds), so that what Apply says and what a store holds agree.
func Apply(t Task, c Change) (Task, error) {
	if !c.when.holds(t) {
		return t, &StaleError{Current: t}
	}
	e := c.set
	t.Sources, t.Objects, t.Uploads = slices.Clone(t.Sources), slices.Clone(t.Objects), slices.Clone(t.Uploads)
	if e.Status != "" {
		t.Status = e.Status
	}
	if e.AddDelivery {
		t.Deliveries++
	}
	if cb := e.Result; cb != nil {
		t.Code, t.Msg, t.API, t.Sources = cb.Code, cb.Msg, cb.API, slices.Clone(cb.Sources)
	}
	setTime(&t.ReceivedAt, e.ReceivedAt)
	setTime(&t.UpdatedAt, e.UpdatedAt)
	if !e.ExpiresAt.IsZero() {
		t.ExpiresAt = time.Unix(e.ExpiresAt.Unix(), 0).UTC()
	}
	if len(t.Labels) == 0 && len(e.Labels) > 0 {
		t.Labels = e.Labels
	}
	if t.SubmissionID == "" && e.SubmissionID != "" {
		t.SubmissionID = e.SubmissionID
	}
	if l := e.Lease; l != nil {
		t.Lease = Lease{Owner: l.Owner, Until: time.UnixMilli(l.Until.UnixMilli()).UTC()}
		if e.Receives > 0 {
			t.Receives = e.Receives
		}
	}
	if e.DropLease {
		t.Lease = Lease{}
	}
	if up := e.AddUpload; up != nil {
		t.Uploads = append(t.Uploads, *up)
	}
	if e.DropUploads {
		t.Uploads = nil
	}
	if e.Status == StatusStored {
		t.Objects = slices.Clone(e.Objects)
		setTime(&t.StoredAt, e.StoredAt)
	}
	if e.Error != "" {
		t.Error = e.Error
	}
	if e.DropError {
		t.Error = ""
	}
	if e.DropNotified {
		t.NotifiedAt = time.Time{}
	}
	setTime(&t.NotifiedAt, e.NotifiedAt)
	if e.Generation != nil {
		t.Generation = *e.Generation
	}
	setTime(&t.ResentAt, e.ResentAt)
	if e.DropResent {
		t.ResentAt = time.Time{}
	}
	return t, nil
}

// setTime sets *to to at, to the second, unless at is zero.
func setTime(to *time.Time, at time.Time) {
	if !at.IsZero() {
		*to = at.UTC().Truncate(time.Second)
	}
}

func (w Condition) holds(t Task) bool {
	switch {
	case t.Status != w.Status:
		return false
	case w.LeasedBy != "" && t.Lease.Owner != w.LeasedBy:
		return false
	case !w.FreeAt.IsZero() && t.Lease.Owner != "" && t.Lease.Until.UnixMilli() > w.FreeAt.UnixMilli():
		return false
	case !w.UpdatedAt.IsZero() && !sameSecond(t.UpdatedAt, w.UpdatedAt):
		return false
	case w.Generation != nil && t.Generation != *w.Generation:
		return false
	case w.NeverStarted && (t.Started() || !sameSecond(t.ResentAt, w.ResentAt)):
		return false
	}
	return true
}

// sameSecond compares two times as the record stores them.
func sameSecond(a, b time.Time) bool {
	return a.IsZero() == b.IsZero() && a.Unix() == b.Unix()
}

// generation is a pointer to g, for a Condition or an Effect.
func generation(g int) *int { return &g }

// The changes of the reconciler and of the events, other than a callback's
// (New, Repeat) and a copy's (copy.go).

// Claim is a reconciler run's hold on a pending task it listed, before it
// polls the platform: it moves only the task's updatedAt, and only if no
// other run or callback moved it since.
func Claim(t Task, now time.Time) Change {
	return Change{id: t.ID, when: Condition{Status: t.Status, UpdatedAt: t.UpdatedAt}, set: Effect{UpdatedAt: now}}
}

// Expire fails a pending task whose results the platform can no longer
// have, saying why; as a claim, only if nothing moved it since it was
// listed.
func Expire(t Task, reason string, now time.Time) Change {
	cb := Callback{TaskID: t.ID, API: t.API, Msg: reason}
	return Change{id: t.ID, when: Condition{Status: StatusPending, UpdatedAt: t.UpdatedAt},
		set: Effect{Status: StatusFailed, Result: &cb, UpdatedAt: now}}
}

// MarkResent records that a copy message is being sent again for t, a
// queued task whose copy never started: its first message may never have
// been sent. It applies only while no copy has started and no other run
// resent it since t was read, so that overlapping runs send it once.
func MarkResent(t Task, now time.Time) Change {
	return Change{id: t.ID, when: Condition{Status: StatusQueued, NeverStarted: true, ResentAt: t.ResentAt},
		set: Effect{ResentAt: now}}
}

// UnmarkResent takes back MarkResent(t, at) when its message could not be
// sent, so that the next run sends it.
func UnmarkResent(t Task, at time.Time) Change {
	return Change{id: t.ID, when: Condition{Status: StatusQueued, NeverStarted: true, ResentAt: at},
		set: Effect{DropResent: true}}
}

// MarkNotified records that the event of t's final status was accepted,
// taking the task out of the open index. It applies only to the status
// and queueing that event announced: a record that has moved on since (a
// success after a failure, a requeue and a second end) owes an event of
// its own. Its updatedAt stays: the sweep's age is the status change's.
func MarkNotified(t Task, at time.Time) Change {
	return Change{id: t.ID, when: Condition{Status: t.Status, Generation: generation(t.Generation)},
		set: Effect{NotifiedAt: at}}
}
