package queue_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/infra/emulators"
)

// sampledSQS answers as SQS may on a small queue: a short poll asks a
// sample of its servers and here finds nothing, and even a long poll, which
// asks them all, may return fewer messages than asked (here one). goaws,
// under it, answers a short poll with every visible message; its long poll
// looks for one every 100 ms until WaitTimeSeconds pass, and answers as soon
// as one is there, as SQS does.
type sampledSQS struct{ queue.Receiver }

func (s sampledSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	if in.WaitTimeSeconds == 0 {
		return &sqs.ReceiveMessageOutput{}, nil
	}
	one := *in
	one.MaxNumberOfMessages = 1
	return s.Receiver.ReceiveMessage(ctx, &one, opts...)
}

func TestDeadLettersLongPollsUntilTheQueueHasNoMore(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	ctx := context.Background()
	var want []string
	for i := range 3 {
		id := fmt.Sprintf("t%d", i)
		body := fmt.Sprintf(`{"taskId":%q}`, id)
		if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &env.DLQURL, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	letters, err := queue.NewDeadLetters(sampledSQS{env.SQS}, env.DLQURL).Letters(ctx, 100)
	var ids []string
	for _, l := range letters {
		ids = append(ids, l.TaskID)
	}
	slices.Sort(ids)
	if err != nil || !slices.Equal(ids, want) {
		t.Errorf("tasks %v %v, want %v: a short poll of a small queue may find none of them", ids, err, want)
	}
}

// comingBack answers every receive with the same letters, as SQS does when
// each one's peek has run out before the next receive: a scan slower than
// the peek, or runs that follow each other closely.
type comingBack struct{ receives int }

func (c *comingBack) ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.receives++
	var out sqs.ReceiveMessageOutput
	for i := range 3 {
		id, body := fmt.Sprintf("m%d", i), fmt.Sprintf(`{"taskId":"t%d"}`, i)
		out.Messages = append(out.Messages, types.Message{MessageId: &id, Body: &body})
	}
	return &out, nil
}

func TestADeadLetterScanEndsWhenItsLettersComeBack(t *testing.T) {
	c := &comingBack{}
	letters, err := queue.NewDeadLetters(c, "dlq").Letters(context.Background(), 500)
	if err != nil || len(letters) != 3 {
		t.Fatalf("letters %v %v", letters, err)
	}
	if c.receives > 2 {
		t.Errorf("%d receives of the same three letters: the scan spent its budget reading them again", c.receives)
	}
}
