package dynamo

import (
	"fmt"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// expressionOf is the conditional update that makes c: the SDK's
// expression builders write it, so that no clause or placeholder is
// written by hand.
func (s *Store) expressionOf(c task.Change) (expression.Expression, error) {
	e, err := expression.NewBuilder().WithUpdate(s.changesOf(c)).WithCondition(conditionOf(c)).Build()
	if err != nil {
		return e, fmt.Errorf("build the update of task %s: %w", c.ID, err)
	}
	return e, nil
}

// conditionOf is what the record must be for c to apply: in status c.From
// (or c.OrFrom), under the lease c names, last updated at c.IfUpdatedAt.
func conditionOf(c task.Change) expression.ConditionBuilder {
	status := expression.Name(schema.Status)
	condition := status.Equal(expression.Value(string(c.From)))
	if c.OrFrom != "" {
		condition = status.In(expression.Value(string(c.From)), expression.Value(string(c.OrFrom)))
	}
	switch {
	case c.LeasedBy != "":
		condition = condition.And(expression.Name(schema.LeaseOwner).Equal(expression.Value(c.LeasedBy)))
	case !c.FreeAt.IsZero():
		until := expression.Name(schema.LeaseUntil)
		condition = condition.And(expression.AttributeNotExists(until).Or(until.LessThanEqual(expression.Value(c.FreeAt.UnixMilli()))))
	}
	if !c.IfUpdatedAt.IsZero() {
		condition = condition.And(expression.Name(schema.UpdatedAt).Equal(expression.Value(schema.Timestamp(c.IfUpdatedAt))))
	}
	return condition
}

// changes collects the SET, ADD and REMOVE clauses of an update.
type changes struct{ expression.UpdateBuilder }

func (u *changes) set(attr string, v any) {
	u.UpdateBuilder = u.Set(expression.Name(attr), expression.Value(v))
}

func (u *changes) remove(attr string) { u.UpdateBuilder = u.Remove(expression.Name(attr)) }

// setList sets a list, or removes the attribute when the list is empty:
// emulators store empty lists as maps, and an absent list reads the same.
func setList[E any](u *changes, attr string, l []E) {
	if len(l) == 0 {
		u.remove(attr)
		return
	}
	u.set(attr, l)
}

// changesOf is what c changes in the record.
func (s *Store) changesOf(c task.Change) expression.UpdateBuilder {
	var u changes
	if !c.Now.IsZero() {
		u.set(schema.UpdatedAt, schema.Timestamp(c.Now))
	}
	if c.To != "" {
		u.setStatus(c.From, c.To, s.events)
	}
	if c.AddDelivery {
		u.UpdateBuilder = u.Add(expression.Name(schema.Deliveries), expression.Value(1))
	}
	if cb := c.Callback; cb != nil {
		u.set(schema.Code, cb.Code)
		u.set(schema.Msg, cb.Msg)
		u.set(schema.API, cb.API)
		setList(&u, schema.Sources, cb.Sources)
	}
	if !c.ReceivedAt.IsZero() {
		u.set(schema.ReceivedAt, schema.Timestamp(c.ReceivedAt))
	}
	if !c.ExpiresAt.IsZero() {
		u.set(schema.ExpiresAt, c.ExpiresAt.Unix())
	}
	if len(c.Labels) > 0 {
		// The first request that brings labels sets them; later ones never
		// change them.
		labels := expression.Name(schema.Labels)
		u.UpdateBuilder = u.Set(labels, labels.IfNotExists(expression.Value(c.Labels)))
	}
	u.copyChanges(c)
	return u.UpdateBuilder
}

// setStatus moves the record from status from to to, in or out of the
// open index. A record leaving a final status owes a new event, so its
// notifiedAt goes (an open record has none).
func (u *changes) setStatus(from, to task.Status, events Events) {
	u.set(schema.Status, string(to))
	if indexed(to, events) {
		u.set(schema.OpenStatus, string(to))
	} else {
		u.remove(schema.OpenStatus)
	}
	if task.Final(from) {
		u.remove(schema.NotifiedAt)
	}
}

// indexed reports whether a record in status s is in the open index: while
// it is open, and, with events, while its event is due.
func indexed(s task.Status, events Events) bool {
	return task.Open(s) || bool(events) && task.Final(s)
}

// copyChanges are the parts of c that a copy makes: its lease, its
// uploads, what it stored or why it failed, and the event of its end.
func (u *changes) copyChanges(c task.Change) {
	if l := c.Lease; l != nil {
		u.set(schema.LeaseOwner, l.Owner)
		u.set(schema.LeaseUntil, l.Until.UnixMilli())
		u.set(schema.Receives, c.Receives)
	}
	if c.EndLease {
		u.remove(schema.LeaseOwner)
		u.remove(schema.LeaseUntil)
	}
	if up := c.Upload; up != nil {
		uploads := expression.Name(schema.Uploads)
		none := expression.Value(&types.AttributeValueMemberL{Value: []types.AttributeValue{}})
		u.UpdateBuilder = u.Set(uploads, expression.ListAppend(uploads.IfNotExists(none), expression.Value([]schema.Upload{{Key: up.Key, UploadID: up.ID}})))
	}
	if c.DropUploads {
		u.remove(schema.Uploads)
	}
	if c.To == task.StatusStored {
		u.set(schema.StoredAt, schema.Timestamp(c.Now))
		setList(u, schema.Objects, objects(c.Objects))
	}
	if c.Error != "" {
		u.set(schema.Error, c.Error)
	}
	if c.DropError {
		u.remove(schema.Error)
	}
	if c.DropReceives {
		u.remove(schema.Receives)
	}
	if !c.NotifiedAt.IsZero() {
		u.set(schema.NotifiedAt, schema.Timestamp(c.NotifiedAt))
		u.remove(schema.OpenStatus)
	}
}
