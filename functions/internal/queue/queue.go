// Package queue hands tasks from the callback function to the copier over
// SQS. A message names the task only: the record in DynamoDB is the truth.
package queue

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
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

// Message is the body of every message on the queue.
type Message struct {
	TaskID string `json:"taskId"`
}

// Enqueue sends the task's id to the copier.
func (q *Queue) Enqueue(ctx context.Context, taskID string) error {
	body, err := json.Marshal(Message{TaskID: taskID})
	if err != nil {
		return err
	}
	_, err = q.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.url, MessageBody: aws.String(string(body))})
	if err != nil {
		return fmt.Errorf("send task %s: %w", taskID, err)
	}
	return nil
}

// Decode reads a message body.
func Decode(body string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.TaskID == "" {
		return Message{}, fmt.Errorf("message body is not {\"taskId\":\"…\"}: %.64q", body)
	}
	return m, nil
}
