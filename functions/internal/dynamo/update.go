package dynamo

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// update is one change of a record, conditional on its status: the SDK's
// expression builders make its expressions, so that no clause or
// placeholder is written by hand.
type update struct {
	changes  expression.UpdateBuilder
	statuses []expression.OperandBuilder // the record's status is one of these
	clauses  []expression.ConditionBuilder
	events   Events // an ended record stays in the open index until notified
	ends     bool   // the update moves the record to a final status
	from     task.Status
}

func (s *Store) newUpdate(from task.Status, now time.Time) *update {
	b := &update{
		from:     from,
		events:   s.events,
		statuses: []expression.OperandBuilder{expression.Value(string(from))},
	}
	if !now.IsZero() {
		b.stamp(now)
	}
	return b
}

// stamp moves the record's updatedAt to now.
func (b *update) stamp(now time.Time) { b.set(schema.UpdatedAt, schema.Timestamp(now)) }

// setStatus moves the record to s, in or out of the open index. A record
// leaving a final status owes a new event, so its notifiedAt goes (an open
// record has none).
func (b *update) setStatus(s task.Status) {
	b.ends = task.Final(s)
	b.set(schema.Status, string(s))
	if indexed(s, b.events) {
		b.set(schema.OpenStatus, string(s))
	} else {
		b.remove(schema.OpenStatus)
	}
	if task.Final(b.from) {
		b.remove(schema.NotifiedAt)
	}
}

// indexed reports whether a record in status s is in the open index: while
// it is open, and, with events, while its event is due.
func indexed(s task.Status, events Events) bool {
	return task.Open(s) || bool(events) && task.Final(s)
}

// orStatus also accepts a record in status s; every other clause stays.
func (b *update) orStatus(s task.Status) {
	b.statuses = append(b.statuses, expression.Value(string(s)))
}

// require adds a clause the record must meet besides its status.
func (b *update) require(c expression.ConditionBuilder) { b.clauses = append(b.clauses, c) }

func (b *update) set(attr string, v any) {
	b.changes = b.changes.Set(expression.Name(attr), expression.Value(v))
}

// setList sets a list, or removes the attribute when the list is empty:
// emulators store empty lists as maps, and an absent list reads the same.
func setList[E any](b *update, attr string, l []E) {
	if len(l) == 0 {
		b.remove(attr)
		return
	}
	b.set(attr, l)
}

func (b *update) add(attr string, n int) {
	b.changes = b.changes.Add(expression.Name(attr), expression.Value(n))
}

func (b *update) remove(attr string) { b.changes = b.changes.Remove(expression.Name(attr)) }

func (b *update) build() (expression.Expression, error) {
	status := expression.Name(schema.Status)
	condition := status.Equal(b.statuses[0])
	if len(b.statuses) > 1 {
		condition = status.In(b.statuses[0], b.statuses[1:]...)
	}
	for _, c := range b.clauses {
		condition = condition.And(c)
	}
	e, err := expression.NewBuilder().WithUpdate(b.changes).WithCondition(condition).Build()
	if err != nil {
		return e, fmt.Errorf("build update: %w", err)
	}
	return e, nil
}
