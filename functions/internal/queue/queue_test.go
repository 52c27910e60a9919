package queue_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestEnqueueSendsAMessageTheCopierCanDecode(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	if err := queue.New(env.SQS, env.QueueURL).Enqueue(context.Background(), "veo_1", 2); err != nil {
		t.Fatal(err)
	}
	out, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &env.QueueURL})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v %v", out, err)
	}
	m, err := schema.DecodeCopyMessage(*out.Messages[0].Body)
	if err != nil || m.TaskID != "veo_1" || m.Generation != 2 {
		t.Errorf("decoded %+v %v", m, err)
	}
}

func TestDecodeRefusesForeignMessages(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"taskId":""}`, `not json`, `{"taskId":7}`} {
		t.Run("the body "+body+" is refused", func(t *testing.T) {
			if _, err := schema.DecodeCopyMessage(body); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestDeadLettersNamesEveryTaskAndKeepsItsMessages(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	ctx := context.Background()
	for _, body := range []string{`{"taskId":"a"}`, `{"taskId":"b"}`, `{"taskId":"a","generation":1,"requeue":true}`, `not a copy message`} {
		if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &env.DLQURL, MessageBody: &body}); err != nil {
			t.Fatal(err)
		}
	}
	letters, err := queue.NewDeadLetters(env.SQS, env.DLQURL).Letters(ctx, 100)
	slices.SortFunc(letters, func(a, b schema.CopyMessage) int { return strings.Compare(a.TaskID, b.TaskID) })
	if err != nil || len(letters) != 2 || letters[0].TaskID != "a" || letters[0].Generation != 1 || letters[1].TaskID != "b" {
		t.Errorf("letters %v %v, want each task once, with its newest queueing", letters, err)
	}
	// Every message is still there, out of sight for a moment. (goaws
	// counts in-flight messages as visible too; SQS would say 0 visible.)
	attrs, err := env.SQS.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: &env.DLQURL, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	if hidden, _ := strconv.Atoi(attrs.Attributes[string(types.QueueAttributeNameApproximateNumberOfMessagesNotVisible)]); hidden != 4 {
		t.Errorf("%d messages left of 4: reading must delete none, redrive needs them", hidden)
	}
}

func TestDeadLettersReadsNoMoreThanItsScan(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	ctx := context.Background()
	for i := range 25 {
		body := fmt.Sprintf(`{"taskId":"t%d"}`, i)
		env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &env.DLQURL, MessageBody: &body})
	}
	if ids, err := queue.NewDeadLetters(env.SQS, env.DLQURL).Letters(ctx, 12); err != nil || len(ids) != 12 {
		t.Errorf("%d tasks (%v), want the 12 of the scan", len(ids), err)
	}
}
