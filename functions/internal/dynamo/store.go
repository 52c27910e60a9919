// Package dynamo keeps task records in a DynamoDB table whose partition key
// is taskId (S). Attribute names are part of the contract.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// Client is the part of the DynamoDB API the store uses.
type Client interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// IndexOpen is the table's sparse global secondary index of the tasks that
// still need kiehook's work: partition key openStatus (the status), sort
// key updatedAt. Open tasks (pending, received, queued) are in it, and,
// when events are on, ended tasks whose event the bus has not accepted. A
// record leaves it when it ends (or is notified), so the reconciler never
// scans the table.
//
// One index serves both, rather than a second one that records join by an
// update: minidyn (v0.8.2) corrupts an index when an update gives a record
// the key it lacked, and every record here has its key from its creation.
const IndexOpen = "open-tasks"

// Store implements task.Store on one table.
type Store struct {
	client Client
	table  *string
	// events: ended records stay in the open index until Notified
	// (EVENT_BUS_NAME is set).
	events bool
}

// New returns a Store for table. With events, every record that ends stays
// in the open index until Notified.
func New(client Client, table string, events bool) *Store {
	return &Store{client: client, table: aws.String(table), events: events}
}

var createCondition = aws.String("attribute_not_exists(taskId)")

// Create writes t unless its task id has a record. The failed condition
// returns the existing record itself (ALL_OLD), so a repeat costs no read.
func (s *Store) Create(ctx context.Context, t task.Task) (task.Task, bool, error) {
	_, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           s.table,
		Item:                                s.item(t),
		ConditionExpression:                 createCondition,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var exists *types.ConditionalCheckFailedException
	if !errors.As(err, &exists) {
		return task.Task{}, err == nil, err
	}
	if exists.Item != nil {
		existing, err := decode(exists.Item)
		return existing, false, err
	}
	// DynamoDB always returns the old item here; emulators (minidyn) may not.
	existing, found, err := s.Get(ctx, t.ID)
	if err == nil && !found {
		err = fmt.Errorf("task %s: condition failed but no record exists", t.ID)
	}
	return existing, false, err
}

