// Package submitter creates on the platform the tasks applications submit
// (functions/submitter): fed by the submission queue, it paces the create
// calls within the account's rate across every concurrent submitter,
// retries what can pass later, pauses while the account has no credits,
// and never sends one submission twice.
package submitter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// store keeps submissions.
type store interface {
	Get(ctx context.Context, id string) (submission.Submission, bool, error)
	Update(ctx context.Context, c submission.Change) (submission.Submission, error)
}

// pacer hands out the account's create calls within its rate, and dates
// each by its answer.
type pacer interface {
	TakeSlot(ctx context.Context, account string, rate int, window, hold time.Duration, clock func() time.Time) (time.Duration, time.Time, error)
	Redate(ctx context.Context, account string, from, to time.Time) error
}

// credits keeps whether the account ran out of credits.
type credits interface {
	Credits(ctx context.Context, account string) (submission.Credits, error)
	Pause(ctx context.Context, account string, now time.Time) error
	Resume(ctx context.Context, account string) error
	ClaimCheck(ctx context.Context, account string, c submission.Credits, now time.Time) (bool, error)
}

// platform creates tasks, and tells the account's credits.
type platform interface {
	Create(ctx context.Context, api string, body []byte) submission.Answer
	Credits(ctx context.Context) (float64, error)
}

// registrar writes a created task's record, pending, so that the
// reconciler polls it should its callback never come (task.Store's
// Create: a record the callback wrote first is left as it is).
type registrar interface {
	Create(ctx context.Context, t task.Task) (task.Task, bool, error)
}

// sender hands a submission to the submitter again, after delay.
type sender interface {
	Send(ctx context.Context, id string, delay time.Duration) error
}

// announcer puts a submission's event.
type announcer interface {
	Announce(ctx context.Context, s submission.Submission) error
}

// Submitter sends each submission to the platform once.
type Submitter struct {
	Submissions store
	Pace        pacer
	Account     credits
	Platform    platform
	Tasks       registrar
	Queue       sender
	Events      announcer // nil: no events
	// CallbackURL is the callback function's URL with its token (as it is
	// now: the token may be rotated): each create call gets it with the
	// submission's labels and id added. An error waits for a retry.
	CallbackURL func(ctx context.Context) (string, error)
	Rate        int           // create calls in any Window (SUBMIT_RATE)
	Window      time.Duration // SUBMIT_WINDOW
	MaxWait     time.Duration // an accepted submission still waiting this long fails (SUBMIT_MAX_WAIT)
	TTL         time.Duration // of the task records it writes (RECORD_TTL)
	Metrics     *metrics.Writer
	Logger      *slog.Logger
	Now         func() time.Time
	// Group runs a batch's submissions (nil: each on a goroutine).
	Group run.NewGroup
	// Owner names each create attempt, and Jitter draws a random duration
	// in [0, n) to spread waits; nil: at random. The explorer sets both,
	// so that an execution replays.
	Owner  func() string
	Jitter func(n time.Duration) time.Duration
}

// account names the platform account the submissions are sent with: a
// stack has one API key, whose rotation keeps the account.
const account = "kie"

// A claim older than claimTimeout is a dead submitter's (a create call
// gives up after 10 s), and the credit endpoint is asked at most once a
// creditCheck.
const (
	claimTimeout = 2 * time.Minute
	creditCheck  = time.Minute
)

// Handle sends the batch's submissions, reporting only the failed
// messages, whose submissions SQS delivers again.
func (s *Submitter) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var mu sync.Mutex
	var resp events.SQSEventResponse
	g := s.Group.Or()
	for _, rec := range ev.Records {
		g.Go(func() {
			if err := s.submit(ctx, rec.Body); err != nil {
				s.Logger.ErrorContext(ctx, "submission will be retried", "messageId", rec.MessageId, "error", err.Error())
				mu.Lock()
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
				mu.Unlock()
			}
		})
	}
	g.Wait()
	return resp, nil
}

// Submission outcomes, the Outcome dimension of the Submissions metric.
const (
	outcomeSubmitted = "submitted"
	outcomeRefused   = "submit_failed"
	outcomeUnknown   = "unknown"
	outcomeWaiting   = "waiting" // paced, paused or backing off: sent again with a delay
	outcomeDone      = "done"    // no longer accepted, or held by another submitter
)

