// Package reconciler is the reconciler function's passes: it polls the
// platform for pending tasks whose callback never came, queues again the
// records stuck before the queue, gives up the copies whose message
// reached the dead-letter queue, counts the copies that wait too long,
// and puts the events a function died before putting. Its command,
// functions/reconciler, only wires it to AWS; the passes live here so
// that one test can run them beside the copier and the recovery commands.
package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// openTasks lists and claims tasks that still need work.
type openTasks interface {
	Open(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error)
	Update(ctx context.Context, c task.Change) (task.Task, error)
}

// recorder says what became of a task.
type recorder interface {
	Record(ctx context.Context, api, taskID string) (kie.Record, error)
}

// receiver takes what the platform said through the callback's path.
type receiver interface {
	Receive(ctx context.Context, cb task.Callback) (task.Outcome, error)
}

// deadLetters names the tasks whose copy message is in the dead-letter
// queue, with the newest queueing of each, reading up to scan messages
// and leaving them there.
type deadLetters interface {
	Letters(ctx context.Context, scan int) ([]schema.CopyMessage, error)
}

// leftovers removes what the copies of a task given up left in the
// bucket under its prefix: its open multipart uploads and the objects its
// attempts stored, which no record will name.
type leftovers interface {
	Clear(ctx context.Context, prefix string) error
}

// unnotified lists the ended tasks whose event the bus has not accepted.
type unnotified interface {
	Unnotified(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error)
}

// Reconciler closes the gaps callbacks leave: tasks whose callback never
// came, records stuck before the queue, copies whose deliveries are used
// up, copies waiting too long.
type Reconciler struct {
	Tasks interface {
		openTasks
		unnotified
		Get(ctx context.Context, id string) (task.Task, bool, error)
	}
	// DeadLetters is the copy dead-letter queue; nil gives up nothing.
	DeadLetters deadLetters
	Leftovers   leftovers // cleans up after a given-up task
	Prefix      string    // of every object key (OBJECT_PREFIX)
	Platform    recorder  // nil when no API key is configured: no polling
	Receiver    receiver
	Queue       task.Queue // sends a copy message again
	Submissions Submissions
	Notifier    task.Notifier // nil when no bus is configured: no events
	Metrics     *metrics.Writer
	Logger      *slog.Logger
	Now         func() time.Time

	PendingAfter time.Duration // a pending task is polled when this old, and at most this often (at least 30 s)
	StuckAfter   time.Duration // a queued record whose copy never started gets a message again when this old
	QueuedAlert  time.Duration // a queued record this old is counted and logged
	Retention    time.Duration // the platform keeps results this long
	Limit        int32         // tasks of each kind handled per run
	NotifyAfter  time.Duration // an ended task still unannounced this long after its change is announced by the sweep
}

// minPollInterval is the platform's documented polling interval.
const minPollInterval = 30 * time.Second

// Report is what one run did.
type Report struct {
	Polled, Finished, Expired, Resent, StaleQueued, Notified, GivenUp int
	SubmissionsResent, SubmitUnknown                                  int
	RateLimited                                                       bool
}

// passBudget is the most each cheap pass may take, so that one slow
// dependency cannot starve the others; polling the platform, the slow pass,
// runs last with what remains but runMargin, so that the run's metrics and
// log are always written before Lambda's deadline.
const (
	passBudget = 10 * time.Second
	runMargin  = 5 * time.Second
)

