package dynamo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/schema"
)

// Submissions keeps submissions, and the pacing and credit state of the
// platform accounts they are sent with, in the tasks' table under keys of
// their own (schema.SubmissionKeyPrefix…).
type Submissions struct{ *Store }

// openStatusOf is a submission's key in the open index, while the
// reconciler may have to finish it: send it, end it, or, with events on,
// tell its end.
func (s Submissions) openStatusOf(status string) string {
	switch {
	case status == submission.Accepted:
		return schema.SubmissionAccepted
	case status == submission.Unknown:
		return schema.SubmissionUnknown
	case submission.Final(status) && bool(s.events):
		return schema.SubmissionUnannounced
	}
	return ""
}

func submissionKey(id string) map[string]types.AttributeValue {
	return key(schema.SubmissionKeyPrefix + id)
}

func (subs Submissions) encodeSubmission(s submission.Submission) (map[string]types.AttributeValue, error) {
	r := schema.SubmissionRecord{
		Key: schema.SubmissionKeyPrefix + s.ID, SubmissionID: s.ID, IdempotencyKey: s.Key, BodyHash: s.BodyHash, API: s.API,
		Input: string(s.Input), Labels: s.Labels, Status: s.Status, OpenStatus: subs.openStatusOf(s.Status), Attempts: s.Attempts, NotifiedAt: schema.Timestamp(s.NotifiedAt),
		Task: s.TaskID, Code: s.Code, Msg: s.Msg, Error: s.Error, ClaimedBy: s.ClaimedBy, ClaimedAt: schema.Timestamp(s.ClaimedAt),
		CreatedAt: schema.Timestamp(s.CreatedAt), UpdatedAt: schema.Timestamp(s.UpdatedAt), ExpiresAt: s.ExpiresAt.Unix(),
	}
	return attributevalue.MarshalMap(r)
}

func decodeSubmission(m map[string]types.AttributeValue) (submission.Submission, error) {
	var r schema.SubmissionRecord
	if err := attributevalue.UnmarshalMap(m, &r); err != nil {
		return submission.Submission{}, fmt.Errorf("decode submission: %w", err)
	}
	s := submission.Submission{
		ID: r.SubmissionID, Key: r.IdempotencyKey, BodyHash: r.BodyHash, API: r.API, Input: json.RawMessage(r.Input), Labels: r.Labels,
		Status: r.Status, Attempts: r.Attempts, TaskID: r.Task, Code: r.Code, Msg: r.Msg, Error: r.Error, ClaimedBy: r.ClaimedBy,
		ExpiresAt: time.Unix(r.ExpiresAt, 0).UTC(),
	}
	var err error
	for _, at := range []struct {
		to   *time.Time
		from string
	}{{&s.ClaimedAt, r.ClaimedAt}, {&s.CreatedAt, r.CreatedAt}, {&s.UpdatedAt, r.UpdatedAt}, {&s.NotifiedAt, r.NotifiedAt}} {
		if *at.to, err = schema.ParseTimestamp(at.from); err != nil {
			return submission.Submission{}, fmt.Errorf("decode submission %s: %w", r.SubmissionID, err)
		}
	}
	return s, nil
}

