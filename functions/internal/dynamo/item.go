package dynamo

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// The record's attribute names, as the contract names them.
const (
	attrTaskID      = "taskId"
	attrStatus      = "status"
	attrOpenStatus  = "openStatus"
	attrCode        = "code"
	attrMsg         = "msg"
	attrAPI         = "api"
	attrSources     = "sources"
	attrObjects     = "objects"
	attrDeliveries  = "deliveries"
	attrReceivedAt  = "receivedAt"
	attrSubmittedAt = "submittedAt"
	attrUpdatedAt   = "updatedAt"
	attrStoredAt    = "storedAt"
	attrExpiresAt   = "expiresAt"
	attrError       = "error"
	attrNotifiedAt  = "notifiedAt"
	attrLabels      = "labels"
	attrUploads     = "uploads"
	attrLeaseOwner  = "leaseOwner"
	attrLeaseUntil  = "leaseUntil"
	attrReceives    = "receives"

	// The attributes of an object, and of an open upload, in their lists.
	attrKey         = "key"
	attrBytes       = "bytes"
	attrSHA256      = "sha256"
	attrContentType = "contentType"
	attrSource      = "source"
	attrUploadID    = "uploadId"
)

// attributes are every attribute the record's updates name.
var attributes = []string{attrTaskID, attrStatus, attrOpenStatus, attrCode, attrMsg, attrAPI, attrSources, attrObjects, attrDeliveries, attrReceivedAt, attrSubmittedAt, attrUpdatedAt, attrStoredAt, attrExpiresAt, attrError, attrNotifiedAt, attrLabels, attrUploads, attrLeaseOwner, attrLeaseUntil, attrReceives}

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrTaskID: str(id)}
}

// item is the record of a new task, built by hand: it is on the hot path.
func (s *Store) item(t task.Task) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		attrTaskID:     str(t.ID),
		attrStatus:     str(string(t.Status)),
		attrCode:       num(int64(t.Code)),
		attrMsg:        str(t.Msg),
		attrAPI:        str(t.API),
		attrDeliveries: num(int64(t.Deliveries)),
		attrUpdatedAt:  str(task.Timestamp(t.UpdatedAt)),
		attrExpiresAt:  num(t.ExpiresAt.Unix()),
	}
	if !t.ReceivedAt.IsZero() {
		m[attrReceivedAt] = str(task.Timestamp(t.ReceivedAt))
	}
	if !t.SubmittedAt.IsZero() {
		m[attrSubmittedAt] = str(task.Timestamp(t.SubmittedAt))
	}
	if indexed(t.Status, s.events) {
		m[attrOpenStatus] = str(string(t.Status))
	}
	if len(t.Sources) > 0 {
		m[attrSources] = strList(t.Sources)
	}
	if len(t.Labels) > 0 {
		m[attrLabels] = strMap(t.Labels)
	}
	return m
}

// record is the table's item shape, for reading.
type record struct {
	TaskID     string   `dynamodbav:"taskId"`
	Status     string   `dynamodbav:"status"`
	Code       int      `dynamodbav:"code"`
	Msg        string   `dynamodbav:"msg"`
	API        string   `dynamodbav:"api"`
	Sources    []string `dynamodbav:"sources"`
	Objects    []object `dynamodbav:"objects"`
	Deliveries int      `dynamodbav:"deliveries"`
	ReceivedAt string   `dynamodbav:"receivedAt"`
	Submitted  string   `dynamodbav:"submittedAt"`
	UpdatedAt  string   `dynamodbav:"updatedAt"`
	StoredAt   string   `dynamodbav:"storedAt"`
	ExpiresAt  int64    `dynamodbav:"expiresAt"`
	Error      string   `dynamodbav:"error"`
	NotifiedAt string   `dynamodbav:"notifiedAt"`
	Uploads    []struct {
		Key      string `dynamodbav:"key"`
		UploadID string `dynamodbav:"uploadId"`
	} `dynamodbav:"uploads"`
	Labels     map[string]string `dynamodbav:"labels"`
	LeaseOwner string            `dynamodbav:"leaseOwner"`
	LeaseUntil int64             `dynamodbav:"leaseUntil"`
	Receives   int               `dynamodbav:"receives"`
}

type object struct {
	Key         string `dynamodbav:"key"`
	Bytes       int64  `dynamodbav:"bytes"`
	SHA256      string `dynamodbav:"sha256"`
	ContentType string `dynamodbav:"contentType"`
	Source      string `dynamodbav:"source"`
}

func decode(m map[string]types.AttributeValue) (task.Task, error) {
	var r record
	if err := attributevalue.UnmarshalMap(m, &r); err != nil {
		return task.Task{}, fmt.Errorf("decode task record: %w", err)
	}
	t := task.Task{
		ID: r.TaskID, Status: task.Status(r.Status), Code: r.Code, Msg: r.Msg, API: r.API,
		Sources: r.Sources, Deliveries: r.Deliveries, Error: r.Error,
		ReceivedAt: parseTime(r.ReceivedAt), UpdatedAt: parseTime(r.UpdatedAt), StoredAt: parseTime(r.StoredAt),
		SubmittedAt: parseTime(r.Submitted), NotifiedAt: parseTime(r.NotifiedAt),
		Receives: r.Receives, Labels: r.Labels,
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

func objectList(objects []task.Object) *types.AttributeValueMemberL {
	l := &types.AttributeValueMemberL{Value: make([]types.AttributeValue, len(objects))}
	for i, o := range objects {
		l.Value[i] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			attrKey: str(o.Key), attrBytes: num(o.Bytes), attrSHA256: str(o.SHA256),
			attrContentType: str(o.ContentType), attrSource: str(o.Source),
		}}
	}
	return l
}

func strList(ss []string) *types.AttributeValueMemberL {
	l := &types.AttributeValueMemberL{Value: make([]types.AttributeValue, len(ss))}
	for i, s := range ss {
		l.Value[i] = str(s)
	}
	return l
}

func strMap(m map[string]string) *types.AttributeValueMemberM {
	v := &types.AttributeValueMemberM{Value: make(map[string]types.AttributeValue, len(m))}
	for k, s := range m {
		v.Value[k] = str(s)
	}
	return v
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}