// Run does one bounded pass of each kind, the cheap ones first, each with a
// budget of its own. Overlapping runs are safe: each task is claimed with a
// conditional write on its updatedAt before anything is done with it, so
// only one run acts on it.
func (r *Reconciler) Run(ctx context.Context) (Report, error) {
	now := r.Now().UTC()
	var rep Report
	var errs []error
	for _, pass := range []func(context.Context, time.Time, *Report) error{r.resend, r.deadLettered, r.queued, r.sweep, r.submissions} {
		passCtx, cancel := context.WithTimeout(ctx, passBudget)
		errs = append(errs, pass(passCtx, now, &rep))
		cancel()
	}
	pollCtx, cancel := ctx, context.CancelFunc(func() {})
	if deadline, ok := ctx.Deadline(); ok {
		pollCtx, cancel = context.WithDeadline(ctx, deadline.Add(-runMargin))
	}
	errs = append(errs, r.pending(pollCtx, now, &rep))
	cancel()
	r.Metrics.Emit("reconciled", metrics.NonZero(
		metrics.Metric{Name: "PendingPolled", Unit: metrics.Count, Value: int64(rep.Polled)},
		metrics.Metric{Name: "PendingFinished", Unit: metrics.Count, Value: int64(rep.Finished)},
		metrics.Metric{Name: "PendingExpired", Unit: metrics.Count, Value: int64(rep.Expired)},
		metrics.Metric{Name: "CopiesResent", Unit: metrics.Count, Value: int64(rep.Resent)},
		metrics.Metric{Name: "StaleQueued", Unit: metrics.Count, Value: int64(rep.StaleQueued)},
		metrics.Metric{Name: "EventsSwept", Unit: metrics.Count, Value: int64(rep.Notified)},
		metrics.Metric{Name: "CopiesGivenUp", Unit: metrics.Count, Value: int64(rep.GivenUp)},
		metrics.Metric{Name: "SubmissionsResent", Unit: metrics.Count, Value: int64(rep.SubmissionsResent)},
		metrics.Metric{Name: "SubmitUnknown", Unit: metrics.Count, Value: int64(rep.SubmitUnknown)})...)
	return rep, errors.Join(errs...)
}

// Handle runs once per scheduled event. A failed run is reported to Lambda
// (and its Errors metric); the next minute's run picks up where it left.
func (r *Reconciler) Handle(ctx context.Context, _ events.EventBridgeEvent) error {
	rep, err := r.Run(ctx)
	r.Logger.InfoContext(ctx, "reconciled", "polled", rep.Polled, "finished", rep.Finished, "expired", rep.Expired,
		"resent", rep.Resent, "staleQueued", rep.StaleQueued, "givenUp", rep.GivenUp, "notified", rep.Notified, "rateLimited", rep.RateLimited)
	return err
}

// claim moves a task's updatedAt to now if nobody else did since it was
// listed; false means another run has it.
func (r *Reconciler) claim(ctx context.Context, t task.Task, now time.Time) (bool, error) {
	_, err := r.Tasks.Update(ctx, task.Claim(t, now))
	if errors.Is(err, task.ErrStale) {
		return false, nil
	}
	return err == nil, err
}

// pending expires the pending tasks past the platform's retention, and
// polls the others when an API key is configured.
func (r *Reconciler) pending(ctx context.Context, now time.Time, rep *Report) error {
	tasks, err := r.Tasks.Open(ctx, task.StatusPending, now.Add(-max(r.PendingAfter, minPollInterval)), r.Limit)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if now.Sub(t.SubmittedAt) > r.Retention {
			if err := r.expire(ctx, t, now); err != nil {
				return err
			}
			rep.Expired++
			continue
		}
		if r.Platform == nil {
			continue
		}
		claimed, err := r.claim(ctx, t, now)
		if err != nil {
			return err
		}
		if !claimed {
			continue
		}
		if err := r.linkPending(ctx, t, now); err != nil {
			return err
		}
		rec, err := r.Platform.Record(ctx, t.API, t.ID)
		if errors.Is(err, kieapi.ErrRateLimited) {
			rep.RateLimited = true // back off until the next run
			return nil
		}
		rep.Polled++
		if err != nil {
			r.Logger.WarnContext(ctx, "polling a pending task failed", "taskId", t.ID, "api", t.API, "error", err.Error())
			continue
		}
		if rec.State == kie.Running {
			continue
		}
		cb := task.Callback{TaskID: t.ID, Code: rec.Code, Msg: rec.Msg, API: t.API, Sources: rec.Sources, Polled: true}
		if rec.State == kie.Succeeded {
			cb.Code, cb.Msg = task.CodeSuccess, "result found by polling"
		}
		if _, err := r.Receiver.Receive(ctx, cb); err != nil {
			return err
		}
		rep.Finished++
	}
	return nil
}