// Create writes s unless its id has a record; then it returns that
// record and created=false.
func (s Submissions) Create(ctx context.Context, sub submission.Submission) (submission.Submission, bool, error) {
	item, err := s.encodeSubmission(sub)
	if err != nil {
		return submission.Submission{}, false, err
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: s.table, Item: item, ConditionExpression: createCondition.Condition(), ExpressionAttributeNames: createCondition.Names(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var exists *types.ConditionalCheckFailedException
	if !errors.As(err, &exists) {
		return submission.Submission{}, err == nil, err
	}
	if exists.Item != nil {
		existing, err := decodeSubmission(exists.Item)
		return existing, false, err
	}
	existing, found, err := s.Get(ctx, sub.ID) // emulators may not return the old item
	if err == nil && !found {
		err = fmt.Errorf("submission %s: condition failed but no record exists", sub.ID)
	}
	return existing, false, err
}

// Get reads a submission with a strongly consistent read.
func (s Submissions) Get(ctx context.Context, id string) (submission.Submission, bool, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: submissionKey(id), ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		return submission.Submission{}, false, err
	}
	sub, err := decodeSubmission(out.Item)
	return sub, err == nil, err
}

// Update makes c, as submission.Apply says, and returns the submission
// after it; a record that does not meet c's condition is
// submission.ErrStale, with the record as it is.
func (s Submissions) Update(ctx context.Context, c submission.Change) (submission.Submission, error) {
	status := expression.Name(schema.Status)
	cond := status.Equal(expression.Value(c.From))
	if c.OrFrom != "" {
		cond = status.In(expression.Value(c.From), expression.Value(c.OrFrom))
	}
	switch {
	case c.ClaimedBy != "":
		cond = cond.And(expression.Name(schema.ClaimedBy).Equal(expression.Value(c.ClaimedBy)))
	case c.Unclaimed:
		cond = cond.And(expression.AttributeNotExists(expression.Name(schema.ClaimedBy)))
	}
	if c.Notified && c.To != "" {
		return submission.Submission{}, fmt.Errorf("submission %s: a change that tells an end moves no status", c.ID)
	}
	var u changes
	if c.Notified {
		// Told: out of the open index, its updatedAt as it was.
		u.setTime(schema.NotifiedAt, c.Now)
		u.remove(schema.OpenStatus)
	} else {
		u.setTime(schema.UpdatedAt, c.Now)
	}
	if c.To != "" {
		u.set(schema.Status, c.To)
		if open := s.openStatusOf(c.To); open != "" {
			u.set(schema.OpenStatus, open)
		} else {
			u.remove(schema.OpenStatus)
		}
	}
	if c.Claim != "" {
		u.set(schema.ClaimedBy, c.Claim)
		u.setTime(schema.ClaimedAt, c.Now)
	}
	if c.DropClaim {
		u.remove(schema.ClaimedBy)
		u.remove(schema.ClaimedAt)
	}
	if c.AddAttempt {
		u.UpdateBuilder = u.Add(expression.Name(schema.Attempts), expression.Value(1))
	}
	if c.TaskID != "" {
		u.set(schema.SubmittedAs, c.TaskID)
	}
	if c.Code != 0 {
		u.set(schema.Code, c.Code)
		u.set(schema.Msg, c.Msg)
	}
	if c.Error != "" {
		u.set(schema.Error, c.Error)
	}
	e, err := expression.NewBuilder().WithUpdate(u.UpdateBuilder).WithCondition(cond).Build()
	if err != nil {
		return submission.Submission{}, fmt.Errorf("build the update of submission %s: %w", c.ID, err)
	}
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: s.table, Key: submissionKey(c.ID), UpdateExpression: e.Update(), ConditionExpression: e.Condition(),
		ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values(), ReturnValues: types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	var stale *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &stale) && stale.Item != nil:
		current, err := decodeSubmission(stale.Item)
		if err != nil {
			return submission.Submission{}, err
		}
		return current, submission.ErrStale
	case errors.As(err, &stale):
		return submission.Submission{}, submission.ErrStale
	case err != nil:
		return submission.Submission{}, err
	}
	return decodeSubmission(out.Attributes)
}

// LinkTask records the task a callback came for on submission id (its
// sid): it is submitted, whatever its submitter knew. One that has ended
// already is left as it is.
func (s Submissions) LinkTask(ctx context.Context, id, taskID string, now time.Time) error {
	_, err := s.Update(ctx, submission.Link(id, taskID, now))
	if errors.Is(err, submission.ErrStale) {
		return nil
	}
	return err
}

