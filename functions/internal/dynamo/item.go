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

// item is the record of a new task.
func (s *Store) item(t task.Task) (map[string]types.AttributeValue, error) {
	r := schema.Record{
		TaskID: t.ID, Status: string(t.Status), Code: t.Code, Msg: t.Msg, API: t.API,
		Sources: t.Sources, Deliveries: t.Deliveries, Labels: t.Labels,
		ReceivedAt: schema.Timestamp(t.ReceivedAt), SubmittedAt: schema.Timestamp(t.SubmittedAt),
		UpdatedAt: schema.Timestamp(t.UpdatedAt),
	}
	if !t.ExpiresAt.IsZero() {
		r.ExpiresAt = t.ExpiresAt.Unix()
	}
	if indexed(t.Status, s.events) {
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
		Receives: r.Receives, Labels: r.Labels,
	}
	var err error
	for _, at := range []struct {
		to   *time.Time
		from string
	}{{&t.ReceivedAt, r.ReceivedAt}, {&t.UpdatedAt, r.UpdatedAt}, {&t.StoredAt, r.StoredAt}, {&t.SubmittedAt, r.SubmittedAt}, {&t.NotifiedAt, r.NotifiedAt}} {
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
	l := make([]schema.Object, len(objects))
	for i, o := range objects {
		l[i] = schema.Object(o)
	}
	return l
}