func (s *Submitter) submit(ctx context.Context, body string) error {
	var msg schema.SubmitMessage
	if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.SubmissionID == "" {
		return fmt.Errorf("message body is not {\"submissionId\":\"…\"}: %.64q", body)
	}
	outcome, err := s.send(ctx, msg.SubmissionID)
	if err == nil {
		s.Metrics.Emit(outcome, metrics.Metric{Name: "Submissions", Unit: metrics.Count, Value: 1})
	}
	return err
}

// send makes one attempt at submission id, and says what became of it.
func (s *Submitter) send(ctx context.Context, id string) (string, error) {
	now := s.Now().UTC()
	sub, found, err := s.Submissions.Get(ctx, id)
	switch {
	case err != nil:
		return "", err
	case !found || sub.Status != submission.Accepted:
		return outcomeDone, nil // sent once already, whatever this message is
	case sub.ClaimedBy != "":
		return outcomeDone, s.abandoned(ctx, sub, now)
	case now.Sub(sub.CreatedAt) > s.MaxWait:
		return outcomeRefused, s.end(ctx, submission.Expire(sub, "still waiting after SUBMIT_MAX_WAIT ("+s.MaxWait.String()+")", now))
	}
	wait, slot, err := s.turn(ctx, now)
	if err == nil && wait > 0 && wait < time.Second {
		// SQS delays in whole seconds: a turn due within one is waited for
		// here, once, rather than a second or more in the queue.
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
		wait, slot, err = s.turn(ctx, s.Now().UTC())
	}
	if err != nil || wait > 0 {
		return outcomeWaiting, s.later(ctx, id, wait, err)
	}
	// The slot is dated again by the call's answer, or, when no call is
	// made (another delivery claimed it first), as this attempt ends:
	// left at its latest, it would stand idle a bound and a window.
	dated := false
	defer func() {
		if !dated {
			s.redate(ctx, slot, s.Now().UTC())
		}
	}()
	owner := s.newOwner()
	switch current, err := s.Submissions.Update(ctx, submission.Claim(id, owner, now)); {
	case errors.Is(err, submission.ErrStale) && current.ClaimedBy != owner:
		return outcomeDone, nil // another delivery claimed it first
	case errors.Is(err, submission.ErrStale):
		// Claimed all the same: the SDK sent the claim again after its
		// first answer was lost, and the second found the first's effect.
	case err != nil:
		// The claim may be written with its answer lost. No call went out
		// under it, so it is given back: left, it would make the
		// submission unknown once it looked abandoned.
		s.giveBack(ctx, id, owner, now)
		return "", err
	}
	callback, err := s.CallbackURL(ctx)
	if err != nil {
		return outcomeWaiting, s.release(ctx, sub, owner, submission.Answer{}, submission.Backoff(sub.Attempts+1, 0, s.Window, s.jitter), now)
	}
	body, err := createBody(sub, callback)
	if err != nil {
		return outcomeRefused, s.end(ctx, submission.MarkRefused(id, owner, 400, err.Error(), now))
	}
	a := s.Platform.Create(ctx, sub.API, body)
	now = s.Now().UTC()
	s.redate(ctx, slot, now)
	dated = true
	switch submission.Judge(a) {
	case submission.Created:
		return outcomeSubmitted, s.created(ctx, sub, owner, a.TaskID, now)
	case submission.Refused:
		return outcomeRefused, s.end(ctx, submission.MarkRefused(id, owner, a.Code, a.Msg, now))
	case submission.Ambiguous:
		why := fmt.Sprintf("the create call went out and no usable answer came (code %d): %v", a.Code, a.Err)
		_, err := s.Submissions.Update(context.WithoutCancel(ctx), submission.MarkUnknown(id, owner, why, now))
		s.Logger.WarnContext(ctx, "create call without an answer: its task's callback will tell", "submissionId", id, "error", why)
		return outcomeUnknown, ignoreStale(err)
	case submission.Pause:
		if err := s.Account.Pause(ctx, account, now); err != nil {
			return "", err
		}
		s.Metrics.Emit("paused", metrics.Metric{Name: "CreditsExhausted", Unit: metrics.Count, Value: 1})
		s.Logger.ErrorContext(ctx, "the platform account has no credits: submissions wait until it has", "submissionId", id)
		return outcomeWaiting, s.release(ctx, sub, owner, a, creditCheck, now)
	}
	return outcomeWaiting, s.release(ctx, sub, owner, a, submission.Backoff(sub.Attempts+1, a.Code, s.Window, s.jitter), now)
}

