// Package copier is the copier function's logic: the SQS batch handler,
// the lease on a task, its record read again, the copies of its sources
// at once, and the verdicts. Its command, functions/copier, only wires it
// to AWS; the logic lives here so that one test can run it beside the
// reconciler and the recovery commands.
package copier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/retry"
	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// taskStore reads a task and makes the copy's changes (task.TakeLease,
// task.MarkStored and the others); every one but the lease and an
// operator's requeue is the lease owner's.
type taskStore interface {
	Get(ctx context.Context, id string) (task.Task, bool, error)
	Update(ctx context.Context, c task.Change) (task.Task, error)
}

// opener opens a download of a source URL.
type opener interface {
	Open(ctx context.Context, rawURL string) (*download.Download, error)
}

// putter streams an object into the bucket (objects.PutInput says how).
// AbortUnder ends every upload dead copiers left open under a prefix;
// Clear removes everything under a task's prefix, once no record will
// name it.
type putter interface {
	Put(ctx context.Context, in objects.PutInput) error
	AbortUnder(ctx context.Context, prefix string) error
	Clear(ctx context.Context, prefix string) error
}

// sourceConcurrency bounds the sources of one task copied at once (a
// Midjourney task has four).
const sourceConcurrency = 4

// recorder says what became of a task, from the platform's own records.
type recorder interface {
	Record(ctx context.Context, api, taskID string) (kie.Record, error)
}

// Copier copies every result of a task into the bucket.
type Copier struct {
	Store   taskStore
	Sources opener
	Objects putter
	// Verifier, when set, is asked before any download: only URLs the
	// platform itself reports for the task are copied (VERIFY_WITH_PLATFORM).
	Verifier recorder
	// Notifier, when set, announces every task the copier ends (EVENT_BUS_NAME).
	Notifier task.Notifier
	Prefix   string
	Metrics  *metrics.Writer
	Logger   *slog.Logger
	Now      func() time.Time
	// Sleep waits d, or until ctx ends (nil: in real time); Group runs the
	// sources of a task at once (nil: on goroutines); Owner names a copy
	// attempt for its messages (nil: a random name and their ids). The
	// explorer sets all three, to run a copy step by step.
	Sleep func(ctx context.Context, d time.Duration) error
	Group run.NewGroup
	Owner func(messageIDs []string) string
}

// Copy outcomes, the Outcome dimension of the Copies metric.
const (
	outcomeStored     = "stored"
	outcomeCopyFailed = "copy_failed"
	outcomeSkipped    = "skipped"  // already finished, or nothing to copy
	outcomeRetried    = "retried"  // returned to the queue
	outcomeNotified   = "notified" // already finished; only its event was missing
	outcomeLeased     = "leased"   // another delivery of the same message holds the task; returned for later
	// Another message of the task (a repeat callback's) holds its lease:
	// that message carries the copy, and is retried should it fail.
	outcomeRedundant = "redundant"
	// The task has no record: its callback sent the message, then failed
	// to write the record, and was not answered 200.
	outcomeUnrecorded = "unrecorded"
	// The message is of a queueing older than the record's: a requeue
	// began a new one since, whose own message carries the copy.
	outcomeSpent = "spent"
)

// Delivery is what SQS says of the messages of one task in a batch.
type Delivery struct {
	MessageIDs []string  // SQS's ids of the messages
	Receives   int       // the most deliveries any of them has had
	SentAt     time.Time // when the earliest was sent; zero for just now
	Generation int       // the newest queueing any of them was sent for
	Requeue    bool      // one is an operator's request to begin that queueing
}

// recordGrace is how long past task.AnswerBudget the record of a message
// may still appear: a put that its callback gave up on can still land.
const recordGrace = 5 * time.Second

// Copy copies the task named id for its messages d. It returns nil when
// the task is done with (stored, failed for good, or never recorded), and
// an error when the messages must be retried. Every call adds to the
// Copies metric by outcome; a stored task adds its bytes to BytesCopied
// and its duration to CopyLatency.
func (c *Copier) Copy(ctx context.Context, id string, d Delivery) error {
	start := c.Now()
	outcome, bytes, err := c.copy(ctx, id, d)
	switch {
	case errors.Is(err, ErrLeased):
		outcome = outcomeLeased
	case err != nil:
		outcome = outcomeRetried
	}
	copies := metrics.Metric{Name: "Copies", Unit: metrics.Count, Value: 1}
	if outcome != outcomeStored {
		c.Metrics.Emit(outcome, copies)
		return err
	}
	c.Metrics.Emit(outcome, copies,
		metrics.Metric{Name: "BytesCopied", Unit: metrics.Bytes, Value: bytes},
		metrics.Metric{Name: "CopyLatency", Unit: metrics.Milliseconds, Value: c.Now().Sub(start).Milliseconds()})
	return nil
}

