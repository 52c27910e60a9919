package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Resources are the deployed stack's table and copy queues.
type Resources struct {
	Table, QueueURL, DLQURL string
}

// dynamoAPI is the part of DynamoDB recovery uses.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// sqsAPI is the part of SQS recovery uses.
type sqsAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// Recovery puts tasks whose copy failed back in the copier's hands.
type Recovery struct {
	DynamoDB dynamoAPI
	SQS      sqsAPI
	Resources
	Now func() time.Time
}

// errEnded is a task that ended otherwise than copy_failed: there is no
// copy to retry.
var errEnded = errors.New("nothing to requeue")

// Requeue gives the task id to the copier again. A copy_failed or queued
// record is reset first, as new, unless a copier holds it: its error, its
// event's notifiedAt (so that Task Stored is put once the copy succeeds),
// its lease and delivery count go, and it is back in the open index as
// queued. Its recorded uploads stay, for the next copy to abort. Any
// other status is refused, naming it. A Requeue whose send failed is safe
// to repeat.
func (r *Recovery) Requeue(ctx context.Context, id string) error {
	rec, err := r.record(ctx, id)
	if err != nil {
		return err
	}
	switch status := rec.Status; status {
	case "copy_failed", "queued":
		if err := r.reset(ctx, id); err != nil {
			return err
		}
	case "":
		return fmt.Errorf("task %s: no record", id)
	case "stored", "failed":
		return fmt.Errorf("task %s is %s: %w", id, status, errEnded)
	default:
		return fmt.Errorf("task %s is %s: only copy_failed and queued tasks are requeued", id, status)
	}
	body, _ := json.Marshal(map[string]string{"taskId": id}) // the copier's message
	if _, err := r.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(r.QueueURL), MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("task %s is queued, but sending it failed (run requeue again): %w", id, err)
	}
	return nil
}

// reset moves a copy_failed or queued record that no copier holds back to
// queued, as the record of a task the callback has just queued.
func (r *Recovery) reset(ctx context.Context, id string) error {
	now := r.Now().UTC()
	_, err := r.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(r.Table),
		Key:                 key(id),
		ConditionExpression: aws.String("#status IN (:failed, :queued) AND (attribute_not_exists(#leaseUntil) OR #leaseUntil < :nowMillis)"),
		UpdateExpression: aws.String("SET #status = :queued, #openStatus = :queued, #updatedAt = :now " +
			"REMOVE #error, #notifiedAt, #leaseOwner, #leaseUntil, #receives"),
		ExpressionAttributeNames: map[string]string{
			"#status": "status", "#openStatus": "openStatus", "#updatedAt": "updatedAt", "#error": "error", "#notifiedAt": "notifiedAt",
			"#leaseOwner": "leaseOwner", "#leaseUntil": "leaseUntil", "#receives": "receives",
		},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":failed":    &types.AttributeValueMemberS{Value: "copy_failed"},
			":queued":    &types.AttributeValueMemberS{Value: "queued"},
			":now":       &types.AttributeValueMemberS{Value: now.Format(time.RFC3339)},
			":nowMillis": &types.AttributeValueMemberN{Value: strconv.FormatInt(now.UnixMilli(), 10)},
		},
	})
	var changed *types.ConditionalCheckFailedException
	if errors.As(err, &changed) {
		return fmt.Errorf("task %s changed, or a copier holds it, while it was requeued; run requeue again once that copy has ended", id)
	}
	if err != nil {
		return fmt.Errorf("task %s: %w", id, err)
	}
	return nil
}

// Redrive moves every message of the dead-letter queue back to the copy
// queue, requeueing its task, and returns the task ids moved. The message
// of a task that has ended otherwise (stored since) is dropped; one whose
// task cannot be requeued stays in the dead-letter queue, and the errors
// say why.
func (r *Recovery) Redrive(ctx context.Context) ([]string, error) {
	var moved []string
	var errs []error
	kept := map[string]bool{} // messages left in the queue, seen again
	for {
		out, err := r.SQS.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			// The reconciler hides each dead letter it reads for 5 s: a
			// long poll sees it again.
			QueueUrl: aws.String(r.DLQURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 10, VisibilityTimeout: 60,
		})
		if err != nil {
			return moved, errors.Join(append(errs, err)...)
		}
		fresh := 0
		for _, m := range out.Messages {
			if kept[aws.ToString(m.MessageId)] {
				continue
			}
			fresh++
			var msg struct{ TaskID string }
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg); err != nil || msg.TaskID == "" {
				errs = append(errs, fmt.Errorf("message %s names no task: %q", aws.ToString(m.MessageId), aws.ToString(m.Body)))
				kept[aws.ToString(m.MessageId)] = true
				continue
			}
			err := r.Requeue(ctx, msg.TaskID)
			ended := errors.Is(err, errEnded)
			if err != nil && !ended {
				errs = append(errs, err)
				kept[aws.ToString(m.MessageId)] = true
				continue
			}
			if _, err := r.SQS.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(r.DLQURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
				errs = append(errs, fmt.Errorf("task %s is requeued; its old message stays in the dead-letter queue: %w", msg.TaskID, err))
			}
			if !ended {
				moved = append(moved, msg.TaskID)
			}
		}
		if fresh == 0 {
			return moved, errors.Join(errs...)
		}
	}
}

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"taskId": &types.AttributeValueMemberS{Value: id}}
}
