package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

// fakeDB is a function-field fake for the paths emulators do not take.
type fakeDB struct {
	put    func(*dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error)
	update func(*dynamodb.UpdateItemInput) (*dynamodb.UpdateItemOutput, error)
	get    func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error)
}

func (f fakeDB) PutItem(_ context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return f.put(in)
}
func (f fakeDB) UpdateItem(_ context.Context, in *dynamodb.UpdateItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return f.update(in)
}
func (f fakeDB) GetItem(_ context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return f.get(in)
}

func (f fakeDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, errors.New("not used")
}

func TestCreateReadsTheOldItemFromTheFailedCondition(t *testing.T) {
	old := map[string]types.AttributeValue{
		"taskId": &types.AttributeValueMemberS{Value: "t1"}, "status": &types.AttributeValueMemberS{Value: "stored"},
		"deliveries": &types.AttributeValueMemberN{Value: "4"},
	}
	db := fakeDB{
		put: func(in *dynamodb.PutItemInput) (*dynamodb.PutItemOutput, error) {
			if in.ReturnValuesOnConditionCheckFailure != types.ReturnValuesOnConditionCheckFailureAllOld {
				t.Error("the put must ask for the old item")
			}
			return nil, &types.ConditionalCheckFailedException{Item: old}
		},
		get: func(*dynamodb.GetItemInput) (*dynamodb.GetItemOutput, error) {
			t.Error("a repeat must cost no extra read on DynamoDB")
			return nil, errors.New("unexpected")
		},
	}
	got, created, err := dynamo.New(db, "tasks", dynamo.WithoutEvents).Create(context.Background(), task.Task{ID: "t1"})
	if err != nil || created || got.Status != task.StatusStored || got.Deliveries != 4 {
		t.Errorf("got %+v created=%v err=%v", got, created, err)
	}
}

func TestStoreOnTheEmulator(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	s := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	now := time.Unix(1764300000, 0).UTC()
	rec := task.Task{ID: "t1", Status: task.StatusQueued, Code: 200, Msg: "ok", API: "veo", Sources: []string{"u0", "u1"}, Deliveries: 1, ReceivedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if _, created, err := s.Create(ctx, rec); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}

	t.Run("a second create returns the existing record", func(t *testing.T) {
		got, created, err := s.Create(ctx, task.Task{ID: "t1", Status: task.StatusFailed})
		if err != nil || created || got.Status != task.StatusQueued || got.API != "veo" || len(got.Sources) != 2 {
			t.Errorf("got %+v created=%v err=%v", got, created, err)
		}
	})
	t.Run("an update from the wrong status is stale and its error holds the current record", func(t *testing.T) {
		_, err := s.Update(ctx, task.MarkNotified(task.Task{ID: "t1", Status: task.StatusFailed}, now))
		var stale *task.StaleError
		if !errors.Is(err, task.ErrStale) || !errors.As(err, &stale) || stale.Current.Status != task.StatusQueued {
			t.Errorf("err=%v", err)
		}
	})
	t.Run("an update of a missing record is stale", func(t *testing.T) {
		if _, err := s.Update(ctx, task.ReleaseLease("missing", "copier-1")); !errors.Is(err, task.ErrStale) {
			t.Errorf("err=%v", err)
		}
	})
	t.Run("stored records the objects once", func(t *testing.T) {
		objects := []task.Object{{Key: "tasks/t1/0.png", Bytes: 10, SHA256: "ab", ContentType: "image/png", Source: "u0"}}
		if _, err := s.Update(ctx, task.MarkStored("t1", "", objects, now)); err != nil {
			t.Fatal(err)
		}
		got, _, _ := s.Get(ctx, "t1")
		if got.Status != task.StatusStored || len(got.Objects) != 1 || got.Objects[0] != objects[0] || !got.StoredAt.Equal(now) {
			t.Errorf("got %+v", got)
		}
		if _, err := s.Update(ctx, task.MarkStored("t1", "", objects, now)); !errors.Is(err, task.ErrStale) {
			t.Errorf("a second store must be stale, got %v", err)
		}
		if _, err := s.Update(ctx, task.MarkCopyFailed("t1", "", "too late", now)); !errors.Is(err, task.ErrStale) {
			t.Errorf("a stored task must not become copy_failed, got %v", err)
		}
	})
}

