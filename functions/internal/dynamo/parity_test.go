package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/emulators"
)

// TestEveryChangeMeansOnTheTableWhatApplySays holds the store to the model:
// every constructor of a Change, over records across status × lease ×
// uploads × notifiedAt × queueing × resend, is made both by task.Apply and
// by the store on the DynamoDB emulator, and the two must agree on whether
// it applies and on the item that results, index attribute included.
func TestEveryChangeMeansOnTheTableWhatApplySays(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	for _, events := range []dynamo.Events{dynamo.WithEvents, dynamo.WithoutEvents} {
		s := dynamo.New(env.DynamoDB, env.Table, events)
		n := 0
		for _, rec := range parityRecords() {
			for _, c := range parityChanges() {
				n++
				name := fmt.Sprintf("events=%v %s on %s", events, c.name, describe(rec))
				rec.ID = fmt.Sprintf("p%d-%v", n, events)
				change := c.make(rec)
				want, applyErr := task.Apply(rec, change)
				before, err := s.Item(rec)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &env.Table, Item: before}); err != nil {
					t.Fatal(err)
				}
				_, storeErr := s.Update(ctx, change)
				if errors.Is(applyErr, task.ErrStale) != errors.Is(storeErr, task.ErrStale) || (storeErr != nil && !errors.Is(storeErr, task.ErrStale)) {
					t.Errorf("%s: Apply says %v, the table %v", name, applyErr, storeErr)
					continue
				}
				wantItem, err := s.Item(want)
				if err != nil {
					t.Fatal(err)
				}
				out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &env.Table, Key: map[string]types.AttributeValue{schema.TaskID: &types.AttributeValueMemberS{Value: rec.ID}}, ConsistentRead: aws.Bool(true)})
				if err != nil {
					t.Fatal(err)
				}
				if got, want := plain(t, out.Item), plain(t, wantItem); !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\n table %v\n Apply %v", name, got, want)
				}
			}
		}
		if n < 1000 {
			t.Errorf("only %d cases: the generator lost its range", n)
		}
	}
}

