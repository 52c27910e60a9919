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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

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
}

// Recovery puts tasks whose copy failed back in the copier's hands.
type Recovery struct {
	Records records
	SQS     sqsAPI
	Resources
	Now func() time.Time
}

// New is a Recovery that reads the records of res's table through db and
// sends to res's queues through q.
func New(db dynamo.Client, q sqsAPI, res Resources, now func() time.Time) *Recovery {
	// Whether events are on matters only to writes; recovery reads.
	return &Recovery{Records: dynamo.New(db, res.Table, dynamo.WithoutEvents), SQS: q, Resources: res, Now: now}
}

// ErrEnded is a task that ended otherwise than copy_failed: there is no
// copy to retry.
var ErrEnded = errors.New("nothing to requeue")

// Requeue gives the task id to the copier again, with a message that
// asks it to: the copier moves a copy_failed record back to queued
// through the same transition the functions own (its error, its event's
// notifiedAt, its lease and delivery count go, so that Task Stored is put
// once the copy succeeds), then copies it. A queued record is copied as
// it is. Any other status is refused, naming it, and so is a task a
// copier holds: the copier would drop the message. A Requeue whose send
// failed is safe to repeat.
func (r *Recovery) Requeue(ctx context.Context, id string) error {
	t, found, err := r.Records.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read task %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("task %s: no record", id)
	}
	switch status := t.Status; status {
	case task.StatusCopyFailed, task.StatusQueued:
		if t.Lease.Live(r.Now()) {
			return fmt.Errorf("task %s: a copier holds it until %s; run requeue again once that copy has ended", id, schema.Timestamp(t.Lease.Until))
		}
	case task.StatusStored, task.StatusFailed:
		return fmt.Errorf("task %s is %s: %w", id, status, ErrEnded)
	default:
		return fmt.Errorf("task %s is %s: only copy_failed and queued tasks are requeued", id, status)
	}
	body := schema.CopyMessage{TaskID: id, Requeue: true}.Encode()
	if _, err := r.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.QueueURL), MessageBody: aws.String(body)}); err != nil {
		return fmt.Errorf("task %s: sending it to the copier failed (run requeue again): %w", id, err)
	}
	return nil
}

// Redrive moves every message of the dead-letter queue back to the copy
// queue, requeueing its task, and returns the task ids moved. The message
// of a task that has ended otherwise (stored since) is dropped; one whose
// task cannot be requeued stays in the dead-letter queue, and the errors
// say why.
func (r *Recovery) Redrive(ctx context.Context) ([]string, error) {
	var moved []string
	var errs []error
	kept := map[string]bool{} // messages left in the queue, seen again
	for {
		out, err := r.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			// The reconciler hides each dead letter it reads for 5 s: a
			// long poll sees it again.
			QueueUrl: aws.String(r.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 10, VisibilityTimeout: 60,
		})
		if err != nil {
			return moved, errors.Join(append(errs, err)...)
		}
		fresh := 0
		for _, m := range out.Messages {
			if kept[aws.ToString(m.MessageId)] {
				continue
			}
			fresh++
			msg, err := schema.DecodeCopyMessage(aws.ToString(m.Body))
			if err != nil {
				errs = append(errs, fmt.Errorf("message %s: %w", aws.ToString(m.MessageId), err))
				kept[aws.ToString(m.MessageId)] = true
				continue
			}
			err = r.Requeue(ctx, msg.TaskID)
			ended := errors.Is(err, ErrEnded)
			if err != nil && !ended {
				errs = append(errs, err)
				kept[aws.ToString(m.MessageId)] = true
				continue
			}
			if _, err := r.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.DLQURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				errs = append(errs, fmt.Errorf("task %s is requeued; its old message stays in the dead-letter queue: %w", msg.TaskID, err))
			}
			if !ended {
				moved = append(moved, msg.TaskID)
			}
		}
		if fresh == 0 {
			return moved, errors.Join(errs...)
		}
	}
}
