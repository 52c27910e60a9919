// Package recovery puts tasks whose copy failed back in the copier's
// hands: Requeue sends a task's id to the copier again, Redrive does it for
// every message of the copy dead-letter queue. It only reads records and
// sends messages; the copier itself moves a copy_failed record back to
// queued (task.Requeue). It is not internal, so that its command,
// go run ./infra/ops, can import it.
package recovery

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// Resources are the deployed stack's table and copy queues.
type Resources struct {
	Table, QueueURL, DLQURL string
}

// records reads a task's record; recovery leaves every change of a
// record to the functions.
type records interface {
	Get(ctx context.Context, id string) (task.Task, bool, error)
}

// sqsAPI is the part of SQS recovery uses.
type sqsAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// upgrader moves what an earlier release left to today's statuses.
type upgrader interface {
	Upgrade(ctx context.Context) (int, error)
}

// Recovery puts tasks whose copy failed back in the copier's hands.
type Recovery struct {
	Records records
	Legacy  upgrader
	SQS     sqsAPI
	Resources
	Now func() time.Time
}

// New is a Recovery that reads the records of res's table through db and
// sends to res's queues through q.
func New(db dynamo.Client, q sqsAPI, res Resources, now func() time.Time) *Recovery {
	// Whether events are on matters only to writes; recovery reads.
	store := dynamo.New(db, res.Table, dynamo.WithoutEvents)
	return &Recovery{Records: store, Legacy: store, SQS: q, Resources: res, Now: now}
}

// Upgrade is the one step an upgrade from a release that wrote the
// status received needs: such records become queued, and the reconciler
// sends their copy message. It returns how many it moved, and is safe to
// run again.
func (r *Recovery) Upgrade(ctx context.Context) (int, error) { return r.Legacy.Upgrade(ctx) }

// ErrEnded is a task that ended otherwise than copy_failed: there is no
// copy to retry.
var ErrEnded = errors.New("nothing to requeue")

// Requeue gives the task id to the copier again. A copy_failed task gets
// a request to begin its next queueing: the copier moves the record back
// to queued through the transition the functions own (task.Requeue: its
// error and its event's notifiedAt go, so that its next end is
// announced), under its own lease, and copies it; a request delivered
// again, or sent twice, acts once. A queued task no copier holds gets a
// copy message of its queueing again. Any other status is refused,
// naming it, and so is a task a copier holds: the copier would drop the
// message. A Requeue whose send failed is safe to repeat.
func (r *Recovery) Requeue(ctx context.Context, id string) error {
	t, found, err := r.Records.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read task %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("task %s: no record", id)
	}
	return r.requeue(ctx, t)
}

func (r *Recovery) requeue(ctx context.Context, t task.Task) error {
	msg := schema.CopyMessage{TaskID: t.ID, Generation: t.Generation}
	switch status := t.Status; status {
	case task.StatusCopyFailed:
		msg.Generation, msg.Requeue = t.Generation+1, true
	case task.StatusQueued:
		if t.Lease.Live(r.Now()) {
			return fmt.Errorf("task %s: a copier holds it until %s; run requeue again once that copy has ended", t.ID, schema.Timestamp(t.Lease.Until))
		}
	case task.StatusStored, task.StatusFailed:
		return fmt.Errorf("task %s is %s: %w", t.ID, status, ErrEnded)
	default:
		return fmt.Errorf("task %s is %s: only copy_failed and queued tasks are requeued", t.ID, status)
	}
	if _, err := r.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.QueueURL), MessageBody: aws.String(msg.Encode())}); err != nil {
		return fmt.Errorf("task %s: sending it to the copier failed (run requeue again): %w", t.ID, err)
	}
	return nil
}

// What Redrive did with a dead letter.
const (
	Moved   = "moved"   // its task was requeued, and the letter deleted
	Dropped = "dropped" // it can never be copied, and was deleted
	Kept    = "kept"    // it stays in the dead-letter queue, for a later redrive
)

// Letter is what Redrive did with one dead letter, and why.
type Letter struct {
	TaskID, Action, Why string
}

// redriveWait is how long each receive of Redrive long-polls, and
// keptVisibility how long a letter it keeps stays hidden. A poll that
// brings nothing new may still leave letters unseen, hidden by a
// reconciler's scan for a few seconds: Redrive polls again, up to
// redriveRounds times, while more are hidden than it kept.
const (
	redriveWait    = 10
	keptVisibility = 60
	redriveRounds  = 6
)

