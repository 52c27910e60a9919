package submission

import (
	"errors"
	"maps"
	"time"
)

// Change is one conditional update of a submission: it applies only while
// the record is in status From (or OrFrom) under the claim it names, so
// that two submitters, or a submitter and a callback, never undo each
// other. Its constructors name every change; Apply is what it means.
type Change struct {
	ID     string
	From   string
	OrFrom string // when set, a record in this status takes the change too
	// ClaimedBy requires that submitter's claim; Unclaimed requires none.
	ClaimedBy string
	Unclaimed bool
	To        string // empty keeps the status
	Claim     string // takes the claim, at Now
	DropClaim bool
	// AddAttempt counts one more create call.
	AddAttempt bool
	// Notified records that the bus took the event of the end, at Now.
	Notified   bool
	TaskID     string
	Code       int
	Msg, Error string
	Now        time.Time
}

// Claim gives an accepted submission no one holds to the submitter owner,
// before its create call: no other one sends it while the claim stands,
// and a claim a crashed submitter left makes it unknown.
func Claim(id, owner string, now time.Time) Change {
	return Change{ID: id, From: Accepted, Unclaimed: true, Claim: owner, AddAttempt: true, Now: now}
}

// Release gives back owner's claim on a submission whose call can pass
// later (or was never written): it waits, accepted, for its next turn.
func Release(id, owner string, code int, msg string, now time.Time) Change {
	return Change{ID: id, From: Accepted, ClaimedBy: owner, DropClaim: true, Code: code, Msg: msg, Now: now}
}

// MarkSubmitted records the task the platform made for owner's call.
func MarkSubmitted(id, owner, taskID string, now time.Time) Change {
	return Change{ID: id, From: Accepted, ClaimedBy: owner, To: Submitted, TaskID: taskID, Code: 200, DropClaim: true, Now: now}
}

// MarkRefused records the platform's refusal for good of owner's call.
func MarkRefused(id, owner string, code int, msg string, now time.Time) Change {
	return Change{ID: id, From: Accepted, ClaimedBy: owner, To: SubmitFailed, Code: code, Msg: msg, DropClaim: true, Now: now}
}

// MarkUnknown records that owner's call went out and no usable answer
// came: the platform may have made the task, so it is never sent again.
func MarkUnknown(id, owner, why string, now time.Time) Change {
	return Change{ID: id, From: Accepted, ClaimedBy: owner, To: Unknown, Error: why, DropClaim: true, Now: now}
}

// Link records the task a callback carrying the submission's id came for:
// the submission is submitted, whatever its submitter knew.
func Link(id, taskID string, now time.Time) Change {
	return Change{ID: id, From: Unknown, OrFrom: Accepted, To: Submitted, TaskID: taskID, Code: 200, DropClaim: true, Now: now}
}

// Expire ends a submission that waited past its time: accepted and
// unclaimed past SUBMIT_MAX_WAIT (submit_failed), or unknown past
// SUBMIT_UNKNOWN_AFTER (submit_unknown).
func Expire(s Submission, why string, now time.Time) Change {
	c := Change{ID: s.ID, From: s.Status, Error: why, Now: now}
	switch s.Status {
	case Accepted:
		c.To, c.Unclaimed = SubmitFailed, true
	case Unknown:
		c.To = SubmitUnknown
	}
	return c
}

// Abandon makes unknown a submission whose submitter claimed it and
// ended (its claim outlived any call), as it would have on a lost answer.
func Abandon(s Submission, now time.Time) Change {
	return Change{ID: s.ID, From: Accepted, ClaimedBy: s.ClaimedBy, To: Unknown, DropClaim: true, Now: now,
		Error: "its submitter ended during its create call: the platform may have made the task"}
}

// MarkNotified records that the bus took the event of s's end, so that
// the reconciler does not put it again.
func MarkNotified(s Submission, now time.Time) Change {
	return Change{ID: s.ID, From: s.Status, Notified: true, Now: now}
}

// Touch records that an accepted submission no one holds still has a
// message on its way (sent again to wait its turn): the reconciler sends
// one only for a submission left untouched past a message's longest delay.
func Touch(id string, now time.Time) Change {
	return Change{ID: id, From: Accepted, Unclaimed: true, Now: now}
}

// Apply is the whole rule of a change: the submission c makes of s, and
// whether s met c's condition.
func Apply(s Submission, c Change) (Submission, bool) {
	switch {
	case s.Status != c.From && (c.OrFrom == "" || s.Status != c.OrFrom):
		return s, false
	case c.ClaimedBy != "" && s.ClaimedBy != c.ClaimedBy, c.Unclaimed && s.ClaimedBy != "":
		return s, false
	}
	s.Labels = maps.Clone(s.Labels)
	if c.To != "" {
		s.Status = c.To
	}
	if c.Claim != "" {
		s.ClaimedBy, s.ClaimedAt = c.Claim, c.Now
	}
	if c.DropClaim {
		s.ClaimedBy, s.ClaimedAt = "", time.Time{}
	}
	if c.AddAttempt {
		s.Attempts++
	}
	if c.TaskID != "" {
		s.TaskID = c.TaskID
	}
	if c.Code != 0 {
		s.Code, s.Msg = c.Code, c.Msg
	}
	if c.Error != "" {
		s.Error = c.Error
	}
	if c.Notified {
		s.NotifiedAt = c.Now
		return s, true // the submission is as it was: only its event is told
	}
	s.UpdatedAt = c.Now
	return s, true
}

// ErrStale reports that a submission did not meet a change's condition
// (or did not exist): another submitter, or a callback, moved it first.
var ErrStale = errors.New("submission changed concurrently")
