package reconciler

import (
	"context"
	"errors"
	"time"

	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// openSubmissions lists and changes the submissions that still need work.
type openSubmissions interface {
	Open(ctx context.Context, status string, before time.Time, limit int32) ([]submission.Submission, error)
	Unannounced(ctx context.Context, before time.Time, limit int32) ([]submission.Submission, error)
	Update(ctx context.Context, c submission.Change) (submission.Submission, error)
	LinkTask(ctx context.Context, id, taskID string, now time.Time) error
}

// submitQueue hands a submission to the submitter.
type submitQueue interface {
	Send(ctx context.Context, id string, delay time.Duration) error
}

// announcer puts a submission's event.
type announcer interface {
	Announce(ctx context.Context, s submission.Submission) error
}

// Submissions is what the reconciler finishes of the submissions; nil
// fields mean the stack takes no submissions.
type Submissions struct {
	Store  openSubmissions
	Queue  submitQueue
	Events announcer // nil: no events
	// UnknownAfter is how long a submission stays unknown before it ends
	// submit_unknown (SUBMIT_UNKNOWN_AFTER).
	UnknownAfter time.Duration
}

// The ages at which the reconciler acts on an accepted submission: one
// untouched past the longest SQS delay, and then some, has lost its
// message; one claimed past claimTimeout lost its submitter.
const (
	lostMessageAfter = 20 * time.Minute
	claimTimeout     = 2 * time.Minute
)

// submissions finishes what a crash or a failed send left: an accepted
// submission whose message is gone gets one, a claim a dead submitter
// left makes its submission unknown (its call may have gone out), and a
// submission unknown past UnknownAfter ends submit_unknown.
func (r *Reconciler) submissions(ctx context.Context, now time.Time, rep *Report) error {
	s := r.Submissions
	if s.Store == nil {
		return nil
	}
	accepted, err := s.Store.Open(ctx, submission.Accepted, now.Add(-min(lostMessageAfter, claimTimeout)), r.Limit)
	if err != nil {
		return err
	}
	var errs []error
	for _, sub := range accepted {
		switch {
		case sub.ClaimedBy != "" && now.Sub(sub.ClaimedAt) >= claimTimeout:
			_, err = s.Store.Update(ctx, submission.Abandon(sub, now))
		case sub.ClaimedBy == "" && now.Sub(sub.UpdatedAt) >= lostMessageAfter:
			// Touched first, so that overlapping runs send it once.
			if _, err = s.Store.Update(ctx, submission.Touch(sub.ID, now)); err == nil {
				err = s.Queue.Send(ctx, sub.ID, 0)
				rep.SubmissionsResent++
			}
		}
		if err != nil && !errors.Is(err, submission.ErrStale) {
			errs = append(errs, err)
		}
	}
	unknown, err := s.Store.Open(ctx, submission.Unknown, now.Add(-s.UnknownAfter), r.Limit)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, sub := range unknown {
		ended, err := s.Store.Update(ctx, submission.Expire(sub, "no answer and no callback told its task within SUBMIT_UNKNOWN_AFTER ("+s.UnknownAfter.String()+")", now))
		if errors.Is(err, submission.ErrStale) {
			continue // its callback linked it meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rep.SubmitUnknown++
		if s.Events != nil {
			if err := s.Events.Announce(ctx, ended); err != nil {
				r.Logger.WarnContext(ctx, "submission event not put: the sweep puts it", "submissionId", ended.ID, "error", err.Error())
			}
		}
	}
	return errors.Join(append(errs, r.announceSubmissions(ctx, now, rep))...)
}

// linkPending records on its submission the task of a pending record a
// submitter wrote: written after the platform's answer, the record proves
// the task, whatever its state, so a submission whose submitter died
// before its mark learns it here, its callback or not. It comes before
// the task's poll, which a failed link stops until the next run.
func (r *Reconciler) linkPending(ctx context.Context, t task.Task, now time.Time) error {
	if t.SubmissionID == "" || r.Submissions.Store == nil {
		return nil
	}
	return r.Submissions.Store.LinkTask(ctx, t.SubmissionID, t.ID, now)
}

// announceSubmissions puts the events of the submissions that ended
// NotifyAfter ago or more and whose event the bus never took: their
// submitter died before it put it, the bus refused it, or a callback
// linked them (the callback answers at once and leaves the event here).
func (r *Reconciler) announceSubmissions(ctx context.Context, now time.Time, rep *Report) error {
	s := r.Submissions
	if s.Events == nil {
		return nil
	}
	ended, err := s.Store.Unannounced(ctx, now.Add(-r.NotifyAfter), r.Limit)
	if err != nil {
		return err
	}
	var errs []error
	for _, sub := range ended {
		if err := s.Events.Announce(ctx, sub); err != nil {
			errs = append(errs, err)
			continue
		}
		rep.Notified++ // EventsSwept counts both kinds
	}
	return errors.Join(errs...)
}