func plain(t *testing.T, item map[string]types.AttributeValue) map[string]any {
	t.Helper()
	var m map[string]any
	if err := attributevalue.UnmarshalMap(item, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

var parityNow = time.Unix(1764300000, 0).UTC()

// parityRecords are the records every change is tried on.
func parityRecords() []task.Task {
	leases := []struct {
		lease    task.Lease
		receives int
	}{
		{task.Lease{}, 0},
		{task.Lease{}, 2},
		{task.Lease{Owner: "me", Until: parityNow.Add(time.Minute)}, 1},
		{task.Lease{Owner: "me", Until: parityNow.Add(-time.Minute)}, 1},
		{task.Lease{Owner: "other", Until: parityNow.Add(time.Minute)}, 2},
		{task.Lease{Owner: "other", Until: parityNow.Add(-time.Minute)}, 2},
	}
	var recs []task.Task
	for _, status := range []task.Status{task.StatusPending, task.StatusQueued, task.StatusStored, task.StatusFailed, task.StatusCopyFailed} {
		for _, l := range leases {
			for _, uploads := range [][]task.Upload{nil, {{Key: "tasks/x/0.mp4", ID: "up-1"}}} {
				for _, notified := range []time.Time{{}, parityNow.Add(-time.Hour)} {
					if !notified.IsZero() && !task.Final(status) {
						continue // only an ended task has an event
					}
					for _, generation := range []int{0, 1} {
						for _, resent := range []time.Time{{}, parityNow.Add(-2 * time.Hour)} {
							if !resent.IsZero() && status != task.StatusQueued {
								continue // only a queued task is resent
							}
							r := task.Task{
								Status: status, Code: 200, Msg: "ok", API: "veo", Sources: []string{"https://x/a.png"}, Deliveries: 1,
								ReceivedAt: parityNow.Add(-3 * time.Hour), UpdatedAt: parityNow.Add(-time.Hour), ExpiresAt: parityNow.Add(time.Hour),
								Lease: l.lease, Receives: l.receives, Uploads: uploads, Generation: generation, ResentAt: resent, NotifiedAt: notified,
								SubmissionID: map[bool]string{true: "sub_0"}[generation == 1], // a record with and one without
							}
							if task.Final(status) {
								r.NotifiedAt = notified
							}
							if status == task.StatusStored {
								r.Objects, r.StoredAt = []task.Object{{Key: "tasks/x/0.png", Bytes: 3, SHA256: "ab", ContentType: "image/png", Source: "https://x/a.png"}}, r.UpdatedAt
							}
							if status == task.StatusCopyFailed {
								r.Error = "source gone"
							}
							recs = append(recs, r)
						}
					}
				}
			}
		}
	}
	return recs
}

type parityChange struct {
	name string
	make func(task.Task) task.Change
}

// parityChanges are every constructor, with the arguments that make it
// apply to some records and not to others.
func parityChanges() []parityChange {
	later := parityNow.Add(time.Second)
	mine := task.Lease{Owner: "me", Until: parityNow.Add(10 * time.Minute)}
	success := task.Callback{TaskID: "x", Code: 200, Msg: "success", API: "veo", Sources: []string{"https://x/b.png", "https://x/c.png"}, Labels: map[string]string{"user": "7"}}
	failure := task.Callback{TaskID: "x", Code: 501, Msg: "failed", API: "veo"}
	progress := task.Callback{TaskID: "x", Code: 200, Msg: "first", API: "suno", Sources: []string{"https://x/t.mp3"}, Progress: true}
	repeat := func(cb task.Callback) func(task.Task) task.Change {
		return func(t task.Task) task.Change { c, _, _ := task.Repeat(t, cb, later, time.Hour); return c }
	}
	moved := func(t task.Task) task.Task { t.UpdatedAt = t.UpdatedAt.Add(time.Second); return t }
	return []parityChange{
		{"a repeated success", repeat(success)},
		{"a repeated failure", repeat(failure)},
		{"a progress callback", repeat(progress)},
		{"a success through a submission", repeat(task.Callback{TaskID: "x", Code: 200, API: "veo", Sources: []string{"https://x/b.png"}, SubmissionID: "sub_1"})},
		{"a polled success", repeat(task.Callback{TaskID: "x", Code: 200, API: "veo", Sources: []string{"https://x/b.png"}, Polled: true})},
		{"a claim", func(t task.Task) task.Change { return task.Claim(t, later) }},
		{"a claim of a record moved since", func(t task.Task) task.Change { return task.Claim(moved(t), later) }},
		{"an expiry", func(t task.Task) task.Change { return task.Expire(t, "retention over", later) }},
		{"a resend", func(t task.Task) task.Change { return task.MarkResent(t, later) }},
		{"a resend taken back", func(t task.Task) task.Change { return task.UnmarkResent(t, t.ResentAt) }},
		{"a resend of a record read before another run's", func(t task.Task) task.Change {
			t.ResentAt = time.Time{}
			return task.MarkResent(t, later)
		}},
		{"an event accepted", func(t task.Task) task.Change { return task.MarkNotified(t, later) }},
		{"an event of another queueing accepted", func(t task.Task) task.Change {
			t.Generation++
			return task.MarkNotified(t, later)
		}},
		{"a lease taken", func(t task.Task) task.Change { return task.TakeLease(t.ID, mine, 3, parityNow) }},
		{"a requeue to queueing 1", func(t task.Task) task.Change { return task.Requeue(t.ID, 1, mine, 4, parityNow) }},
		{"a requeue to queueing 2", func(t task.Task) task.Change { return task.Requeue(t.ID, 2, mine, 1, parityNow) }},
		{"a seizure of queueing 0", func(t task.Task) task.Change { return task.Seize(t.ID, 0, mine, parityNow) }},
		{"a seizure of queueing 1", func(t task.Task) task.Change { return task.Seize(t.ID, 1, mine, parityNow) }},
		{"a lease released", func(t task.Task) task.Change { return task.ReleaseLease(t.ID, "me") }},
		{"an upload recorded", func(t task.Task) task.Change {
			return task.RecordUpload(t.ID, "me", task.Upload{Key: "tasks/x/1.mp4", ID: "up-2"})
		}},
		{"uploads forgotten", func(t task.Task) task.Change { return task.ForgetUploads(t.ID, "me") }},
		{"a copy stored", func(t task.Task) task.Change {
			return task.MarkStored(t.ID, "me", []task.Object{{Key: "tasks/x/0.png", Bytes: 9, SHA256: "cd", ContentType: "image/png", Source: "https://x/a.png"}}, later)
		}},
		{"a copy failed", func(t task.Task) task.Change { return task.MarkCopyFailed(t.ID, "me", "source gone for good", later) }},
	}
}

func describe(t task.Task) string {
	return fmt.Sprintf("{%s lease=%s until=%s receives=%d uploads=%d notified=%v generation=%d resent=%v}", t.Status, t.Lease.Owner,
		t.Lease.Until.Sub(parityNow), t.Receives, len(t.Uploads), !t.NotifiedAt.IsZero(), t.Generation, !t.ResentAt.IsZero())
}
