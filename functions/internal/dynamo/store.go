// Package dynamo keeps task records in a DynamoDB table whose partition key
// is taskId (S). Attribute names are part of the contract.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// Client is the part of the DynamoDB API the store uses.
type Client interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

// The open index (schema.IndexOpen) holds the open tasks (pending,
// queued) and, when events are on, the ended tasks whose event
// the bus has not accepted. A record leaves it when it ends (or is
// notified), so the reconciler never scans the table.
//
// One index serves both, rather than a second one that records join by an
// update: minidyn (v0.8.2) corrupts an index when an update gives a record
// the key it lacked, and every record here has its key from its creation.

// Store implements task.Store on one table.
type Store struct {
	client Client
	table  *string
	events Events
}

// Events says whether the task events are on (EVENT_BUS_NAME is set):
// then every record that ends stays in the open index until Notified.
type Events bool

const (
	WithEvents    Events = true
	WithoutEvents Events = false
)

// New returns a Store for table.
func New(client Client, table string, events Events) *Store {
	return &Store{client: client, table: aws.String(table), events: events}
}

// createCondition is built once: it has no values, and the callback's
// hot path needs it on every new task.
var createCondition = func() expression.Expression {
	e, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name(schema.TaskID))).Build()
	if err != nil {
		panic(err) // a constant expression: it builds, or the package is wrong
	}
	return e
}()

// Create writes t unless its task id has a record. The failed condition
// returns the existing record itself (ALL_OLD), so a repeat costs no read.
func (s *Store) Create(ctx context.Context, t task.Task) (task.Task, bool, error) {
	item, err := s.Item(t)
	if err != nil {
		return task.Task{}, false, err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                           s.table,
		Item:                                item,
		ConditionExpression:                 createCondition.Condition(),
		ExpressionAttributeNames:            createCondition.Names(),
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

// Update makes c, as task.Apply says, while the record meets its
// condition; otherwise it returns task.ErrStale, a *task.StaleError with
// the current record when there is one. A change that ends the task
// returns the record as it is after, for its event; any other, an empty
// Task: the hot path of a callback needs no record back.
func (s *Store) Update(ctx context.Context, c task.Change) (task.Task, error) {
	e, err := s.expressionOf(c)
	if err != nil {
		return task.Task{}, err
	}
	ends := c.Ends()
	returns := types.ReturnValueNone
	if ends {
		returns = types.ReturnValueAllNew
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           s.table,
		Key:                                 key(c.ID()),
		UpdateExpression:                    e.Update(),
		ConditionExpression:                 e.Condition(),
		ExpressionAttributeNames:            e.Names(),
		ExpressionAttributeValues:           e.Values(),
		ReturnValues:                        returns,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil && ends {
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
	return task.Task{}, &task.StaleError{Current: current}
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
	items, err := s.openItems(ctx, string(status), before, limit)
	if err != nil {
		return nil, err
	}
	tasks := make([]task.Task, 0, len(items))
	for _, item := range items {
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

// openItems are at most limit items of the open index under openStatus,
// last updated before before, oldest first.
func (s *Store) openItems(ctx context.Context, openStatus string, before time.Time, limit int32) ([]map[string]types.AttributeValue, error) {
	keys := expression.Key(schema.OpenStatus).Equal(expression.Value(openStatus)).
		And(expression.Key(schema.UpdatedAt).LessThan(expression.Value(schema.Timestamp(before))))
	e, err := expression.NewBuilder().WithKeyCondition(keys).Build()
	if err != nil {
		return nil, fmt.Errorf("query open %s records: %w", openStatus, err)
	}
	out, err := s.client.Query(ctx, &dynamodb.QueryInput{
		TableName:                 s.table,
		IndexName:                 aws.String(schema.IndexOpen),
		KeyConditionExpression:    e.KeyCondition(),
		ExpressionAttributeNames:  e.Names(),
		ExpressionAttributeValues: e.Values(),
		Limit:                     aws.Int32(limit),
	})
	if err != nil {
		return nil, fmt.Errorf("query open %s records: %w", openStatus, err)
	}
	return out.Items, nil
}

// Upgrade moves the records an earlier release left received (its
// callback died between writing the record and queueing it) to queued,
// which they are in all but name: their copy never started, so the
// reconciler sends their message. It returns how many it moved.
func (s *Store) Upgrade(ctx context.Context) (int, error) {
	keys := expression.Key(schema.OpenStatus).Equal(expression.Value(schema.Received))
	listed, err := expression.NewBuilder().WithKeyCondition(keys).Build()
	if err != nil {
		return 0, err
	}
	set := expression.Set(expression.Name(schema.Status), expression.Value(schema.Queued)).
		Set(expression.Name(schema.OpenStatus), expression.Value(schema.Queued))
	update, err := expression.NewBuilder().WithUpdate(set).
		WithCondition(expression.Name(schema.Status).Equal(expression.Value(schema.Received))).Build()
	if err != nil {
		return 0, err
	}
	moved := 0
	pages := dynamodb.NewQueryPaginator(s.client, &dynamodb.QueryInput{
		TableName: s.table, IndexName: aws.String(schema.IndexOpen), KeyConditionExpression: listed.KeyCondition(),
		ExpressionAttributeNames: listed.Names(), ExpressionAttributeValues: listed.Values(),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return moved, fmt.Errorf("list received tasks: %w", err)
		}
		for _, item := range page.Items {
			_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: s.table, Key: map[string]types.AttributeValue{schema.TaskID: item[schema.TaskID]},
				UpdateExpression: update.Update(), ConditionExpression: update.Condition(),
				ExpressionAttributeNames: update.Names(), ExpressionAttributeValues: update.Values(),
			})
			var gone *types.ConditionalCheckFailedException
			if errors.As(err, &gone) {
				continue // a stale index entry: the record has moved on
			}
			if err != nil {
				return moved, fmt.Errorf("upgrade a received task: %w", err)
			}
			moved++
		}
	}
	return moved, nil
}