// Get reads a record with a strongly consistent read.
func (s *Store) Get(ctx context.Context, id string) (task.Task, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      s.table,
		Key:            key(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil || out.Item == nil {
		return task.Task{}, false, err
	}
	t, err := decode(out.Item)
	return t, err == nil, err
}

// Update applies c while the record's status is c.From; otherwise it returns
// task.ErrStale with the current record, when there is one.
func (s *Store) Update(ctx context.Context, c task.Change) (task.Task, error) {
	b := s.newUpdate(c.From, c.Now)
	if c.To != "" {
		b.setStatus(c.To)
	}
	if !c.IfUpdatedAt.IsZero() {
		b.condition += " AND #updatedAt = :ifUpdatedAt"
		b.values[":ifUpdatedAt"] = str(timestamp(c.IfUpdatedAt))
	}
	if c.AddDelivery {
		b.add("deliveries", ":one", num(1))
	}
	if cb := c.Callback; cb != nil {
		b.set("code", ":code", num(int64(cb.Code)))
		b.set("msg", ":msg", str(cb.Msg))
		b.set("api", ":api", str(cb.API))
		b.setList("sources", ":sources", strList(cb.Sources))
	}
	if !c.ReceivedAt.IsZero() {
		b.set("receivedAt", ":receivedAt", str(timestamp(c.ReceivedAt)))
	}
	if !c.ExpiresAt.IsZero() {
		b.set("expiresAt", ":expiresAt", num(c.ExpiresAt.Unix()))
	}
	if len(c.Labels) > 0 {
		// The first request that brings labels sets them; later ones never
		// change them.
		labels := b.name("labels")
		b.sets = append(b.sets, labels+" = if_not_exists("+labels+", :labels)")
		b.values[":labels"] = strMap(c.Labels)
	}
	return s.apply(ctx, c.ID, b)
}

// Lease gives a task still received or queued to the copier l names,
// unless another copier's lease is live at now; receives is the delivery
// count of the message that takes it. A lease held is task.ErrStale.
func (s *Store) Lease(ctx context.Context, id string, l task.Lease, receives int, now time.Time) error {
	b := s.newUpdate(task.StatusQueued, time.Time{}) // updatedAt stays: the reconciler claims on it
	b.orStatus(task.StatusReceived)
	b.unleased(now)
	b.set("leaseOwner", ":leaseOwner", str(l.Owner))
	b.set("leaseUntil", ":leaseUntil", num(l.Until.UnixMilli()))
	b.set("receives", ":receives", num(int64(receives)))
	_, err := s.apply(ctx, id, b)
	return err
}

// Release gives up owner's lease on a task whose copy failed and will be
// retried, so that another delivery need not wait for it to expire.
func (s *Store) Release(ctx context.Context, id, owner string) error {
	b := s.newUpdate(task.StatusQueued, time.Time{})
	b.orStatus(task.StatusReceived)
	b.heldBy(owner, time.Time{})
	b.remove("leaseOwner")
	b.remove("leaseUntil")
	_, err := s.apply(ctx, id, b)
	return err
}

// Stored records the copied objects of a task still received or queued
// and leased by owner; anything else means another copier finished it.
func (s *Store) Stored(ctx context.Context, id, owner string, objects []task.Object, now time.Time) (task.Task, error) {
	b := s.newUpdate(task.StatusQueued, now)
	b.orStatus(task.StatusReceived)
	b.heldBy(owner, now)
	b.setStatus(task.StatusStored)
	b.set("storedAt", ":storedAt", str(timestamp(now)))
	b.setList("objects", ":objects", objectList(objects))
	b.remove("error")
	b.endLease()
	return s.apply(ctx, id, b)
}

// CopyFailed records why a task still received or queued can never be
// copied: by the copier whose lease owner names, or, with no owner (the
// reconciler), while no copier's lease is live at now.
func (s *Store) CopyFailed(ctx context.Context, id, owner, reason string, now time.Time) (task.Task, error) {
	b := s.newUpdate(task.StatusQueued, now)
	b.orStatus(task.StatusReceived)
	b.heldBy(owner, now)
	b.setStatus(task.StatusCopyFailed)
	b.set("error", ":error", str(reason))
	b.endLease()
	return s.apply(ctx, id, b)
}

// AddUpload records a multipart upload that owner, the copier leasing a
// task still received or queued, has started, before any of its parts is
// sent.
func (s *Store) AddUpload(ctx context.Context, id, owner string, up task.Upload) error {
	b := s.newUpdate(task.StatusQueued, time.Time{})
	b.orStatus(task.StatusReceived)
	b.heldBy(owner, time.Time{})
	uploads := b.name("uploads")
	b.sets = append(b.sets, uploads+" = list_append(if_not_exists("+uploads+", :none), :upload)")
	b.values[":none"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{}}
	b.values[":upload"] = &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
		"key": str(up.Key), "uploadId": str(up.ID),
	}}}}
	_, err := s.apply(ctx, id, b)
	return err
}

// ClearUploads forgets the uploads of a task that owner leases, once it
// has aborted them.
func (s *Store) ClearUploads(ctx context.Context, id, owner string) error {
	b := s.newUpdate(task.StatusQueued, time.Time{})
	b.orStatus(task.StatusReceived)
	b.heldBy(owner, time.Time{})
	b.remove("uploads")
	_, err := s.apply(ctx, id, b)
	return err
}

// Notified records that the event of the task's final status was
// accepted, taking it out of the open index. A record that has moved
// on since (a success after a failure) is left alone: its new status has
// an event of its own.
func (s *Store) Notified(ctx context.Context, id string, status task.Status, at time.Time) error {
	b := s.newUpdate(status, time.Time{}) // updatedAt stays: the sweep's age is the status change's
	b.set("notifiedAt", ":notifiedAt", str(timestamp(at)))
	b.remove("openStatus")
	if _, err := s.apply(ctx, id, b); err != nil && !errors.Is(err, task.ErrStale) {
		return err
	}
	return nil
}