// turn is how long a submission must wait before its create call: while
// the account has no credits (the credit endpoint is asked once a minute,
// by one submitter), and while the account's window is full.
func (s *Submitter) turn(ctx context.Context, now time.Time) (time.Duration, time.Time, error) {
	c, err := s.Account.Credits(ctx, account)
	if err != nil {
		return 0, time.Time{}, err
	}
	if c.Paused() {
		if now.Sub(c.CheckedAt) < creditCheck {
			return creditCheck - now.Sub(c.CheckedAt), time.Time{}, nil
		}
		mine, err := s.Account.ClaimCheck(ctx, account, c, now)
		if err != nil || !mine {
			return creditCheck, time.Time{}, err
		}
		if _, err := s.Platform.Credits(ctx); err != nil {
			return creditCheck, time.Time{}, nil // none yet, or the endpoint failed: ask again in a minute
		}
		if err := s.Account.Resume(ctx, account); err != nil {
			return 0, time.Time{}, err
		}
		s.Logger.InfoContext(ctx, "the platform account has credits again: submissions go on")
	}
	// The slot is dated when it is taken, not when this attempt began, and
	// held as if its call reached the platform as late as it can.
	return s.Pace.TakeSlot(ctx, account, s.Rate, s.Window, callBound, s.Now)
}

// callBound is the latest a create call reaches the platform after its
// slot is taken: the claim, then the call (kieapi's 10 s timeout, and one
// more try when a rotated key was refused), with room to spare.
const callBound = 25 * time.Second

// redate dates the slot taken at slot by the answer of its call, at now:
// the platform counted the call in between, and a slot dated by when it
// was taken would leave the window before the platform's. (Dated so, the
// platform's log of a local run held 19 calls of 18 in a window of 1 s,
// with the slot held even a tenth longer.) Should it fail, the slot keeps
// its first date, and the pace is only a little looser.
func (s *Submitter) redate(ctx context.Context, slot, now time.Time) {
	if err := s.Pace.Redate(context.WithoutCancel(ctx), account, slot, now); err != nil {
		s.Logger.WarnContext(ctx, "the create call's slot keeps the time it was taken", "error", err)
	}
}

// later sends submission id again after wait, and drops this message:
// waiting spends none of its deliveries. The submission is touched, so
// that the reconciler knows its message is on its way.
func (s *Submitter) later(ctx context.Context, id string, wait time.Duration, err error) error {
	if err != nil {
		return err
	}
	if err := s.Queue.Send(ctx, id, spread(wait, s.Window, s.jitter)); err != nil {
		return err
	}
	_, err = s.Submissions.Update(ctx, submission.Touch(id, s.Now().UTC()))
	return ignoreStale(err)
}

// spread is the delay a submission waiting wait is sent again with: in
// whole seconds, SQS's unit, rounded up, so that it never comes back
// before its turn (rounded to nearest, a wait under half a second came
// back at once, again and again); and a random part of a window more, so
// that a backlog's submissions do not all come back at the moment a slot
// frees, each to find it taken.
func spread(wait, window time.Duration, jitter func(time.Duration) time.Duration) time.Duration {
	delay := wait.Truncate(time.Second)
	if delay < wait {
		delay += time.Second
	}
	if window > 0 {
		delay += jitter(window)
	}
	return delay
}

// jitter is a random duration in [0, n).
func (s *Submitter) jitter(n time.Duration) time.Duration {
	if s.Jitter != nil {
		return s.Jitter(n)
	}
	return mrand.N(n)
}

