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

// Tasks returns the distinct task ids of up to scan messages of the
// queue, leaving every message there for redrive. Messages that name no
// task are passed over; the operator sees them in redrive.
func (d *DeadLetters) Tasks(ctx context.Context, scan int) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	for read := 0; read < scan; {
		out, err := d.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: d.url, MaxNumberOfMessages: int32(min(10, scan-read)), VisibilityTimeout: peekVisibility,
		})
		if err != nil {
			return ids, fmt.Errorf("read the dead-letter queue: %w", err)
		}
		if len(out.Messages) == 0 {
			return ids, nil
		}
		read += len(out.Messages)
		for _, m := range out.Messages {
			msg, err := schema.DecodeCopyMessage(aws.ToString(m.Body))
			if err != nil || seen[msg.TaskID] {
				continue
			}
			seen[msg.TaskID] = true
			ids = append(ids, msg.TaskID)
		}
	}
	return ids, nil
}