// expire fails a pending task the platform can no longer have results for.
func (r *Reconciler) expire(ctx context.Context, t task.Task, now time.Time) error {
	failed, err := r.Tasks.Update(ctx, task.Expire(t, "no callback and no result within the platform's retention of "+r.Retention.String(), now))
	if errors.Is(err, task.ErrStale) {
		return nil
	}
	if err != nil {
		return err
	}
	r.announce(ctx, failed)
	return nil
}

// announce puts the event of a task this run ended. A failure is only
// logged: the task has ended for good, and the sweep puts its event later.
func (r *Reconciler) announce(ctx context.Context, t task.Task) {
	if r.Notifier == nil {
		return
	}
	if err := r.Notifier.Notify(ctx, t); err != nil {
		r.Logger.WarnContext(ctx, "task event not put", "taskId", t.ID, "error", err.Error())
	}
}

// sweep puts the events that a function died (or failed) before putting:
// every ended task still in the open index, unannounced, NotifyAfter
// after its change. A consumer may then see an event twice; it dedupes on
// the task id and status.
func (r *Reconciler) sweep(ctx context.Context, now time.Time, rep *Report) error {
	if r.Notifier == nil {
		return nil
	}
	var errs []error
	for _, status := range []task.Status{task.StatusStored, task.StatusFailed, task.StatusCopyFailed} {
		tasks, err := r.Tasks.Unnotified(ctx, status, now.Add(-r.NotifyAfter), r.Limit)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, t := range tasks {
			if err := r.Notifier.Notify(ctx, t); err != nil {
				errs = append(errs, err)
				continue
			}
			rep.Notified++
		}
	}
	return errors.Join(errs...)
}

// resend sends a copy message again for the queued tasks whose copy never
// started StuckAfter after they were queued: their first message may
// never have been sent (the callback's send failed and the platform gave
// up calling, or a polled success's send failed). Each is marked first,
// with a condition, so that overlapping runs send it once; a task that
// only waits in a backlog may get a twin, and is still copied once. A
// mark whose message could not be sent is taken back; one a crash left
// is taken again after QueuedAlert, so that a task in a long backlog is
// not sent again every run.
func (r *Reconciler) resend(ctx context.Context, now time.Time, rep *Report) error {
	tasks, err := r.Tasks.Open(ctx, task.StatusQueued, now.Add(-r.StuckAfter), r.Limit)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.Started() || (!t.ResentAt.IsZero() && now.Sub(t.ResentAt) < r.QueuedAlert) {
			continue
		}
		_, err := r.Tasks.Update(ctx, task.MarkResent(t, now))
		if errors.Is(err, task.ErrStale) {
			continue // a copy started, or another run sent it
		}
		if err != nil {
			return err
		}
		if err := r.Queue.Enqueue(ctx, t.ID, t.Generation); err != nil {
			if _, undoErr := r.Tasks.Update(context.WithoutCancel(ctx), task.UnmarkResent(t, now)); undoErr != nil && !errors.Is(undoErr, task.ErrStale) {
				r.Logger.WarnContext(ctx, "taking back a resend failed; the task is sent again later", "taskId", t.ID, "error", undoErr.Error())
			}
			return err
		}
		r.Logger.InfoContext(ctx, "sent the copy message of a task again: its copy never started", "taskId", t.ID, "queuedSince", t.UpdatedAt.Format(time.RFC3339))
		rep.Resent++
	}
	return nil
}

