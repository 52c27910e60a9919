package queue_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/copymsg"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestEnqueueSendsAMessageTheCopierCanDecode(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	if err := queue.New(env.SQS, env.QueueURL).Enqueue(context.Background(), "veo_1"); err != nil {
		t.Fatal(err)
	}
	out, err := env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &env.QueueURL})
	if err != nil || len(out.Messages) != 1 {
		t.Fatalf("receive: %v %v", out, err)
	}
	m, err := copymsg.Decode(*out.Messages[0].Body)
	if err != nil || m.TaskID != "veo_1" {
		t.Errorf("decoded %+v %v", m, err)
	}
}

func TestDecodeRefusesForeignMessages(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"taskId":""}`, `not json`, `{"taskId":7}`} {
		t.Run("the body "+body+" is refused", func(t *testing.T) {
			if _, err := copymsg.Decode(body); err == nil {
				t.Error("want an error")
			}
		})
	}
}