func (c *Copier) copy(ctx context.Context, id string, d Delivery) (outcome string, bytes int64, err error) {
	t, found, err := c.load(ctx, id, d.SentAt)
	if err != nil {
		return "", 0, fmt.Errorf("load task %s: %w", id, err)
	}
	if !found {
		c.Logger.WarnContext(ctx, "dropped a message whose task has no record: its callback was not answered 200, and the platform calls again", "taskId", id)
		return outcomeUnrecorded, 0, nil
	}
	if d.Generation < t.Generation {
		return outcomeSpent, 0, nil
	}
	var lease task.Lease
	switch {
	case t.Status == task.StatusCopyFailed && d.Requeue && d.Generation == t.Generation+1:
		lease, err = c.requeue(ctx, t, d)
	case t.Status == task.StatusQueued:
		lease, err = c.lease(ctx, t, d)
	case task.Final(t.Status):
		// A redelivery or a duplicate message; if the copier that ended the
		// task died before its event, this one puts it.
		if c.Notifier == nil || !t.NotifiedAt.IsZero() {
			return outcomeSkipped, 0, nil
		}
		if err := c.Notifier.Notify(ctx, t); err != nil {
			return "", 0, err
		}
		return outcomeNotified, 0, nil
	default:
		c.Logger.WarnContext(ctx, "nothing to copy", "taskId", id, "status", string(t.Status))
		return outcomeSkipped, 0, nil
	}
	var held *leasedError
	if errors.As(err, &held) && !held.carries(d.MessageIDs) {
		c.Logger.InfoContext(ctx, "dropped a message whose task another message is being copied for", "taskId", id)
		return outcomeRedundant, 0, nil
	}
	if err != nil {
		return "", 0, err
	}
	outcome, bytes, err = c.copyLeased(ctx, t, lease.Owner, d.Requeue)
	if err != nil {
		// Another delivery may try at once; the uploads this one recorded
		// are aborted (or were never opened), which it will see to.
		if _, relErr := c.Store.Update(context.WithoutCancel(ctx), task.ReleaseLease(id, lease.Owner)); relErr != nil && !errors.Is(relErr, task.ErrStale) {
			c.Logger.WarnContext(ctx, "releasing the lease failed; it expires by itself", "taskId", id, "error", relErr.Error())
		}
	}
	return outcome, bytes, err
}

// load reads the task's record. A callback sends its message while it
// writes the record, or moves a pending or failed record to queued, so a
// copier may read first: a record missing, or still
// task.Queueable, is read again until no callback that sent at sentAt can
// change it.
func (c *Copier) load(ctx context.Context, id string, sentAt time.Time) (task.Task, bool, error) {
	if sentAt.IsZero() {
		sentAt = c.Now()
	}
	// How long is left is the copier's clock's to say (tests fix it); the
	// waits are counted off it.
	left := sentAt.Add(task.AnswerBudget + recordGrace).Sub(c.Now())
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		t, found, err := c.Store.Get(ctx, id)
		if err != nil || (found && !task.Queueable(t.Status)) || left <= 0 {
			return t, found, err
		}
		wait = min(wait, left)
		if err := c.sleep(ctx, wait); err != nil {
			return task.Task{}, false, err
		}
		left -= wait
	}
}

func (c *Copier) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
		return nil
	}
}

// ErrLeased is a delivery that found its task being copied by another: no
// failure, its message simply comes back once that copy has ended.
var ErrLeased = errors.New("is being copied by another delivery")

// leaseMargin outlasts the holder's invocation by the clock skew that
// copiers on different hosts may have.
const leaseMargin = 5 * time.Second

