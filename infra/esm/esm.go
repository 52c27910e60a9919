// Package esm plays the Lambda event source mapping for SQS outside AWS: it
// receives batches from a queue, hands them to a function as an SQS event,
// and deletes the messages the function did not report in
// batchItemFailures. The rest come back after their visibility timeout and,
// past the queue's maxReceiveCount, go to its dead-letter queue.
package esm

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Client is the part of the SQS API the poller uses.
type Client interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
}

// Invoke runs the function on one batch.
type Invoke func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// Poller feeds one queue to one function.
type Poller struct {
	SQS       Client
	QueueURL  string
	QueueARN  string
	Region    string
	BatchSize int32         // 1 to 10; default 10
	Wait      time.Duration // long-poll wait; default 1 s
	// Poll, when set, replaces long polls by a short poll every Poll while
	// the queue is empty. AWS's long poll answers as soon as a message
	// arrives; goaws's looks again only every 100 ms, which a benchmark of
	// the time to a result would count as the copier's.
	Poll time.Duration
	// Handed, when set, hears each batch as it is handed to the function.
	Handed func(ev events.SQSEvent, at time.Time)
	Invoke Invoke
	// OnError, when set, hears about failed receives, invocations and deletes.
	OnError func(error)
	// Duplicates is the share of batches in which one message is handed
	// over twice at once (under another message id, with the same receipt
	// handle), as SQS's at-least-once delivery may.
	Duplicates float64

	paused atomic.Bool
}

// Pause stops receiving until Resume, as a throttled or backed-up
// event source mapping does: messages wait in the queue, undelivered.
func (p *Poller) Pause() { p.paused.Store(true) }

// Resume receives again.
func (p *Poller) Resume() { p.paused.Store(false) }

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if p.paused.Load() {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n, err := p.Once(ctx)
		if err != nil && ctx.Err() == nil {
			p.report(err)
			time.Sleep(100 * time.Millisecond)
		} else if n == 0 && p.Poll > 0 {
			time.Sleep(p.Poll)
		}
	}
}

func (p *Poller) report(err error) {
	if p.OnError != nil {
		p.OnError(err)
	}
}

// Once receives at most one batch and invokes the function on it. It
// returns how many messages the batch had.
func (p *Poller) Once(ctx context.Context) (int, error) {
	size, wait := p.BatchSize, p.Wait
	if size == 0 {
		size = 10
	}
	if wait == 0 {
		wait = time.Second
	}
	if p.Poll > 0 {
		wait = 0
	}
	out, err := p.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(p.QueueURL),
		MaxNumberOfMessages:         size,
		WaitTimeSeconds:             int32(wait / time.Second),
		MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
	})
	if err != nil || len(out.Messages) == 0 {
		return 0, err
	}
	ev := events.SQSEvent{Records: make([]events.SQSMessage, len(out.Messages))}
	for i, m := range out.Messages {
		ev.Records[i] = events.SQSMessage{
			MessageId:      aws.ToString(m.MessageId),
			ReceiptHandle:  aws.ToString(m.ReceiptHandle),
			Body:           aws.ToString(m.Body),
			Md5OfBody:      aws.ToString(m.MD5OfBody),
			Attributes:     m.Attributes,
			EventSource:    "aws:sqs",
			EventSourceARN: p.QueueARN,
			AWSRegion:      p.Region,
		}
	}
	if len(ev.Records) > 0 && p.Duplicates > 0 && rand.Float64() < p.Duplicates {
		again := ev.Records[rand.IntN(len(ev.Records))]
		again.MessageId += "-again"
		ev.Records = append(ev.Records, again)
	}
	if p.Handed != nil {
		p.Handed(ev, time.Now())
	}
	resp, err := p.Invoke(ctx, ev)
	if err != nil {
		// A function error returns the whole batch to the queue.
		return len(ev.Records), fmt.Errorf("invoke: %w", err)
	}
	done, err := completed(ev, resp)
	if err != nil {
		return len(ev.Records), err
	}
	if len(done) == 0 {
		return len(ev.Records), nil
	}
	del, err := p.SQS.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.QueueURL), Entries: done})
	if err == nil && len(del.Failed) > 0 {
		err = fmt.Errorf("delete: %d messages failed, first %s", len(del.Failed), aws.ToString(del.Failed[0].Message))
	}
	return len(ev.Records), err
}

// completed are the messages to delete: all those not reported failed,
// each once (a message handed over twice is deleted when either copy
// succeeded). A report naming a message outside the batch fails the whole
// batch, as the real event source mapping does.
func completed(ev events.SQSEvent, resp events.SQSEventResponse) ([]types.DeleteMessageBatchRequestEntry, error) {
	failed := make(map[string]bool, len(resp.BatchItemFailures))
	inBatch := make(map[string]bool, len(ev.Records))
	for _, r := range ev.Records {
		inBatch[r.MessageId] = true
	}
	for _, f := range resp.BatchItemFailures {
		if !inBatch[f.ItemIdentifier] {
			return nil, errors.New("batchItemFailures names a message outside the batch: the whole batch is retried")
		}
		failed[f.ItemIdentifier] = true
	}
	var done []types.DeleteMessageBatchRequestEntry
	deleted := make(map[string]bool, len(ev.Records))
	for i, r := range ev.Records {
		if !failed[r.MessageId] && !deleted[r.ReceiptHandle] {
			deleted[r.ReceiptHandle] = true
			done = append(done, types.DeleteMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: aws.String(r.ReceiptHandle)})
		}
	}
	return done, nil
}
