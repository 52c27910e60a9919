package esm_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/esm"
)

func send(tb testing.TB, env *emulators.Env, bodies ...string) {
	tb.Helper()
	for _, b := range bodies {
		if _, err := env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &env.QueueURL, MessageBody: aws.String(b)}); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestPollerDeletesOnlyWhatTheFunctionFinished(t *testing.T) {
	env := emulators.New(t, emulators.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2})
	send(t, env, "ok-1", "bad", "ok-2")
	seen := map[string]int{}
	p := &esm.Poller{SQS: env.SQS, QueueURL: env.QueueURL, Invoke: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			seen[r.Body]++
			if r.Body == "bad" {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	}}
	deadline := time.Now().Add(15 * time.Second)
	for emulators.QueueDepth(env.DLQName) == 0 && time.Now().Before(deadline) {
		if _, err := p.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if seen["ok-1"] != 1 || seen["ok-2"] != 1 || seen["bad"] != 2 {
		t.Errorf("deliveries %v, want each good message once and the bad one maxReceiveCount times", seen)
	}
	if emulators.QueueDepth(env.QueueName) != 0 || emulators.QueueDepth(env.DLQName) != 1 {
		t.Errorf("queue %d, DLQ %d: want the bad message alone in the DLQ", emulators.QueueDepth(env.QueueName), emulators.QueueDepth(env.DLQName))
	}
}

func TestPollerReturnsTheWholeBatchOnAFunctionError(t *testing.T) {
	for name, invoke := range map[string]esm.Invoke{
		"a function error": func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{}, errors.New("function crashed")
		},
		"a failure report naming a stranger": func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
			return events.SQSEventResponse{BatchItemFailures: []events.SQSBatchItemFailure{{ItemIdentifier: "stranger"}}}, nil
		},
	} {
		t.Run(name+" deletes nothing", func(t *testing.T) {
			env := emulators.New(t, emulators.Options{})
			send(t, env, "a", "b")
			p := &esm.Poller{SQS: env.SQS, QueueURL: env.QueueURL, Invoke: invoke}
			n, err := p.Once(context.Background())
			if err == nil || n == 0 {
				t.Errorf("got %d %v, want an error", n, err)
			}
			if depth := emulators.QueueDepth(env.QueueName); depth != 2 {
				t.Errorf("queue holds %d, want 2", depth)
			}
		})
	}
}

func ExamplePoller() {
	env, _ := emulators.Start(context.Background(), emulators.Options{})
	defer env.Close()
	env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &env.QueueURL, MessageBody: aws.String(`{"taskId":"t1"}`)})
	p := &esm.Poller{SQS: env.SQS, QueueURL: env.QueueURL, Invoke: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		fmt.Println(ev.Records[0].Body)
		return events.SQSEventResponse{}, nil
	}}
	p.Once(context.Background())
	// Output: {"taskId":"t1"}
}

func TestADuplicatedDeliveryIsDeletedOnce(t *testing.T) {
	for name, failing := range map[string]string{"both copies succeed": "", "one copy is returned": "-again"} {
		t.Run(name, func(t *testing.T) {
			env := emulators.New(t, emulators.Options{VisibilityTimeout: time.Second})
			send(t, env, "only")
			var records int
			p := &esm.Poller{SQS: env.SQS, QueueURL: env.QueueURL, Duplicates: 1, Invoke: func(_ context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
				records = len(ev.Records)
				var resp events.SQSEventResponse
				for _, r := range ev.Records {
					if failing != "" && strings.HasSuffix(r.MessageId, failing) {
						resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
					}
				}
				return resp, nil
			}}
			if _, err := p.Once(context.Background()); err != nil {
				t.Fatalf("a message handed over twice failed its deletion: %v", err)
			}
			if records != 2 || emulators.QueueDepth(env.QueueName) != 0 {
				t.Errorf("%d records delivered, %d left in the queue", records, emulators.QueueDepth(env.QueueName))
			}
		})
	}
}
