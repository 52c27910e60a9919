package queue

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/schema"
)

// Receiver is the part of the SQS API the dead-letter reader uses.
type Receiver interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
}

// peekVisibility is how long a message the reader has looked at stays out
// of sight: long enough that one scan does not see it twice, short enough
// that `ops redrive`, which waits 10 s for messages, sees it again.
const peekVisibility = 5

// scanWait is how long, in seconds, each receive of the scan long-polls.
// A short poll asks only a sample of SQS's servers, and on a small queue,
// as the dead-letter queue is, it can answer empty while messages wait; a
// long poll asks them all. One second, the least, is what the scan's
// last receive, the empty one, costs.
const scanWait = 1

// DeadLetters reads the copy dead-letter queue: the record of every copy
// whose message was delivered maxReceiveCount times.
type DeadLetters struct {
	client Receiver
	url    *string
}

// NewDeadLetters returns a reader of the dead-letter queue at url.
func NewDeadLetters(client Receiver, url string) *DeadLetters {
	return &DeadLetters{client: client, url: aws.String(url)}
}

// Letters returns the copy messages of up to scan messages of the queue,
// one per task, the newest queueing of each, leaving every message there
// for redrive: it receives until it has read scan messages, a long poll
// finds none, or a message it read already comes back. Messages that name
// no task are passed over; the operator sees them in redrive.
func (d *DeadLetters) Letters(ctx context.Context, scan int) ([]schema.CopyMessage, error) {
	var letters []schema.CopyMessage
	index := map[string]int{}
	seen := map[string]bool{}
	for read := 0; read < scan; {
		out, err := d.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: d.url, MaxNumberOfMessages: int32(min(10, scan-read)), VisibilityTimeout: peekVisibility, WaitTimeSeconds: scanWait,
		})
		if err != nil {
			return letters, fmt.Errorf("read the dead-letter queue: %w", err)
		}
		if len(out.Messages) == 0 {
			return letters, nil
		}
		read += len(out.Messages)
		// A message read already is back from its peek: the scan has come
		// round the queue. Reading on would take the same letters again
		// until scan, and spend the pass's budget before it acts on one:
		// a scan outlasts peekVisibility when the run before peeked the
		// letters a moment ago (runs every second, as on the local stack)
		// or its receives are slow.
		wrapped := false
		for _, m := range out.Messages {
			id := aws.ToString(m.MessageId)
			wrapped = wrapped || seen[id]
			seen[id] = true
			msg, err := schema.DecodeCopyMessage(aws.ToString(m.Body))
			if err != nil {
				continue
			}
			i, seen := index[msg.TaskID]
			switch {
			case !seen:
				index[msg.TaskID] = len(letters)
				letters = append(letters, msg)
			case msg.Generation > letters[i].Generation:
				letters[i] = msg
			}
		}
		if wrapped {
			return letters, nil
		}
	}
	return letters, nil
}