// lease claims t for this copy until leaseMargin after its invocation's
// deadline: the holder's last writes (stored, aborts, release, notified)
// run after the copy's shortened deadline, up to Lambda's. A live
// lease of another delivery is an error: the message comes back later,
// when that copy has ended one way or the other.
func (c *Copier) lease(ctx context.Context, t task.Task, d Delivery) (task.Lease, error) {
	now := c.Now()
	if t.Lease.Live(now) {
		return task.Lease{}, &leasedError{task: t.ID, holder: t.Lease.Owner}
	}
	l := c.newLease(ctx, d, now)
	_, err := c.Store.Update(ctx, task.TakeLease(t.ID, l, d.Receives, now))
	var stale *task.StaleError
	if errors.As(err, &stale) {
		switch held := stale.Current.Lease; {
		case held.Owner == l.Owner:
			return l, nil // the SDK sent it again, its answer lost, and the second found the first's lease
		case held.Live(now):
			return task.Lease{}, &leasedError{task: t.ID, holder: held.Owner}
		}
	}
	if errors.Is(err, task.ErrStale) {
		return task.Lease{}, fmt.Errorf("task %s %w (it took the lease first)", t.ID, ErrLeased)
	}
	if err != nil {
		return task.Lease{}, fmt.Errorf("lease task %s: %w", t.ID, err)
	}
	return l, nil
}

// newLease is the lease of a copy for d's messages, from now until
// leaseMargin after its invocation's deadline.
func (c *Copier) newLease(ctx context.Context, d Delivery, now time.Time) task.Lease {
	remaining := 15 * time.Minute // Lambda's longest run, for a context without a deadline
	if deadline, ok := invocationDeadline(ctx); ok {
		remaining = time.Until(deadline)
	}
	owner := leaseOwner
	if c.Owner != nil {
		owner = c.Owner
	}
	return task.Lease{Owner: owner(d.MessageIDs), Until: now.Add(remaining + leaseMargin)}
}

// requeue begins the queueing d asks for, of a copy_failed task t, and
// holds its lease in the same write. A request whose queueing another
// delivery began first is retried: it then finds the task queued.
func (c *Copier) requeue(ctx context.Context, t task.Task, d Delivery) (task.Lease, error) {
	now := c.Now()
	l := c.newLease(ctx, d, now)
	_, err := c.Store.Update(ctx, task.Requeue(t.ID, d.Generation, l, d.Receives, now))
	if errors.Is(err, task.ErrStale) {
		return task.Lease{}, fmt.Errorf("task %s was requeued by another delivery first: %w", t.ID, ErrLeased)
	}
	if err != nil {
		return task.Lease{}, fmt.Errorf("requeue task %s: %w", t.ID, err)
	}
	c.Logger.InfoContext(ctx, "copying a copy_failed task again, as an operator asked", "taskId", t.ID, "error", t.Error, "generation", d.Generation)
	return l, nil
}

// leaseOwner names one copy attempt: a random part, then the ids of the
// messages it copies for, so that another delivery can tell a redelivery
// of the same message from a message of its own.
func leaseOwner(messageIDs []string) string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "/" + strings.Join(messageIDs, ",")
}

// leasedError is a delivery that found its task leased by holder.
type leasedError struct{ task, holder string }

func (e *leasedError) Error() string {
	return fmt.Sprintf("task %s %v (lease %s)", e.task, ErrLeased, e.holder)
}

func (e *leasedError) Unwrap() error { return ErrLeased }

// carries reports whether the holder copies for one of messageIDs: the
// same message delivered again, which must come back should the holder
// fail. Any other message of the task is redundant: the holder's own
// message returns to the queue if its copy fails, and again after its
// visibility timeout if the holder dies. A holder named the old way, with
// no ids, is taken to carry them all.
func (e *leasedError) carries(messageIDs []string) bool {
	_, held, ok := strings.Cut(e.holder, "/")
	if !ok {
		return true
	}
	for _, id := range strings.Split(held, ",") {
		if slices.Contains(messageIDs, id) {
			return true
		}
	}
	return false
}