// release gives back the claim of a call that can pass later, and sends
// the submission again after wait.
func (s *Submitter) release(ctx context.Context, sub submission.Submission, owner string, a submission.Answer, wait time.Duration, now time.Time) error {
	current, err := s.Submissions.Update(ctx, submission.Release(sub.ID, owner, a.Code, a.Msg, now))
	// Stale and accepted with no claim: the SDK sent the release again,
	// and the second found the first's effect. Any other stale record
	// moved on without this message.
	released := err == nil || errors.Is(err, submission.ErrStale) && current.Status == submission.Accepted && current.ClaimedBy == ""
	if !released {
		return ignoreStale(err)
	}
	return s.later(ctx, sub.ID, wait, nil)
}

// giveBack drops owner's claim, if it was written, on a submission whose
// create call was never sent. Should that fail too, the claim is
// abandoned in time, and the submission ends unknown: never sent twice.
func (s *Submitter) giveBack(ctx context.Context, id, owner string, now time.Time) {
	_, err := s.Submissions.Update(context.WithoutCancel(ctx), submission.Release(id, owner, 0, "", now))
	if err != nil && !errors.Is(err, submission.ErrStale) {
		s.Logger.WarnContext(ctx, "a claim whose answer was lost is not given back: it is abandoned in time", "submissionId", id, "error", err.Error())
	}
}

// created records the task the platform made: its pending record first,
// so that the reconciler polls it should its callback never come (the
// callback, whose URL carries the submission's id and labels, writes the
// same record if it comes first), then the submission.
func (s *Submitter) created(ctx context.Context, sub submission.Submission, owner, taskID string, now time.Time) error {
	ctx = context.WithoutCancel(ctx)
	t := task.NewPending(taskID, sub.API, sub.Labels, now, s.TTL)
	t.SubmissionID = sub.ID
	if _, _, err := s.Tasks.Create(ctx, t); err != nil {
		s.Logger.WarnContext(ctx, "the created task's pending record was not written; its callback writes it", "submissionId", sub.ID, "taskId", taskID, "error", err.Error())
	}
	return s.end(ctx, submission.MarkSubmitted(sub.ID, owner, taskID, now))
}

// abandoned makes unknown a submission whose claim a dead submitter left;
// a live one's is left alone.
func (s *Submitter) abandoned(ctx context.Context, sub submission.Submission, now time.Time) error {
	if now.Sub(sub.ClaimedAt) < claimTimeout {
		return nil
	}
	_, err := s.Submissions.Update(ctx, submission.Abandon(sub, now))
	return ignoreStale(err)
}

// end makes c, which ends a submission, and announces it.
func (s *Submitter) end(ctx context.Context, c submission.Change) error {
	ended, err := s.Submissions.Update(context.WithoutCancel(ctx), c)
	// Stale, and already the end c makes, its event untold: the SDK sent
	// c again and the second found the first's effect (or a callback
	// linked the same task first). It is told now, not at the sweep.
	if errors.Is(err, submission.ErrStale) && ended.Status == c.To && ended.Unannounced() {
		err = nil
	}
	if err != nil {
		return ignoreStale(err)
	}
	if s.Events == nil {
		return nil
	}
	if err := s.Events.Announce(ctx, ended); err != nil {
		s.Logger.WarnContext(ctx, "submission event not put", "submissionId", ended.ID, "error", err.Error())
	}
	return nil
}

// ignoreStale is err, unless another submitter or a callback moved the
// submission first: then there is nothing left to do.
func ignoreStale(err error) error {
	if errors.Is(err, submission.ErrStale) {
		return nil
	}
	return err
}

// createBody is the platform's create body of sub: its input with
// callBackUrl, the callback URL with the submission's labels and id.
func createBody(sub submission.Submission, callback string) ([]byte, error) {
	u, err := url.Parse(callback)
	if err != nil {
		return nil, fmt.Errorf("CALLBACK_URL: %w", err)
	}
	q := u.Query()
	for name, value := range sub.Labels {
		q.Set(name, value)
	}
	q.Set(kie.SubmissionParameter, sub.ID)
	u.RawQuery = q.Encode()
	var input map[string]json.RawMessage
	if err := json.Unmarshal(sub.Input, &input); err != nil {
		return nil, fmt.Errorf("input: %w", err)
	}
	input["callBackUrl"], _ = json.Marshal(u.String())
	return json.Marshal(input)
}

// newOwner names one create attempt.
func (s *Submitter) newOwner() string {
	if s.Owner != nil {
		return s.Owner()
	}
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
