package explore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kiehook/kiehook/functions/schema"
)

// The queues' URLs, and their settings as SQS applies them.
const (
	copyURL = "https://sqs.local/copy"
	dlqURL  = "https://sqs.local/copy-dlq"
	// visibility is the copy queue's visibility timeout (the template's):
	// longer than a copier invocation, so that only a dead copier's
	// message comes back.
	visibility = 1800 * time.Second
	// maxReceives is the queues' maxReceiveCount, kept at 2 so that a
	// message reaches the dead-letter queue in few steps.
	maxReceives = 2
	// The submission queue, and its visibility timeout (the template's:
	// six times the submitter's).
	submitURL        = "https://sqs.local/submit"
	submitDLQURL     = "https://sqs.local/submit-dlq"
	submitVisibility = 360 * time.Second
)

// message is one SQS message.
type message struct {
	id, body  string
	sentAt    time.Time
	receives  int
	visibleAt time.Time
	receipt   string // the latest receive's handle; older ones delete nothing
}

// squeue is one queue: its messages in the order they were sent.
type squeue struct {
	url  string
	msgs []*message
	dlq  *squeue // nil: no redrive policy
}

// sqsFake is SQS with the copy queue and its dead-letter queue.
type sqsFake struct {
	w      *world
	queues map[string]*squeue
	ids    int                  // message ids, in order
	rcpts  int                  // receipt handles, in order
	dead   []schema.CopyMessage // every message that reached the dead-letter queue
}

// deadLettered reports whether a message of task id's queueing gen ever
// reached the dead-letter queue.
func (f *sqsFake) deadLettered(id string, gen int) bool {
	return slices.ContainsFunc(f.dead, func(m schema.CopyMessage) bool { return m.TaskID == id && m.Generation == gen })
}

func newSQS(w *world) *sqsFake {
	dlq, submitDLQ := &squeue{url: dlqURL}, &squeue{url: submitDLQURL}
	return &sqsFake{w: w, queues: map[string]*squeue{
		copyURL: {url: copyURL, dlq: dlq}, dlqURL: dlq,
		submitURL: {url: submitURL, dlq: submitDLQ}, submitDLQURL: submitDLQ,
	}}
}

func queueName(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

func (f *sqsFake) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	url, body := aws.ToString(in.QueueUrl), aws.ToString(in.MessageBody)
	c := f.w.call("SendMessage "+queueName(url)+" "+body, mayLose|mayRefuse, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	q := f.queues[url]
	if q == nil {
		c.end("no such queue")
		return nil, fmt.Errorf("no queue %s", url)
	}
	f.ids++
	m := &message{id: "m" + strconv.Itoa(f.ids), body: body, sentAt: f.w.now, visibleAt: f.w.now.Add(time.Duration(in.DelaySeconds) * time.Second)}
	q.msgs = append(q.msgs, m)
	if c.lost() {
		c.end(m.id)
		return nil, errLost
	}
	c.end(m.id, m.id)
	return &sqs.SendMessageOutput{MessageId: aws.String(m.id)}, nil
}

func (f *sqsFake) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	url := aws.ToString(in.QueueUrl)
	c := f.w.call("ReceiveMessage "+queueName(url), 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	q := f.queues[url]
	hide := time.Duration(in.VisibilityTimeout) * time.Second
	if hide == 0 {
		hide = visibility
	}
	got := f.receive(q, max(int(in.MaxNumberOfMessages), 1), hide)
	if len(got) == 0 && in.WaitTimeSeconds > 0 {
		// A long poll returns a message that becomes visible while it
		// waits; time passes for everyone meanwhile.
		if at, ok := q.nextVisible(f.w.now); ok && !at.After(f.w.now.Add(time.Duration(in.WaitTimeSeconds)*time.Second)) {
			f.w.mu.Lock()
			f.w.advanceTo(at, false)
			f.w.mu.Unlock()
			got = f.receive(q, max(int(in.MaxNumberOfMessages), 1), hide)
		}
	}
	out := &sqs.ReceiveMessageOutput{}
	var names, full []string
	for _, m := range got {
		out.Messages = append(out.Messages, types.Message{MessageId: aws.String(m.id), Body: aws.String(m.body), ReceiptHandle: aws.String(m.receipt),
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.receives), "SentTimestamp": strconv.FormatInt(m.sentAt.UnixMilli(), 10)}})
		names = append(names, m.id)
		full = append(full, fmt.Sprintf("%s %s %s %d %d", m.id, m.body, m.receipt, m.receives, m.sentAt.UnixMilli()))
	}
	c.end(orNone(strings.Join(names, ",")), full)
	return out, nil
}