func TestTheOpenIndexFollowsEveryStatusChange(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	s := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	old := time.Unix(1764290000, 0).UTC()
	now := old.Add(time.Hour)
	s.Create(ctx, task.NewPending("p", "veo", nil, old, time.Hour))
	s.Create(ctx, task.Task{ID: "r", Status: task.StatusQueued, Sources: []string{"u"}, UpdatedAt: old, ReceivedAt: old})
	open := func(status task.Status) []string {
		tasks, err := s.Open(ctx, status, now.Add(time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, task := range tasks {
			ids = append(ids, task.ID)
		}
		return ids
	}
	if got := open(task.StatusPending); len(got) != 1 || got[0] != "p" {
		t.Errorf("pending %v", got)
	}
	if got, _ := s.Open(ctx, task.StatusPending, old, 10); len(got) != 0 {
		t.Errorf("a task updated at the bound is not older than it: %v", got)
	}
	if got := open(task.StatusQueued); len(got) != 1 || got[0] != "r" {
		t.Errorf("queued %v", got)
	}
	s.Update(ctx, task.MarkStored("r", "", []task.Object{{Key: "k"}}, now))
	if got := open(task.StatusQueued); len(got) != 0 {
		t.Errorf("a stored task is still open: %v", got)
	}
	t.Run("a claim wins once", func(t *testing.T) {
		c := task.Claim(task.Task{ID: "p", Status: task.StatusPending, UpdatedAt: old}, now)
		if _, err := s.Update(ctx, c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, c); !errors.Is(err, task.ErrStale) {
			t.Errorf("a second claim with the same updatedAt: %v", err)
		}
	})
}

func TestALeaseKeepsOtherCopiersOff(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	s := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	now := time.Unix(1764300000, 0).UTC()
	if _, _, err := s.Create(ctx, task.Task{ID: "l1", Status: task.StatusQueued, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	a := task.Lease{Owner: "a", Until: now.Add(time.Minute)}
	objects := []task.Object{{Key: "tasks/l1/0.png", Bytes: 1, SHA256: "ab"}}
	steps := []struct {
		name string
		do   func() error
		want error
	}{
		{"the first copier takes the lease", func() error { return updated(s.Update(ctx, task.TakeLease("l1", a, 2, now))) }, nil},
		{"a second copier cannot take a live lease", func() error {
			return updated(s.Update(ctx, task.TakeLease("l1", task.Lease{Owner: "b", Until: now.Add(2 * time.Minute)}, 3, now)))
		}, task.ErrStale},
		{"another copier cannot record an upload", func() error {
			return updated(s.Update(ctx, task.RecordUpload("l1", "b", task.Upload{Key: "k", ID: "u"})))
		}, task.ErrStale},
		{"the reconciler cannot seize a task under a live lease", func() error {
			return updated(s.Update(ctx, task.Seize("l1", 0, task.Lease{Owner: "reconciler", Until: now.Add(time.Minute)}, now)))
		}, task.ErrStale},
		{"another copier cannot mark it stored", func() error { _, err := s.Update(ctx, task.MarkStored("l1", "b", objects, now)); return err }, task.ErrStale},
		{"the holder records its upload", func() error {
			return updated(s.Update(ctx, task.RecordUpload("l1", "a", task.Upload{Key: "k", ID: "u"})))
		}, nil},
		{"once expired, the lease goes to the next copier", func() error {
			return updated(s.Update(ctx, task.TakeLease("l1", task.Lease{Owner: "c", Until: now.Add(3 * time.Minute)}, 4, now.Add(time.Minute))))
		}, nil},
		{"the expired holder can no longer mark it stored", func() error { _, err := s.Update(ctx, task.MarkStored("l1", "a", objects, now)); return err }, task.ErrStale},
		{"the new holder marks it stored", func() error { _, err := s.Update(ctx, task.MarkStored("l1", "c", objects, now)); return err }, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			if err := st.do(); !errors.Is(err, st.want) || (st.want == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, st.want)
			}
		})
	}
	got, _, _ := s.Get(ctx, "l1")
	if got.Status != task.StatusStored || got.Lease != (task.Lease{}) || len(got.Uploads) != 0 || got.Receives != 4 {
		t.Errorf("record %+v: stored, with no lease and no uploads left, after 4 deliveries", got)
	}
}

func TestARecordWithATimeItCannotReadIsAnError(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	item := map[string]types.AttributeValue{
		"taskId": &types.AttributeValueMemberS{Value: "bad"}, "status": &types.AttributeValueMemberS{Value: "queued"},
		"updatedAt": &types.AttributeValueMemberS{Value: "2026-12-02 18:30"},
	}
	if _, err := env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &env.Table, Item: item}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents).Get(ctx, "bad"); err == nil {
		t.Error("a record whose updatedAt is not RFC 3339 read as if it had none")
	}
}

