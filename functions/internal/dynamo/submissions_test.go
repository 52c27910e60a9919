package dynamo_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestSubmissionsOnTheEmulator(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	subs := dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)}
	now := time.Unix(1764300000, 0).UTC()
	sub, err := submission.New("order-1", []byte(`{"api":"veo","input":{"prompt":"x"},"labels":{"user":"7"}}`), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := subs.Create(ctx, sub); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	t.Run("a second create returns the first, body hash and all", func(t *testing.T) {
		got, created, err := subs.Create(ctx, sub)
		if err != nil || created || got.ID != sub.ID || got.BodyHash != sub.BodyHash || string(got.Input) != `{"prompt":"x"}` || got.Labels["user"] != "7" {
			t.Errorf("%+v %v %v", got, created, err)
		}
	})
	t.Run("only one of two submitters claims it", func(t *testing.T) {
		a, errA := subs.Update(ctx, submission.Claim(sub.ID, "a", now))
		_, errB := subs.Update(ctx, submission.Claim(sub.ID, "b", now))
		if errA != nil || a.ClaimedBy != "a" || a.Attempts != 1 || !errors.Is(errB, submission.ErrStale) {
			t.Errorf("a: %+v %v; b: %v", a, errA, errB)
		}
	})
	t.Run("an unknown submission is linked by its task's callback", func(t *testing.T) {
		if _, err := subs.Update(ctx, submission.MarkUnknown(sub.ID, "a", "no answer", now)); err != nil {
			t.Fatal(err)
		}
		if open, err := subs.Open(ctx, submission.Unknown, now.Add(time.Second), 10); err != nil || len(open) != 1 {
			t.Errorf("open unknown %+v %v", open, err)
		}
		got, err := subs.Update(ctx, submission.Link(sub.ID, "veo_task_1", now))
		if err != nil || got.Status != submission.Submitted || got.TaskID != "veo_task_1" || got.ClaimedBy != "" {
			t.Errorf("%+v %v", got, err)
		}
		if _, err := subs.Update(ctx, submission.MarkSubmitted(sub.ID, "a", "other", now)); !errors.Is(err, submission.ErrStale) {
			t.Errorf("a late answer changed a linked submission: %v", err)
		}
	})
}

func TestNoWindowHoldsMoreThanTheRate(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	subs := dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)}
	now := time.Unix(1764300000, 0).UTC()
	var mu sync.Mutex
	var taken, waiting int
	var wg sync.WaitGroup
	for range 12 {
		wg.Go(func() {
			wait, _, err := subs.TakeSlot(ctx, "acct", 5, 10*time.Second, 0, at(now))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Error(err)
			case wait == 0:
				taken++
			case wait == 10*time.Second:
				waiting++
			default:
				t.Errorf("wait %v", wait)
			}
		})
	}
	wg.Wait()
	if taken != 5 || waiting != 7 {
		t.Errorf("%d slots taken at once and %d told to wait, want 5 and 7", taken, waiting)
	}
	t.Run("a slot frees once its call leaves the window", func(t *testing.T) {
		if wait, _, err := subs.TakeSlot(ctx, "acct", 5, 10*time.Second, 0, at(now.Add(10*time.Second+time.Millisecond))); wait != 0 || err != nil {
			t.Errorf("wait %v %v", wait, err)
		}
	})
	t.Run("a slot dated by its call's answer stays in the window until the answer leaves it", func(t *testing.T) {
		_, taken, err := subs.TakeSlot(ctx, "redated", 1, 10*time.Second, 0, at(now))
		if err != nil || !taken.Equal(now) {
			t.Fatalf("slot dated %v, %v", taken, err)
		}
		if err := subs.Redate(ctx, "redated", taken, now.Add(3*time.Second)); err != nil {
			t.Fatal(err)
		}
		wait, _, err := subs.TakeSlot(ctx, "redated", 1, 10*time.Second, 0, at(now.Add(10*time.Second+time.Millisecond)))
		if err != nil || wait != 3*time.Second-time.Millisecond {
			t.Errorf("wait %v, %v: want the answer's window, to %v", wait, err, now.Add(13*time.Second))
		}
	})
	t.Run("a slot whose call is still out holds its place past the window", func(t *testing.T) {
		_, taken, err := subs.TakeSlot(ctx, "slow", 1, 10*time.Second, 25*time.Second, at(now))
		if err != nil || !taken.Equal(now.Add(25*time.Second)) {
			t.Fatalf("slot dated %v, %v: want the latest its call may reach the platform", taken, err)
		}
		if wait, _, err := subs.TakeSlot(ctx, "slow", 1, 10*time.Second, 25*time.Second, at(now.Add(11*time.Second))); err != nil || wait != 10*time.Second {
			t.Errorf("wait %v, %v: a call slower than the window keeps its place, and is waited for a window at a time, as if answered now", wait, err)
		}
	})
	t.Run("without events an ended submission leaves the open index", func(t *testing.T) {
		quiet := dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithoutEvents)}
		sub, _ := submission.New("no-bus", []byte(`{"api":"veo","input":{"prompt":"x"}}`), now, time.Hour)
		quiet.Create(ctx, sub)
		quiet.Update(ctx, submission.Claim(sub.ID, "o", now))
		if _, err := quiet.Update(ctx, submission.MarkRefused(sub.ID, "o", 422, "bad", now)); err != nil {
			t.Fatal(err)
		}
		out, err := env.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: &env.Table, Key: map[string]types.AttributeValue{"taskId": &types.AttributeValueMemberS{Value: "submission#" + sub.ID}}})
		if err != nil || out.Item["openStatus"] != nil {
			t.Errorf("item %v, %v: no bus will tell its end, so nothing should wait for it", out.Item, err)
		}
	})
	t.Run("a change that tells an end cannot also move the status", func(t *testing.T) {
		c := submission.MarkNotified(submission.Submission{ID: "sub_x", Status: submission.Submitted}, now)
		c.To = submission.SubmitFailed
		if _, err := subs.Update(ctx, c); err == nil || errors.Is(err, submission.ErrStale) {
			t.Errorf("err %v: want a refusal before DynamoDB sees both SET and REMOVE of openStatus", err)
		}
	})
	t.Run("another account has a window of its own", func(t *testing.T) {
		if wait, _, err := subs.TakeSlot(ctx, "other", 5, 10*time.Second, 0, at(now)); wait != 0 || err != nil {
			t.Errorf("wait %v %v", wait, err)
		}
	})
}

func TestAnAccountOutOfCreditsIsCheckedOnceAtATime(t *testing.T) {
	ctx := context.Background()
	env := emulators.New(t, emulators.Options{})
	subs := dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)}
	now := time.Unix(1764300000, 0).UTC()
	if err := subs.Pause(ctx, "acct", now); err != nil {
		t.Fatal(err)
	}
	c, err := subs.Credits(ctx, "acct")
	if err != nil || !c.Paused() {
		t.Fatalf("%+v %v", c, err)
	}
	first, err1 := subs.ClaimCheck(ctx, "acct", c, now)
	second, err2 := subs.ClaimCheck(ctx, "acct", c, now)
	if !first || second || err1 != nil || err2 != nil {
		t.Errorf("claims %v %v (%v %v): one submitter asks the credit endpoint", first, second, err1, err2)
	}
	if err := subs.Resume(ctx, "acct"); err != nil {
		t.Fatal(err)
	}
	if c, err := subs.Credits(ctx, "acct"); err != nil || c.Paused() {
		t.Errorf("%+v %v", c, err)
	}
}

// at is a clock stopped at t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
