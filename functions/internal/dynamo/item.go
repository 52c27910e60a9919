package dynamo

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.TaskID: &types.AttributeValueMemberS{Value: id}}
}

// Item is the whole record of t, as the table holds it: the inverse of
// decode, and so what a change that task.Apply makes must leave.
func (s *Store) Item(t task.Task) (map[string]types.AttributeValue, error) {
	r := schema.Record{
		TaskID: t.ID, Status: string(t.Status), Code: t.Code, Msg: t.Msg, API: t.API,
		Sources: t.Sources, Objects: objects(t.Objects), Deliveries: t.Deliveries, Labels: t.Labels,
		ReceivedAt: schema.Timestamp(t.ReceivedAt), SubmittedAt: schema.Timestamp(t.SubmittedAt),
		UpdatedAt: schema.Timestamp(t.UpdatedAt), StoredAt: schema.Timestamp(t.StoredAt),
		Error: t.Error, NotifiedAt: schema.Timestamp(t.NotifiedAt), Receives: t.Receives,
		LeaseOwner: t.Lease.Owner, Generation: t.Generation, ResentAt: schema.Timestamp(t.ResentAt), Submission: t.SubmissionID,
	}
	if !t.ExpiresAt.IsZero() {
		r.ExpiresAt = t.ExpiresAt.Unix()
	}
	if t.Lease.Owner != "" {
		r.LeaseUntil = t.Lease.Until.UnixMilli()
	}
	for _, u := range t.Uploads {
		r.Uploads = append(r.Uploads, schema.Upload{Key: u.Key, UploadID: u.ID})
	}
	if indexed(t.Status, s.events) && t.NotifiedAt.IsZero() {
		r.OpenStatus = string(t.Status)
	}
	m, err := attributevalue.MarshalMap(r)
	if err != nil {
		return nil, fmt.Errorf("encode task %s: %w", t.ID, err)
	}
	return m, nil
}

// decode reads a record; a time it cannot read is an error, never a zero.
func decode(m map[string]types.AttributeValue) (task.Task, error) {
	var r schema.Record
	if err := attributevalue.UnmarshalMap(m, &r); err != nil {
		return task.Task{}, fmt.Errorf("decode task record: %w", err)
	}
	t := task.Task{
		ID: r.TaskID, Status: task.Status(r.Status), Code: r.Code, Msg: r.Msg, API: r.API,
		Sources: r.Sources, Deliveries: r.Deliveries, Error: r.Error,
		Receives: r.Receives, Labels: r.Labels, Generation: r.Generation, SubmissionID: r.Submission,
	}
	var err error
	for _, at := range []struct {
		to   *time.Time
		from string
	}{{&t.ReceivedAt, r.ReceivedAt}, {&t.UpdatedAt, r.UpdatedAt}, {&t.StoredAt, r.StoredAt}, {&t.SubmittedAt, r.SubmittedAt}, {&t.NotifiedAt, r.NotifiedAt}, {&t.ResentAt, r.ResentAt}} {
		if *at.to, err = schema.ParseTimestamp(at.from); err != nil {
			return task.Task{}, fmt.Errorf("decode task record %s: %w", r.TaskID, err)
		}
	}
	if r.LeaseOwner != "" {
		t.Lease = task.Lease{Owner: r.LeaseOwner, Until: time.UnixMilli(r.LeaseUntil).UTC()}
	}
	if r.ExpiresAt != 0 {
		t.ExpiresAt = time.Unix(r.ExpiresAt, 0).UTC()
	}
	for _, o := range r.Objects {
		t.Objects = append(t.Objects, task.Object(o))
	}
	for _, u := range r.Uploads {
		t.Uploads = append(t.Uploads, task.Upload{Key: u.Key, ID: u.UploadID})
	}
	return t, nil
}

// objects is how a record lists copied objects.
func objects(objects []task.Object) []schema.Object {
	if len(objects) == 0 {
		return nil
	}
	l := make([]schema.Object, len(objects))
	for i, o := range objects {
		l[i] = schema.Object(o)
	}
	return l
}

// indexed reports whether a record in status s, with no event accepted,
// is in the open index: while it is open, and, with events, while its
// event is due.
func indexed(s task.Status, events Events) bool {
	return task.Open(s) || bool(events) && task.Final(s)
}