func TestRequeueMovesACopyFailedTaskBackToQueued(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	s := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	now := time.Unix(1764300000, 0).UTC()
	failed := func(id string, lease task.Lease) {
		t.Helper()
		if _, _, err := s.Create(ctx, task.Task{ID: id, Status: task.StatusQueued, Code: 200, Sources: []string{"https://x/a.png"}, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := updated(s.Update(ctx, task.TakeLease(id, task.Lease{Owner: "old", Until: now.Add(time.Second)}, 5, now))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(ctx, task.MarkCopyFailed(id, "old", "source gone", now)); err != nil {
			t.Fatal(err)
		}
		if err := updated(s.Update(ctx, task.MarkNotified(task.Task{ID: id, Status: task.StatusCopyFailed}, now))); err != nil {
			t.Fatal(err)
		}
		if lease.Owner != "" {
			if _, err := env.DynamoDB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: &env.Table, Key: map[string]types.AttributeValue{"taskId": &types.AttributeValueMemberS{Value: id}},
				UpdateExpression:          aws.String("SET leaseOwner = :o, leaseUntil = :u"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":o": &types.AttributeValueMemberS{Value: lease.Owner}, ":u": &types.AttributeValueMemberN{Value: fmt.Sprint(lease.Until.UnixMilli())}},
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	later := now.Add(time.Minute)
	carrier := task.Lease{Owner: "carrier", Until: later.Add(time.Minute)}
	requeue := func(id string) error { return updated(s.Update(ctx, task.Requeue(id, 1, carrier, 1, later))) }
	t.Run("a copy_failed task is queued again, as new, under the lease of the copier that carries the request", func(t *testing.T) {
		failed("r1", task.Lease{})
		if err := requeue("r1"); err != nil {
			t.Fatal(err)
		}
		got, _, _ := s.Get(ctx, "r1")
		if got.Status != task.StatusQueued || got.Error != "" || !got.NotifiedAt.IsZero() || got.Lease != carrier || got.Receives != 1 ||
			got.Generation != 1 || !got.UpdatedAt.Equal(later) {
			t.Errorf("record %+v", got)
		}
		open, err := s.Open(ctx, task.StatusQueued, later.Add(time.Second), 10)
		if err != nil || len(open) != 1 || open[0].ID != "r1" {
			t.Errorf("open queued tasks %+v, %v: a requeued task is back in the open index", open, err)
		}
	})
	t.Run("a task a copier holds is not requeued under it", func(t *testing.T) {
		failed("r2", task.Lease{Owner: "live", Until: later.Add(time.Minute)})
		if err := requeue("r2"); !errors.Is(err, task.ErrStale) {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a task in any other status, or requeued already, is not requeued", func(t *testing.T) {
		if err := requeue("r1"); !errors.Is(err, task.ErrStale) {
			t.Errorf("a queued task: error %v", err)
		}
		if err := requeue("nobody"); !errors.Is(err, task.ErrStale) {
			t.Errorf("no record: error %v", err)
		}
	})
}

// updated is the error of an update whose record the test does not need.
func updated(_ task.Task, err error) error { return err }
