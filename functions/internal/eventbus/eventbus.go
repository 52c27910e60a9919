// Package eventbus puts the task events on an EventBridge bus and records,
// in the task record's notifiedAt, that the bus accepted them.
package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// Putter is the part of the EventBridge API used.
type Putter interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, opts ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Marker records that a task's event was accepted (dynamo.Store, with
// task.MarkNotified).
type Marker interface {
	Update(ctx context.Context, c task.Change) (task.Task, error)
}

// SubmissionMarker records that a submission's event was accepted
// (dynamo.Submissions, with submission.MarkNotified).
type SubmissionMarker interface {
	Update(ctx context.Context, c submission.Change) (submission.Submission, error)
}

// Bus implements task.Notifier.
type Bus struct {
	client Putter
	name   *string
	bucket string
	tasks  Marker
	now    func() time.Time
	// Submissions, when set, records each submission event the bus took,
	// so that the reconciler's sweep puts only the ones it did not.
	Submissions SubmissionMarker
	// Metrics, when set, counts the events the bus took (EventsPut, by
	// detail type) for the dashboard.
	Metrics *metrics.Writer
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
	detail, err := fit(Detail(t, b.bucket), detailType)
	if err != nil {
		return fmt.Errorf("event of task %s: %w", t.ID, err)
	}
	if err := b.put(ctx, detailType, detail); err != nil {
		return fmt.Errorf("event of task %s: %w", t.ID, err)
	}
	// A record that has moved on since (a success after a failure, a
	// requeue) is left alone: its new status has an event of its own.
	if _, err := b.tasks.Update(context.WithoutCancel(ctx), task.MarkNotified(t, b.now().UTC())); err != nil && !errors.Is(err, task.ErrStale) {
		return fmt.Errorf("record the event of task %s: %w", t.ID, err)
	}
	return nil
}

// submissionDetailTypes name the events of a submission's ends.
var submissionDetailTypes = map[string]string{
	submission.Submitted: taskevent.Submitted, submission.SubmitFailed: taskevent.SubmitFailed, submission.SubmitUnknown: taskevent.SubmitUnknown,
}

// Announce puts the event of ended submission s, as it is now, then
// records its acceptance. A failed call, or an entry the bus refused, is
// an error: the reconciler's sweep puts it later.
func (b *Bus) Announce(ctx context.Context, s submission.Submission) error {
	detailType, ok := submissionDetailTypes[s.Status]
	if !ok {
		return fmt.Errorf("submission %s is %s: only an end is announced", s.ID, s.Status)
	}
	detail, err := json.Marshal(taskevent.SubmissionDetail{ // its fields are bounded: it fits
		SchemaVersion: taskevent.SchemaVersion, SubmissionID: s.ID, TaskID: s.TaskID, API: s.API, Status: s.Status,
		Code: s.Code, Msg: s.Msg, Error: s.Error, Labels: s.Labels,
	})
	if err != nil {
		return err
	}
	if err := b.put(ctx, detailType, detail); err != nil {
		return fmt.Errorf("event of submission %s: %w", s.ID, err)
	}
	if b.Submissions == nil {
		return nil
	}
	if _, err := b.Submissions.Update(context.WithoutCancel(ctx), submission.MarkNotified(s, b.now().UTC())); err != nil && !errors.Is(err, submission.ErrStale) {
		return fmt.Errorf("record the event of submission %s: %w", s.ID, err)
	}
	return nil
}

// put puts one event, and counts it.
func (b *Bus) put(ctx context.Context, detailType string, detail []byte) error {
	out, err := b.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		EventBusName: b.name,
		Source:       aws.String(taskevent.Source),
		DetailType:   aws.String(detailType),
		Detail:       aws.String(string(detail)),
		Resources:    []string{},
	}}})
	if err != nil {
		return fmt.Errorf("put %s: %w", detailType, err)
	}
	if out.FailedEntryCount > 0 {
		e := out.Entries[0]
		return fmt.Errorf("put %s: the bus refused it: %s: %s", detailType, aws.ToString(e.ErrorCode), aws.ToString(e.ErrorMessage))
	}
	b.Metrics.Emit(detailType, metrics.Metric{Name: "EventsPut", Unit: metrics.Count, Value: 1})
	return nil
}

// MaxEntryBytes is EventBridge's limit on one PutEvents entry, counted
// over its detail, detail type, source and time. A larger one fails the
// whole call, and would fail again on every retry.
const MaxEntryBytes = 256 * 1024

// entryOverhead is the rest of an entry: the source and the time.
const entryOverhead = len(taskevent.Source) + len("2006-01-02T15:04:05Z")

// longText is how much of the platform's message and of a copy error an
// event keeps when it must shrink.
const longText = 1024

// fit encodes d so that its entry is within MaxEntryBytes: when it is
// not, the objects' source URLs go first (up to 2 KB each), then the
// message and the error are cut to longText, then the objects; the record
// keeps all of it.
func fit(d taskevent.Detail, detailType string) ([]byte, error) {
	shrink := []func(){
		func() {
			for i := range d.Objects {
				d.Objects[i].Source = ""
			}
		},
		func() { d.Msg, d.Error = cut(d.Msg), cut(d.Error) },
		func() { d.Objects = nil },
	}
	for i := 0; ; i++ {
		b, err := json.Marshal(d)
		if err != nil || len(b)+len(detailType)+entryOverhead <= MaxEntryBytes || i == len(shrink) {
			return b, err
		}
		shrink[i]()
	}
}

func cut(s string) string {
	if len(s) <= longText {
		return s
	}
	return strings.ToValidUTF8(s[:longText], "") + "…"
}

// Detail is the event's detail for t, whose copies are in bucket.
func Detail(t task.Task, bucket string) taskevent.Detail {
	d := taskevent.Detail{
		SchemaVersion: taskevent.SchemaVersion,
		TaskID:        t.ID, API: t.API, Status: string(t.Status), Code: t.Code, Msg: t.Msg,
		Deliveries: t.Deliveries, ReceivedAt: schema.Timestamp(t.ReceivedAt), UpdatedAt: schema.Timestamp(t.UpdatedAt),
		StoredAt: schema.Timestamp(t.StoredAt), Error: t.Error, Labels: t.Labels, SubmissionID: t.SubmissionID,
	}
	for _, o := range t.Objects {
		d.Objects = append(d.Objects, taskevent.Object{Bucket: bucket, Key: o.Key, Bytes: o.Bytes, SHA256: o.SHA256, ContentType: o.ContentType, Source: o.Source})
	}
	return d
}
