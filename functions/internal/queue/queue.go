// Package queue hands tasks from the callback function to the copier over
// SQS. A message names the task only: the record in DynamoDB is the truth.
package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/schema"
)

// Sender is the part of the SQS API the queue uses.
type Sender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// Queue implements task.Queue on one SQS queue.
type Queue struct {
	client Sender
	url    *string
}

// New returns a Queue that sends to url.
func New(client Sender, url string) *Queue {
	return &Queue{client: client, url: aws.String(url)}
}

// Enqueue sends the task's id to the copier, for its queueing generation.
func (q *Queue) Enqueue(ctx context.Context, taskID string, generation int) error {
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.url, MessageBody: aws.String(schema.CopyMessage{TaskID: taskID, Generation: generation}.Encode())})
	if err != nil {
		return fmt.Errorf("send task %s: %w", taskID, err)
	}
	return nil
}

// Submissions hands submissions to the submitter over SQS.
type Submissions struct {
	client Sender
	url    *string
}

// NewSubmissions returns a Submissions that sends to url.
func NewSubmissions(client Sender, url string) *Submissions {
	return &Submissions{client: client, url: aws.String(url)}
}

// Send hands the submission id to the submitter, to be received after
// delay (SQS's most is 15 minutes): a submission that waits its turn is
// sent again this way, so that waiting spends none of its deliveries.
func (q *Submissions) Send(ctx context.Context, id string, delay time.Duration) error {
	body, _ := json.Marshal(schema.SubmitMessage{SubmissionID: id}) // one plain field: it cannot fail
	_, err := q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.url, MessageBody: aws.String(string(body)),
		DelaySeconds: int32(min(max(delay, 0), MaxDelay).Round(time.Second) / time.Second)})
	if err != nil {
		return fmt.Errorf("send submission %s: %w", id, err)
	}
	return nil
}

// MaxDelay is the longest SQS holds a message back.
const MaxDelay = 15 * time.Minute
