package dynamo

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// expressionOf is the conditional update that makes c: a translation of
// its Condition and Effect, part by part, which the parity test holds
// against task.Apply. The SDK's expression builders write it, so that no
// clause or placeholder is written by hand.
func (s *Store) expressionOf(c task.Change) (expression.Expression, error) {
	e, err := expression.NewBuilder().WithUpdate(s.changesOf(c.Effect())).WithCondition(conditionOf(c.Condition())).Build()
	if err != nil {
		return e, fmt.Errorf("build the update of task %s: %w", c.ID(), err)
	}
	return e, nil
}

// conditionOf is w as a condition expression.
func conditionOf(w task.Condition) expression.ConditionBuilder {
	condition := expression.Name(schema.Status).Equal(expression.Value(string(w.Status)))
	and := func(c expression.ConditionBuilder) { condition = condition.And(c) }
	if w.LeasedBy != "" {
		and(expression.Name(schema.LeaseOwner).Equal(expression.Value(w.LeasedBy)))
	}
	if !w.FreeAt.IsZero() {
		until := expression.Name(schema.LeaseUntil)
		and(expression.AttributeNotExists(until).Or(until.LessThanEqual(expression.Value(w.FreeAt.UnixMilli()))))
	}
	if !w.UpdatedAt.IsZero() {
		and(expression.Name(schema.UpdatedAt).Equal(expression.Value(schema.Timestamp(w.UpdatedAt))))
	}
	if w.Generation != nil {
		and(equalOrAbsent(schema.Generation, *w.Generation, *w.Generation == 0))
	}
	if w.NeverStarted {
		and(expression.AttributeNotExists(expression.Name(schema.LeaseOwner)))
		and(expression.AttributeNotExists(expression.Name(schema.Receives)))
		and(equalOrAbsent(schema.ResentAt, schema.Timestamp(w.ResentAt), w.ResentAt.IsZero()))
	}
	return condition
}

// equalOrAbsent requires attr to be v, or, when absent stands for v (a
// zero the record leaves out), to be missing.
func equalOrAbsent(attr string, v any, absent bool) expression.ConditionBuilder {
	if absent {
		return expression.AttributeNotExists(expression.Name(attr))
	}
	return expression.Name(attr).Equal(expression.Value(v))
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

// setTime sets attr to the Timestamp of at unless at is zero.
func (u *changes) setTime(attr string, at time.Time) {
	if !at.IsZero() {
		u.set(attr, schema.Timestamp(at))
	}
}

// changesOf is e as an update expression.
func (s *Store) changesOf(e task.Effect) expression.UpdateBuilder {
	var u changes
	u.setTime(schema.UpdatedAt, e.UpdatedAt)
	if e.Status != "" {
		u.set(schema.Status, string(e.Status))
		// A status the change gives has no event accepted yet (a record
		// leaves a final status only with DropNotified).
		if indexed(e.Status, s.events) {
			u.set(schema.OpenStatus, string(e.Status))
		} else {
			u.remove(schema.OpenStatus)
		}
	}
	if e.AddDelivery {
		u.UpdateBuilder = u.Add(expression.Name(schema.Deliveries), expression.Value(1))
	}
	if cb := e.Result; cb != nil {
		u.set(schema.Code, cb.Code)
		u.set(schema.Msg, cb.Msg)
		u.set(schema.API, cb.API)
		setList(&u, schema.Sources, cb.Sources)
	}
	u.setTime(schema.ReceivedAt, e.ReceivedAt)
	if !e.ExpiresAt.IsZero() {
		u.set(schema.ExpiresAt, e.ExpiresAt.Unix())
	}
	if len(e.Labels) > 0 {
		// The first request that brings labels sets them; later ones never
		// change them.
		labels := expression.Name(schema.Labels)
		u.UpdateBuilder = u.Set(labels, labels.IfNotExists(expression.Value(e.Labels)))
	}
	if e.SubmissionID != "" {
		sid := expression.Name(schema.SubmissionOf)
		u.UpdateBuilder = u.Set(sid, sid.IfNotExists(expression.Value(e.SubmissionID)))
	}
	u.copyChanges(e)
	return u.UpdateBuilder
}

// copyChanges are the parts of e that a copy makes: its lease, its
// uploads, what it stored or why it failed, its queueing, and the event
// of its end.
func (u *changes) copyChanges(e task.Effect) {
	if l := e.Lease; l != nil {
		u.set(schema.LeaseOwner, l.Owner)
		u.set(schema.LeaseUntil, l.Until.UnixMilli())
		if e.Receives > 0 {
			u.set(schema.Receives, e.Receives)
		}
	}
	if e.DropLease {
		u.remove(schema.LeaseOwner)
		u.remove(schema.LeaseUntil)
	}
	if up := e.AddUpload; up != nil {
		uploads := expression.Name(schema.Uploads)
		none := expression.Value(&types.AttributeValueMemberL{Value: []types.AttributeValue{}})
		u.UpdateBuilder = u.Set(uploads, expression.ListAppend(uploads.IfNotExists(none), expression.Value([]schema.Upload{{Key: up.Key, UploadID: up.ID}})))
	}
	if e.DropUploads {
		u.remove(schema.Uploads)
	}
	if e.Status == task.StatusStored {
		u.setTime(schema.StoredAt, e.StoredAt)
		setList(u, schema.Objects, objects(e.Objects))
	}
	if e.Error != "" {
		u.set(schema.Error, e.Error)
	}
	for _, drop := range []struct {
		attr string
		drop bool
	}{{schema.Error, e.DropError}, {schema.NotifiedAt, e.DropNotified}, {schema.ResentAt, e.DropResent}} {
		if drop.drop {
			u.remove(drop.attr)
		}
	}
	if !e.NotifiedAt.IsZero() {
		u.setTime(schema.NotifiedAt, e.NotifiedAt)
		u.remove(schema.OpenStatus)
	}
	if g := e.Generation; g != nil {
		u.set(schema.Generation, *g)
	}
	u.setTime(schema.ResentAt, e.ResentAt)
}