// Unannounced lists at most limit ended submissions whose event the bus
// has not taken, ended before before, oldest first.
func (s Submissions) Unannounced(ctx context.Context, before time.Time, limit int32) ([]submission.Submission, error) {
	return s.listed(ctx, schema.SubmissionUnannounced, before, limit, submission.Submission.Unannounced)
}

// Open lists at most limit submissions in status (accepted or unknown)
// last updated before before, oldest first.
func (s Submissions) Open(ctx context.Context, status string, before time.Time, limit int32) ([]submission.Submission, error) {
	return s.listed(ctx, s.openStatusOf(status), before, limit, func(sub submission.Submission) bool { return sub.Status == status })
}

// listed are the submissions the open index lists under openStatus that
// still are what listed them (the index lags its table).
func (s Submissions) listed(ctx context.Context, openStatus string, before time.Time, limit int32, still func(submission.Submission) bool) ([]submission.Submission, error) {
	items, err := s.openItems(ctx, openStatus, before, limit)
	if err != nil {
		return nil, err
	}
	var subs []submission.Submission
	for _, item := range items {
		sub, err := decodeSubmission(item)
		if err != nil {
			return nil, err
		}
		if still(sub) {
			subs = append(subs, sub)
		}
	}
	return subs, nil
}

// TakeSlot takes one of rate create calls the account may make in any
// window ending now, and returns 0 with the time it dated the slot; or,
// with every slot of the window taken, how long until the oldest leaves
// it. The window is one item whose list of call times is replaced with a
// condition on its version, so that submitters running at once never take
// the same slot. The time is read from clock at each attempt, after the
// read: a slot dated before a lost race would leave the window early. The
// slot is dated hold after now, the latest its call may reach the
// platform, until Redate dates it by the call's answer: a call slower than
// the window keeps its place meanwhile.
func (s Submissions) TakeSlot(ctx context.Context, account string, rate int, window, hold time.Duration, clock func() time.Time) (time.Duration, time.Time, error) {
	var wait time.Duration
	var at time.Time
	err := s.changePace(ctx, account, clock, func(sends []int64, now time.Time) ([]int64, bool) {
		since := now.Add(-window).UnixMilli()
		sends = slices.DeleteFunc(sends, func(t int64) bool { return t <= since })
		if len(sends) >= rate {
			// A call still out is likely answered soon: it is waited for as
			// if dated now, not at its latest.
			oldest := min(slices.Min(sends), now.UnixMilli())
			wait, at = time.UnixMilli(oldest).Add(window).Sub(now), time.Time{}
			return nil, false
		}
		wait, at = 0, now.Add(hold)
		return append(sends, at.UnixMilli()), true
	})
	return wait, at, err
}

// Redate moves the slot taken at from to to, the moment its call was
// answered: the platform counts a call when it takes it, after the slot
// was taken and before the answer, so a slot dated by the answer can only
// be held longer than the platform's window, never shorter. A slot that
// left the list meanwhile is put back at to.
func (s Submissions) Redate(ctx context.Context, account string, from, to time.Time) error {
	return s.changePace(ctx, account, func() time.Time { return to }, func(sends []int64, _ time.Time) ([]int64, bool) {
		if i := slices.Index(sends, from.UnixMilli()); i >= 0 {
			sends = slices.Delete(sends, i, i+1)
		}
		return append(sends, to.UnixMilli()), true
	})
}