func (f *sqsFake) DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error) {
	url, receipt := aws.ToString(in.QueueUrl), aws.ToString(in.ReceiptHandle)
	c := f.w.call("DeleteMessage "+queueName(url)+" "+receipt, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	c.end(f.delete(f.queues[url], receipt))
	return &sqs.DeleteMessageOutput{}, nil
}

func (f *sqsFake) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, _ ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	url := aws.ToString(in.QueueUrl)
	c := f.w.call("GetQueueAttributes "+queueName(url), 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	visible, hidden := 0, 0
	for _, m := range f.queues[url].msgs {
		if m.visibleAt.After(f.w.now) {
			hidden++
		} else {
			visible++
		}
	}
	c.end(fmt.Sprintf("%d visible, %d not", visible, hidden))
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{
		string(types.QueueAttributeNameApproximateNumberOfMessages):           strconv.Itoa(visible),
		string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible): strconv.Itoa(hidden),
	}}, nil
}

// receive takes up to n visible messages, oldest first, hiding each for
// hide. A message already received maxReceives times moves to the
// dead-letter queue instead, as SQS's redrive policy does on the receive
// that would exceed it.
func (f *sqsFake) receive(q *squeue, n int, hide time.Duration) []*message {
	now := f.w.now
	var got []*message
	kept := q.msgs[:0:0]
	for _, m := range q.msgs {
		switch {
		case m.visibleAt.After(now) || len(got) == n:
			kept = append(kept, m)
		case q.dlq != nil && m.receives >= maxReceives:
			m.receipt, m.visibleAt = "", now
			q.dlq.msgs = append(q.dlq.msgs, m)
			if msg, err := schema.DecodeCopyMessage(m.body); err == nil {
				f.dead = append(f.dead, msg)
			}
		default:
			f.rcpts++
			m.receives++
			m.receipt = "r" + strconv.Itoa(f.rcpts)
			m.visibleAt = now.Add(hide)
			got = append(got, m)
			kept = append(kept, m)
		}
	}
	q.msgs = kept
	return got
}

func (f *sqsFake) delete(q *squeue, receipt string) string {
	for i, m := range q.msgs {
		if m.receipt == receipt {
			q.msgs = append(q.msgs[:i:i], q.msgs[i+1:]...)
			return "deleted " + m.id
		}
	}
	return "nothing deleted (an older receipt)"
}

// visible reports whether q has a message to deliver now.
func (q *squeue) visible(now time.Time) bool {
	for _, m := range q.msgs {
		if !m.visibleAt.After(now) {
			return true
		}
	}
	return false
}

// nextVisible is when the next hidden message of q shows again.
func (q *squeue) nextVisible(now time.Time) (time.Time, bool) {
	var at time.Time
	for _, m := range q.msgs {
		if m.visibleAt.After(now) && (at.IsZero() || m.visibleAt.Before(at)) {
			at = m.visibleAt
		}
	}
	return at, !at.IsZero()
}

// esmReceive is an event source mapping's poll of the queue at url, for
// a batch of one hidden for hide: it waits until a message is visible.
func (f *sqsFake) esmReceive(url string, hide time.Duration) []events.SQSMessage {
	q := f.queues[url]
	c := f.w.call("receive "+queueName(url), 0, func() bool { return q.visible(f.w.now) })
	if c.failed() {
		c.end("")
		return nil
	}
	got := f.receive(q, 1, hide)
	var recs []events.SQSMessage
	var names []string
	for _, m := range got {
		recs = append(recs, events.SQSMessage{MessageId: m.id, ReceiptHandle: m.receipt, Body: m.body, EventSourceARN: "arn:aws:sqs:local:" + queueName(url),
			Attributes: map[string]string{"ApproximateReceiveCount": strconv.Itoa(m.receives), "SentTimestamp": strconv.FormatInt(m.sentAt.UnixMilli(), 10)}})
		names = append(names, fmt.Sprintf("%s %s (receive %d)", m.id, m.body, m.receives))
	}
	c.end(orNone(strings.Join(names, ",")), fmt.Sprintf("%+v", recs))
	return recs
}

// esmDelete is an event source mapping deleting a message of the queue
// at url that its function did not report failed.
func (f *sqsFake) esmDelete(url string, m events.SQSMessage) {
	c := f.w.call("delete "+m.MessageId, 0, nil)
	if c.failed() {
		c.end("")
		return
	}
	c.end(f.delete(f.queues[url], m.ReceiptHandle))
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