// copyLeased copies t under owner's lease; requeued says the lease began
// a new queueing of a copy that failed.
func (c *Copier) copyLeased(ctx context.Context, t task.Task, owner string, requeued bool) (outcome string, bytes int64, err error) {
	if _, known := kie.RecordPath(t.API); c.Verifier != nil && !known {
		// Retrying cannot help: the platform has nothing to confirm its
		// URLs by.
		reason := fmt.Sprintf("result URLs cannot be confirmed: the platform has no record endpoint for %q tasks (VERIFY_WITH_PLATFORM)", t.API)
		return outcomeCopyFailed, 0, c.copyFailed(ctx, t.ID, owner, reason)
	}
	if c.Verifier != nil {
		confirmed, err := c.confirmed(ctx, t)
		if err != nil {
			return "", 0, err
		}
		if !confirmed {
			return outcomeCopyFailed, 0, c.copyFailed(ctx, t.ID, owner, unconfirmed)
		}
	}
	if err := c.abortStale(ctx, t, owner, requeued); err != nil {
		return "", 0, err
	}
	objects, err := c.copyAll(ctx, t, owner)
	var failed *sourceError
	if errors.As(err, &failed) && retry.IsPermanent(failed.err) {
		reason := fmt.Sprintf("source %d: %s", failed.index, retry.PermanentReason(failed.err))
		c.Logger.WarnContext(ctx, "copy failed for good", "taskId", t.ID, "error", reason)
		return outcomeCopyFailed, 0, c.copyFailed(ctx, t.ID, owner, reason)
	}
	if err != nil {
		return "", 0, fmt.Errorf("task %s %w", t.ID, err)
	}
	for _, o := range objects {
		bytes += o.Bytes
	}
	// The copies are in the bucket; recording them must not be cut short.
	stored, err := c.Store.Update(context.WithoutCancel(ctx), task.MarkStored(t.ID, owner, objects, c.Now().UTC()))
	var stale *task.StaleError
	switch {
	case errors.As(err, &stale) && stale.Current.Status == task.StatusStored && slices.Equal(stale.Current.Objects, objects):
		// This copy's own mark, sent again by the SDK, its answer lost:
		// announced now rather than at the reconciler's sweep.
		return outcomeStored, bytes, c.announce(ctx, stale.Current)
	case errors.Is(err, task.ErrStale):
		return outcomeStored, bytes, nil // another copier ended it, and announces it
	case err != nil:
		return "", 0, fmt.Errorf("record stored task %s: %w", t.ID, err)
	}
	return outcomeStored, bytes, c.announce(ctx, stored)
}

// copyFailed removes everything under the task's prefix, what this copy
// and any earlier attempt stored or left open, since no record will name
// it; then it records why the task can never be copied, and announces it.
// The lease keeps every other copy off meanwhile.
func (c *Copier) copyFailed(ctx context.Context, id, owner, reason string) error {
	ctx = context.WithoutCancel(ctx)
	if err := c.Objects.Clear(ctx, c.Prefix+id+"/"); err != nil {
		return fmt.Errorf("task %s failed for good, and clearing its prefix failed: %w", id, err)
	}
	failed, err := c.Store.Update(ctx, task.MarkCopyFailed(id, owner, reason, c.Now().UTC()))
	switch {
	case errors.Is(err, task.ErrStale):
		return nil // another copier ended it, and announces it
	case err != nil:
		return fmt.Errorf("record copy failure of task %s: %w", id, err)
	}
	return c.announce(ctx, failed)
}

// announce puts the event of a task this copier just ended. An error
// returns the message, whose redelivery puts the event.
func (c *Copier) announce(ctx context.Context, t task.Task) error {
	if c.Notifier == nil {
		return nil
	}
	return c.Notifier.Notify(ctx, t)
}

// abortStale aborts the multipart uploads that an earlier copy of t started
// and never finished: without it they would stay open, and billed, until
// the bucket's lifecycle rule removes them. Its lease has expired, or this
// one could not have been taken, so that copy is dead. Listing the task's
// prefix finds them all, those the record names and those a copier died
// before recording; only a task copied before (or requeued) pays for it,
// and only such a task has uploads on its record.
func (c *Copier) abortStale(ctx context.Context, t task.Task, owner string, requeued bool) error {
	if !t.Started() && !requeued {
		return nil
	}
	if err := c.Objects.AbortUnder(ctx, c.Prefix+t.ID+"/"); err != nil {
		return fmt.Errorf("task %s: %w", t.ID, err)
	}
	if len(t.Uploads) == 0 {
		return nil
	}
	if _, err := c.Store.Update(ctx, task.ForgetUploads(t.ID, owner)); err != nil {
		return fmt.Errorf("task %s: forget aborted uploads: %w", t.ID, err)
	}
	c.Logger.InfoContext(ctx, "aborted uploads an earlier copy left open", "taskId", t.ID, "uploads", len(t.Uploads))
	return nil
}

// metadata is an object's user metadata: its task, and its source URL when
// it fits S3's limit (a URL may be 2,048 characters; the record keeps it).
func metadata(id, src string) map[string]string {
	meta := map[string]string{"task-id": id}
	if len("task-id")+len(id)+len("source-url")+len(src) <= objects.MaxMetadata {
		meta["source-url"] = src
	}
	return meta
}

// sourceError is the failure of one source of a task.
type sourceError struct {
	index int
	err   error
}