// Unnotified lists at most limit tasks that ended in status before before
// and whose event was not accepted, oldest first.
func (s *Store) Unnotified(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error) {
	tasks, err := s.Open(ctx, status, before, limit)
	if err != nil {
		return nil, err
	}
	// As in Open: an entry may lag a record that has since been notified.
	return slices.DeleteFunc(tasks, func(t task.Task) bool { return !t.NotifiedAt.IsZero() }), nil
}

// Open lists at most limit tasks in status that were last updated before
// before, oldest first, from the sparse index. Index reads are eventually
// consistent: callers claim each task with a conditional Change.
func (s *Store) Open(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error) {
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:              s.table,
		IndexName:              aws.String(IndexOpen),
		KeyConditionExpression: aws.String("openStatus = :status AND updatedAt < :before"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":status": str(string(status)), ":before": str(timestamp(before)),
		},
		Limit: aws.Int32(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("query open %s tasks: %w", status, err)
	}
	tasks := make([]task.Task, 0, len(out.Items))
	for _, item := range out.Items {
		t, err := decode(item)
		if err != nil {
			return nil, err
		}
		// A global index lags its table, so an entry may describe a task
		// that has moved on; drop those. (minidyn never drops an index key
		// that an update REMOVEs, so there the entry stays for good.)
		if t.Status == status {
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

// apply runs b on the record id. When b ends the task, it returns the
// record as it is after, for its event; otherwise an empty Task: the hot
// path of a callback needs no record back.
func (s *Store) apply(ctx context.Context, id string, b *update) (task.Task, error) {
	returns := types.ReturnValueNone
	if b.ends {
		returns = types.ReturnValueAllNew
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 key(id),
		UpdateExpression:                    aws.String(b.expression()),
		ConditionExpression:                 aws.String(b.condition),
		ExpressionAttributeNames:            b.names,
		ExpressionAttributeValues:           b.values,
		ReturnValues:                        returns,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil && b.ends {
		return decode(out.Attributes)
	}
	if err == nil {
		return task.Task{}, nil
	}
	var stale *types.ConditionalCheckFailedException
	if !errors.As(err, &stale) {
		return task.Task{}, err
	}
	if stale.Item == nil {
		return task.Task{}, task.ErrStale
	}
	current, err := decode(stale.Item)
	if err != nil {
		return task.Task{}, err
	}
	return current, task.ErrStale
}

// update builds an update expression conditional on the record's status.
type update struct {
	sets, adds, removes []string
	condition           string
	names               map[string]string
	values              map[string]types.AttributeValue
	events              bool // an ended record stays in the open index until notified
	ends                bool // the update moves the record to a final status
	from                task.Status
}

func (s *Store) newUpdate(from task.Status, now time.Time) *update {
	b := &update{
		from:      from,
		events:    s.events,
		condition: "#status = :from",
		sets:      make([]string, 0, 8),
		names:     make(map[string]string, 8),
		values:    make(map[string]types.AttributeValue, 8),
	}
	b.names["#status"] = "status"
	b.values[":from"] = str(string(from))
	if !now.IsZero() {
		b.set("updatedAt", ":updatedAt", str(timestamp(now)))
	}
	return b
}

// setStatus moves the record to s, in or out of the open index. A record
// leaving a final status owes a new event, so its notifiedAt goes (an open
// record has none).
func (b *update) setStatus(s task.Status) {
	b.ends = task.Final(s)
	b.set("status", ":to", str(string(s)))
	if indexed(s, b.events) {
		b.set("openStatus", ":to", str(string(s)))
	} else {
		b.remove("openStatus")
	}
	if task.Final(b.from) {
		b.remove("notifiedAt")
	}
}

// indexed reports whether a record in status s is in the open index: while
// it is open, and, with events, while its event is due.
func indexed(s task.Status, events bool) bool {
	return task.Open(s) || events && task.Final(s)
}

func (b *update) orStatus(s task.Status) {
	b.condition = "#status IN (:from, :from2)"
	b.values[":from2"] = str(string(s))
}

// heldBy requires the lease of owner; with no owner, that no lease is
// live at now.
func (b *update) heldBy(owner string, now time.Time) {
	if owner == "" {
		b.unleased(now)
		return
	}
	b.condition += " AND " + b.name("leaseOwner") + " = :owner"
	b.values[":owner"] = str(owner)
}

// unleased requires that no copier's lease is live at now.
func (b *update) unleased(now time.Time) {
	until := b.name("leaseUntil")
	b.condition += " AND (attribute_not_exists(" + until + ") OR " + until + " <= :now)"
	b.values[":now"] = num(now.UnixMilli())
}

// endLease drops the lease and the uploads of a task whose copy ended.
func (b *update) endLease() {
	b.remove("leaseOwner")
	b.remove("leaseUntil")
	b.remove("uploads")
}

// Every attribute goes through a name placeholder: status and error are
// reserved words, and the list grows.
func (b *update) name(attr string) string {
	b.names["#"+attr] = attr
	return "#" + attr
}

func (b *update) set(attr, placeholder string, v types.AttributeValue) {
	b.sets = append(b.sets, b.name(attr)+" = "+placeholder)
	b.values[placeholder] = v
}

// setList sets a list, or removes the attribute when the list is empty:
// emulators store empty lists as maps, and an absent list reads the same.
func (b *update) setList(attr, placeholder string, v *types.AttributeValueMemberL) {
	if len(v.Value) == 0 {
		b.remove(attr)
		return
	}
	b.set(attr, placeholder, v)
}

func (b *update) add(attr, placeholder string, v types.AttributeValue) {
	b.adds = append(b.adds, b.name(attr)+" "+placeholder)
	b.values[placeholder] = v
}

func (b *update) remove(attr string) { b.removes = append(b.removes, b.name(attr)) }

func (b *update) expression() string {
	var e string
	if len(b.sets) > 0 {
		e = " SET " + strings.Join(b.sets, ", ")
	}
	if len(b.adds) > 0 {
		e += " ADD " + strings.Join(b.adds, ", ")
	}
	if len(b.removes) > 0 {
		e += " REMOVE " + strings.Join(b.removes, ", ")
	}
	return e[1:]
}

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"taskId": str(id)}
}

// item is the record of a new task, built by hand: it is on the hot path.
func (s *Store) item(t task.Task) map[string]types.AttributeValue {
	m := map[string]types.AttributeValue{
		"taskId":     str(t.ID),
		"status":     str(string(t.Status)),
		"code":       num(int64(t.Code)),
		"msg":        str(t.Msg),
		"api":        str(t.API),
		"deliveries": num(int64(t.Deliveries)),
		"updatedAt":  str(timestamp(t.UpdatedAt)),
		"expiresAt":  num(t.ExpiresAt.Unix()),
	}
	if !t.ReceivedAt.IsZero() {
		m["receivedAt"] = str(timestamp(t.ReceivedAt))
	}
	if !t.SubmittedAt.IsZero() {
		m["submittedAt"] = str(timestamp(t.SubmittedAt))
	}
	if indexed(t.Status, s.events) {
		m["openStatus"] = str(string(t.Status))
	}
	if len(t.Sources) > 0 {
		m["sources"] = strList(t.Sources)
	}
	if len(t.Labels) > 0 {
		m["labels"] = strMap(t.Labels)
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
			"key": str(o.Key), "bytes": num(o.Bytes), "sha256": str(o.SHA256),
			"contentType": str(o.ContentType), "source": str(o.Source),
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

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339, s)
	return t
}