// queued counts the copies waiting longer than QueuedAlert, so that a slow
// or failing copier shows before the dead-letter queue fills. Waiting is
// no reason to give up: in a backlog a message waits longer than all its
// retries would take.
func (r *Reconciler) queued(ctx context.Context, now time.Time, rep *Report) error {
	tasks, err := r.Tasks.Open(ctx, task.StatusQueued, now.Add(-r.QueuedAlert), r.Limit)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		r.Logger.WarnContext(ctx, "task queued for too long", "taskId", t.ID, "since", t.UpdatedAt.Format(time.RFC3339))
		rep.StaleQueued++
	}
	return nil
}

// deadLetterScan is how many dead-letter messages one run reads per task
// it may give up: messages of tasks already ended (kept for redrive) are
// passed over, so that they never hide a newer one.
const deadLetterScan = 10

// deadLettered gives up the tasks whose message is in the dead-letter
// queue, the record of deliveries really used up, whatever the task
// record counted: a delivery that failed before it could count itself
// (a read or a lease that failed, a copier that could not start, a
// throttled invocation) is in the queue's count all the same. Only a
// letter of the task's current queueing counts: one of a queueing a
// requeue has ended since is spent.
func (r *Reconciler) deadLettered(ctx context.Context, now time.Time, rep *Report) error {
	if r.DeadLetters == nil {
		return nil
	}
	letters, err := r.DeadLetters.Letters(ctx, deadLetterScan*int(r.Limit))
	errs := []error{err}
	for _, letter := range letters {
		t, found, err := r.Tasks.Get(ctx, letter.TaskID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// An ended task's message waits for redrive; a live lease is a
		// copy of another message of the task, which may yet succeed.
		if !found || t.Status != task.StatusQueued || letter.Generation != t.Generation || t.Lease.Live(now) {
			continue
		}
		gaveUp, err := r.giveUp(ctx, t, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if gaveUp {
			rep.GivenUp++
		}
	}
	return errors.Join(errs...)
}

// retriesExhausted is the error of a task whose copy message used every
// delivery: without a record of it, the TTL would delete a task that only
// the dead-letter queue remembers.
const retriesExhausted = "copy retries exhausted: the message is in the dead-letter queue; fix the cause, then go run ./infra/ops redrive"

// giveUpLease is how long the reconciler holds a task it gives up beyond
// its run's deadline: should it die midway, the next run after that
// takes the task again and finishes.
const giveUpLease = 5 * time.Second

// giveUp marks a queued task whose copy message went to the dead-letter
// queue as copy_failed, and announces it; false means a copier took it
// first. It seizes the task before anything else, so that no copier,
// requeue or redrive can start on it, then clears what its copies left
// under its prefix (a copy_failed record names nothing), then marks it.
func (r *Reconciler) giveUp(ctx context.Context, t task.Task, now time.Time) (bool, error) {
	// The lease outlasts every call this give-up can make: they all end
	// with ctx. It is counted from the clock as it is now, not from the
	// run's start.
	until := r.Now().Add(15 * time.Minute)
	if deadline, ok := ctx.Deadline(); ok {
		until = r.Now().Add(time.Until(deadline))
	}
	l := task.Lease{Owner: "reconciler/" + now.Format(time.RFC3339Nano), Until: until.Add(giveUpLease)}
	_, err := r.Tasks.Update(ctx, task.Seize(t.ID, t.Generation, l, now))
	if errors.Is(err, task.ErrStale) {
		return false, nil // a copier leased or finished it meanwhile
	}
	if err != nil {
		return false, err
	}
	if err := r.Leftovers.Clear(ctx, r.Prefix+t.ID+"/"); err != nil {
		return false, fmt.Errorf("give up task %s: %w", t.ID, err)
	}
	failed, err := r.Tasks.Update(ctx, task.MarkCopyFailed(t.ID, l.Owner, retriesExhausted, now))
	if err != nil {
		return false, fmt.Errorf("give up task %s: %w", t.ID, err)
	}
	r.Logger.WarnContext(ctx, "copy given up", "taskId", t.ID, "queuedSince", t.UpdatedAt.Format(time.RFC3339), "receives", t.Receives)
	r.announce(ctx, failed)
	return true, nil
}