func (e *sourceError) Error() string { return fmt.Sprintf("source %d: %v", e.index, e.err) }
func (e *sourceError) Unwrap() error { return e.err }

// copyAll copies a task's sources, sourceConcurrency at once, into objects
// in the sources' order. A permanent failure wins over the others and
// stops the copies not started yet; otherwise the first failure is
// returned.
func (c *Copier) copyAll(ctx context.Context, t task.Task, owner string) ([]task.Object, error) {
	objects := make([]task.Object, len(t.Sources))
	errs := make([]error, len(t.Sources))
	// A permanent failure stops the copies not started yet. The running
	// ones finish: one cancelled mid-Put could still be stored by S3 after
	// the prefix was cleared, and stay there with no record naming it.
	stop, stopped := context.WithCancel(ctx)
	defer stopped()
	slots := make(chan struct{}, sourceConcurrency)
	wg := c.Group.Or()
	for i, src := range t.Sources {
		wg.Go(func() {
			select {
			case slots <- struct{}{}:
			case <-stop.Done():
				errs[i] = stop.Err()
				return
			}
			defer func() { <-slots }()
			if stop.Err() != nil {
				errs[i] = stop.Err()
				return
			}
			objects[i], errs[i] = c.copyOne(ctx, t.ID, owner, i, src)
			if retry.IsPermanent(errs[i]) {
				stopped()
			}
		})
	}
	wg.Wait()
	first := -1
	for i, err := range errs {
		if retry.IsPermanent(err) {
			return objects, &sourceError{i, err}
		}
		if err != nil && first < 0 {
			first = i
		}
	}
	if first >= 0 {
		return objects, &sourceError{first, errs[first]}
	}
	return objects, nil
}

func (c *Copier) copyOne(ctx context.Context, id, owner string, index int, src string) (task.Object, error) {
	dl, err := c.Sources.Open(ctx, src)
	if err != nil {
		return task.Object{}, err
	}
	defer dl.Close()
	key := c.Prefix + id + "/" + strconv.Itoa(index) + dl.Ext
	track := func(uploadID string) error {
		_, err := c.Store.Update(ctx, task.RecordUpload(id, owner, task.Upload{Key: key, ID: uploadID}))
		return err
	}
	err = c.Objects.Put(ctx, objects.PutInput{Key: key, ContentType: dl.ContentType, Body: dl, Metadata: metadata(id, src), Sum: dl.Sum, Track: track})
	if err != nil {
		// When the source failed, that is the cause, whatever the upload made
		// of it: it may pass the error on wrapped, or first report a part it
		// aborted because of it, which would hide a permanent failure.
		if srcErr := dl.Err(); srcErr != nil {
			return task.Object{}, srcErr
		}
		return task.Object{}, err
	}
	return task.Object{Key: key, Bytes: dl.Bytes(), SHA256: dl.SHA256(), ContentType: dl.ContentType, Source: src}, nil
}

// unconfirmed is the error recorded for a task whose callback named URLs
// the platform does not report.
const unconfirmed = "result URLs not confirmed by the platform"

// confirmed asks the platform whether it reports exactly the task's URLs.
// The webhook signature covers only the task id, so a forged or tampered
// body could otherwise make the copier fetch someone else's files. Only a
// record that reports other URLs (or a failure) refuses the task for good:
// a callback can arrive before record-info reflects the success, so a task
// still running or not found yet is an error, retried with the message
// until its deliveries are used up.
func (c *Copier) confirmed(ctx context.Context, t task.Task) (bool, error) {
	rec, err := c.Verifier.Record(ctx, t.API, t.ID)
	switch {
	case errors.Is(err, kie.ErrNoRecord):
		return false, fmt.Errorf("verify task %s: the platform reports no record of it yet: %w", t.ID, err)
	case err != nil:
		return false, fmt.Errorf("verify task %s with the platform: %w", t.ID, err)
	case rec.State == kie.Running:
		return false, fmt.Errorf("verify task %s: the platform does not report it finished yet", t.ID)
	}
	ok := rec.State == kie.Succeeded && sameSet(rec.Sources, t.Sources)
	if !ok {
		c.Logger.WarnContext(ctx, "security: result URLs not confirmed by the platform",
			"security", true, "taskId", t.ID, "api", t.API, "claimed", t.Sources, "reported", rec.Sources, "platformState", int(rec.State))
	}
	return ok, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]bool, len(a))
	for _, s := range a {
		seen[s] = true
	}
	for _, s := range b {
		if !seen[s] {
			return false
		}
	}
	return true
}