// Redrive moves the messages of the dead-letter queue back to the copy
// queue, requeueing their tasks, and says what it did with each. A letter
// that can never be copied is dropped: its task has no record (expired),
// is pending (nothing to copy yet; the reconciler polls it), has ended
// otherwise than copy_failed, or has been requeued since the letter's
// queueing. One whose task cannot be requeued now (a copier holds it) is
// kept, and so is one that names no task. Redrive pages until the queue
// holds only what it kept, and returns how many letters are left unseen
// (a reconciler kept them hidden) when it gives up waiting for them; what
// it kept stays hidden for a minute, and a redrive after that sees it
// again.
func (r *Recovery) Redrive(ctx context.Context) (letters []Letter, unseen int, err error) {
	var errs []error
	seen := map[string]bool{}
	kept, rounds := 0, 0
	for {
		out, err := r.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(r.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: redriveWait, VisibilityTimeout: keptVisibility,
		})
		if err != nil {
			return letters, 0, errors.Join(append(errs, err)...)
		}
		fresh := 0
		for _, m := range out.Messages {
			if seen[aws.ToString(m.MessageId)] {
				continue
			}
			seen[aws.ToString(m.MessageId)] = true
			fresh++
			l := r.redrive(ctx, aws.ToString(m.MessageId), aws.ToString(m.Body))
			if l.Action != Kept {
				if _, err := r.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.DLQURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
					// A moved letter left behind is of the queueing the requeue ended: spent.
					errs = append(errs, fmt.Errorf("task %s was %s, but its letter stays in the dead-letter queue: %w", l.TaskID, l.Action, err))
				}
			}
			if l.Action == Kept {
				kept++
			}
			letters = append(letters, l)
		}
		if fresh > 0 {
			continue
		}
		held, err := r.held(ctx)
		if err != nil || held <= kept || rounds == redriveRounds {
			return letters, max(held-kept, 0), errors.Join(append(errs, err)...)
		}
		rounds++
	}
}

// held is how many messages of the dead-letter queue are out of sight:
// those Redrive kept, and those a reconciler's scan hides for a moment.
// (Visible ones a poll brings; goaws counts hidden ones as visible too.)
func (r *Recovery) held(ctx context.Context) (int, error) {
	hidden := types.QueueAttributeNameApproximateNumberOfMessagesNotVisible
	out, err := r.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(r.DLQURL), AttributeNames: []types.QueueAttributeName{hidden}})
	if err != nil {
		return 0, fmt.Errorf("count the dead-letter queue: %w", err)
	}
	n, err := strconv.Atoi(out.Attributes[string(hidden)])
	if err != nil {
		return 0, fmt.Errorf("count the dead-letter queue: %w", err)
	}
	return n, nil
}

// redrive decides what becomes of one dead letter.
func (r *Recovery) redrive(ctx context.Context, messageID, body string) Letter {
	msg, err := schema.DecodeCopyMessage(body)
	if err != nil {
		return Letter{TaskID: "message " + messageID, Action: Kept, Why: err.Error()}
	}
	t, found, err := r.Records.Get(ctx, msg.TaskID)
	switch {
	case err != nil:
		return Letter{TaskID: msg.TaskID, Action: Kept, Why: err.Error()}
	case !found:
		return Letter{TaskID: msg.TaskID, Action: Dropped, Why: "the task has no record (its TTL ended, or it was never recorded)"}
	case t.Status == task.StatusPending:
		return Letter{TaskID: msg.TaskID, Action: Dropped, Why: "the task is pending: nothing to copy yet, and the reconciler polls it"}
	case msg.Generation < t.Generation:
		return Letter{TaskID: msg.TaskID, Action: Dropped, Why: "the task was requeued since this letter's copy: its new queueing has messages of its own"}
	}
	err = r.requeue(ctx, t)
	switch {
	case errors.Is(err, ErrEnded):
		return Letter{TaskID: msg.TaskID, Action: Dropped, Why: err.Error()}
	case err != nil:
		return Letter{TaskID: msg.TaskID, Action: Kept, Why: err.Error()}
	}
	return Letter{TaskID: msg.TaskID, Action: Moved, Why: "requeued from " + string(t.Status)}
}
