package emulators_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/infra/emulators"
)

func TestEmulatorsListenOnLoopbackOnly(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	for _, raw := range []string{env.DynamoDBURL, env.SQSURL, env.S3URL, env.QueueURL} {
		u, err := url.Parse(raw)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Errorf("%s is not on 127.0.0.1", raw)
		}
	}
	if _, err := emulators.Start(context.Background(), emulators.Options{DynamoDBAddr: "0.0.0.0:0"}); err == nil {
		t.Error("a non-loopback address must be refused")
	}
}

func TestUnacknowledgedMessagesEndInTheDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{MaxReceiveCount: 2, VisibilityTimeout: time.Second})
	if _, err := env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &env.QueueURL, MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		env.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: &env.QueueURL, WaitTimeSeconds: 1})
		if emulators.QueueDepth(env.DLQName) == 1 {
			if emulators.QueueDepth(env.QueueName) != 0 {
				t.Error("the message is in both queues")
			}
			return
		}
	}
	t.Fatal("the message never reached the dead-letter queue")
}

func TestSecretsManagerAnswersThroughTheSDK(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	sm := secretsmanager.NewFromConfig(emulators.Config(), func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(env.JSONURL) })
	env.SetSecret("kiehook/webhook-key", "old-key,new-key")
	for _, id := range []string{"kiehook/webhook-key", "arn:aws:secretsmanager:us-east-1:000000000000:secret:kiehook/webhook-key"} {
		t.Run("a secret is read by "+id, func(t *testing.T) {
			out, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
			if err != nil || aws.ToString(out.SecretString) != "old-key,new-key" {
				t.Errorf("%v %v", out, err)
			}
		})
	}
	t.Run("an unknown secret is ResourceNotFoundException", func(t *testing.T) {
		_, err := sm.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String("nope")})
		var notFound *smtypes.ResourceNotFoundException
		if !errors.As(err, &notFound) {
			t.Errorf("error %v", err)
		}
	})
	if n := env.SecretReads.Load(); n != 3 {
		t.Errorf("%d reads counted, want 3", n)
	}
}

func TestUpdateItemRemovesWhatItsRemoveClauseNames(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	ctx := context.Background()
	s := func(v string) dynamotypes.AttributeValue { return &dynamotypes.AttributeValueMemberS{Value: v} }
	for i, expr := range []struct{ name, update string }{
		{"a clause on one line", "SET #status = :to REMOVE #notifiedAt, #error"},
		{"clauses on lines of their own, as the SDK's expression builder writes them", "REMOVE #notifiedAt, #error\nSET #status = :to\n"},
	} {
		t.Run(expr.name, func(t *testing.T) {
			key := map[string]dynamotypes.AttributeValue{"taskId": s(fmt.Sprint("t", i))}
			if _, err := env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &env.Table, Item: map[string]dynamotypes.AttributeValue{"taskId": key["taskId"], "status": s("failed"), "notifiedAt": s("x"), "error": s("e")}}); err != nil {
				t.Fatal(err)
			}
			out, err := env.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: &env.Table, Key: key, ReturnValues: dynamotypes.ReturnValueAllNew,
				UpdateExpression:          aws.String(expr.update),
				ExpressionAttributeNames:  map[string]string{"#status": "status", "#notifiedAt": "notifiedAt", "#error": "error"},
				ExpressionAttributeValues: map[string]dynamotypes.AttributeValue{":to": s("received")},
			})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &env.Table, Key: key})
			for name, item := range map[string]map[string]dynamotypes.AttributeValue{"stored item": got.Item, "answer": out.Attributes} {
				if _, ok := item["notifiedAt"]; ok {
					t.Errorf("the %s keeps notifiedAt", name)
				}
				if _, ok := item["error"]; ok {
					t.Errorf("the %s keeps error", name)
				}
				if st, _ := item["status"].(*dynamotypes.AttributeValueMemberS); st == nil || st.Value != "received" {
					t.Errorf("the %s lost the SET: %v", name, item["status"])
				}
			}
		})
	}
}