// changePace reads the account's list of call times and writes what
// change makes of it, if it writes, on the condition that no other
// submitter wrote meanwhile; it tries again until one write holds.
func (s Submissions) changePace(ctx context.Context, account string, clock func() time.Time, change func(sends []int64, now time.Time) ([]int64, bool)) error {
	k := key(schema.PaceKeyPrefix + account)
	for {
		out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return fmt.Errorf("read the pace of the platform account: %w", err)
		}
		var pace struct {
			Sends   []int64 `dynamodbav:"sends"`
			Version int64   `dynamodbav:"version"`
		}
		if out.Item != nil {
			if err := attributevalue.UnmarshalMap(out.Item, &pace); err != nil {
				return fmt.Errorf("decode the pace of the platform account: %w", err)
			}
		}
		sends, write := change(pace.Sends, clock())
		if !write {
			return nil
		}
		version := expression.Name("version")
		cond := version.Equal(expression.Value(pace.Version))
		if out.Item == nil {
			cond = expression.AttributeNotExists(version)
		}
		update := expression.Set(expression.Name("sends"), expression.Value(sends)).
			Set(version, expression.Value(pace.Version+1))
		e, err := expression.NewBuilder().WithUpdate(update).WithCondition(cond).Build()
		if err != nil {
			return err
		}
		_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: s.table, Key: k, UpdateExpression: e.Update(),
			ConditionExpression: e.Condition(), ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values()})
		var raced *types.ConditionalCheckFailedException
		if errors.As(err, &raced) {
			continue // another submitter changed the list meanwhile: read it again
		}
		if err != nil {
			return fmt.Errorf("take a slot of the platform account: %w", err)
		}
		return nil
	}
}

// Credits reads the account's credit state.
func (s Submissions) Credits(ctx context.Context, account string) (submission.Credits, error) {
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: s.table, Key: key(schema.CreditsKeyPrefix + account), ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		return submission.Credits{}, err
	}
	var r struct {
		PausedAt  string `dynamodbav:"pausedAt"`
		CheckedAt string `dynamodbav:"checkedAt"`
	}
	if err := attributevalue.UnmarshalMap(out.Item, &r); err != nil {
		return submission.Credits{}, fmt.Errorf("decode the credits of the platform account: %w", err)
	}
	var c submission.Credits
	if c.PausedAt, err = schema.ParseTimestamp(r.PausedAt); err != nil {
		return submission.Credits{}, err
	}
	c.CheckedAt, err = schema.ParseTimestamp(r.CheckedAt)
	return c, err
}

// Pause records that the account ran out of credits at now (the first
// 402 of a run of them).
func (s Submissions) Pause(ctx context.Context, account string, now time.Time) error {
	at := expression.Name("pausedAt")
	return s.updateCredits(ctx, account, expression.Set(at, at.IfNotExists(expression.Value(schema.Timestamp(now)))), nil)
}

// Resume records that the account has credits again.
func (s Submissions) Resume(ctx context.Context, account string) error {
	return s.updateCredits(ctx, account, expression.Remove(expression.Name("pausedAt")), nil)
}

// ClaimCheck takes the turn to ask the credit endpoint, once a minute at
// most across every submitter: it holds only while the last check is
// still c.CheckedAt. false means another submitter took it.
func (s Submissions) ClaimCheck(ctx context.Context, account string, c submission.Credits, now time.Time) (bool, error) {
	checked := expression.Name("checkedAt")
	cond := checked.Equal(expression.Value(schema.Timestamp(c.CheckedAt)))
	if c.CheckedAt.IsZero() {
		cond = expression.AttributeNotExists(checked)
	}
	err := s.updateCredits(ctx, account, expression.Set(checked, expression.Value(schema.Timestamp(now))), &cond)
	var taken *types.ConditionalCheckFailedException
	if errors.As(err, &taken) {
		return false, nil
	}
	return err == nil, err
}

func (s Submissions) updateCredits(ctx context.Context, account string, u expression.UpdateBuilder, cond *expression.ConditionBuilder) error {
	b := expression.NewBuilder().WithUpdate(u)
	if cond != nil {
		b = b.WithCondition(*cond)
	}
	e, err := b.Build()
	if err != nil {
		return err
	}
	_, err = s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: s.table, Key: key(schema.CreditsKeyPrefix + account),
		UpdateExpression: e.Update(), ConditionExpression: e.Condition(), ExpressionAttributeNames: e.Names(), ExpressionAttributeValues: e.Values()})
	return err
}
