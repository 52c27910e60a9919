// Package eventbus puts the task events on an EventBridge bus and records,
// in the task record's notifiedAt, that the bus accepted them.
package eventbus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// Putter is the part of the EventBridge API used.
type Putter interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Marker records that a task's event was accepted (dynamo.Store).
type Marker interface {
	Notified(ctx context.Context, id string, status task.Status, at time.Time) error
}

// Bus implements task.Notifier.
type Bus struct {
	client Putter
	name   *string
	bucket string
	tasks  Marker
	now    func() time.Time
}

// New returns a Bus that puts events on the bus name; bucket is where the
// copies are, for the events' objects.
func New(client Putter, name, bucket string, tasks Marker, now func() time.Time) *Bus {
	return &Bus{client: client, name: aws.String(name), bucket: bucket, tasks: tasks, now: now}
}

// Notify puts the event of t's final status, then records its acceptance.
// A task that is not final, or already notified, puts nothing. A failed
// call, or an entry the bus refused, is an error: the caller tries again.
func (b *Bus) Notify(ctx context.Context, t task.Task) error {
	detailType, final := taskevent.DetailType(string(t.Status))
	if !final || !t.NotifiedAt.IsZero() {
		return nil
	}
	detail, err := json.Marshal(Detail(t, b.bucket))
	if err != nil {
		return err
	}
	out, err := b.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: b.name,
		Source:       aws.String(taskevent.Source),
		DetailType:   aws.String(detailType),
		Detail:       aws.String(string(detail)),
		Resources:    []string{},
	}}})
	if err != nil {
		return fmt.Errorf("put %s event of task %s: %w", detailType, t.ID, err)
	}
	if out.FailedEntryCount > 0 {
		e := out.Entries[0]
		return fmt.Errorf("put %s event of task %s: the bus refused it: %s: %s", detailType, t.ID, aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
	}
	if err := b.tasks.Notified(context.WithoutCancel(ctx), t.ID, t.Status, b.now().UTC()); err != nil {
		return fmt.Errorf("record the event of task %s: %w", t.ID, err)
	}
	return nil
}

// Detail is the event's detail for t, whose copies are in bucket.
func Detail(t task.Task, bucket string) taskevent.Detail {
	d := taskevent.Detail{
		TaskID: t.ID, API: t.API, Status: string(t.Status), Code: t.Code, Msg: t.Msg,
		Deliveries: t.Deliveries, ReceivedAt: timestamp(t.ReceivedAt), UpdatedAt: timestamp(t.UpdatedAt),
		StoredAt: timestamp(t.StoredAt), Error: t.Error,
	}
	for _, o := range t.Objects {
		d.Objects = append(d.Objects, taskevent.Object{Bucket: bucket, Key: o.Key, Bytes: o.Bytes, SHA256: o.SHA256, ContentType: o.ContentType, Source: o.Source})
	}
	return d
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
