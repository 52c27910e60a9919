package reconciler

import (
	"context"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestTheReconcilerFinishesWhatSubmittersLeft(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	subs := dynamo.Submissions{Store: h.store}
	h.r.Submissions = Submissions{Store: subs, Queue: queue.NewSubmissions(h.env.SQS, h.env.QueueURL),
		Events: eventbus.New(h.env.EventBridge, h.env.Bus, h.env.Bucket, h.store, time.Now), UnknownAfter: 2 * time.Hour}
	h.r.DeadLetters = nil // nothing dead-letters here; each scan would wait its second
	accept := func(key string, age time.Duration) string {
		s, err := submission.New(key, []byte(`{"api":"veo","input":{"prompt":"x"}}`), testNow.Add(-age), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		subs.Create(ctx, s)
		return s.ID
	}
	lost := accept("lost-message", 25*time.Minute)
	waiting := accept("waiting", 5*time.Minute)
	crashed := accept("crashed", 10*time.Minute)
	if _, err := subs.Update(ctx, submission.Claim(crashed, "dead", testNow.Add(-3*time.Minute))); err != nil {
		t.Fatal(err)
	}
	unknown := accept("unknown", 3*time.Hour)
	subs.Update(ctx, submission.Claim(unknown, "s", testNow.Add(-3*time.Hour)))
	subs.Update(ctx, submission.MarkUnknown(unknown, "s", "no answer", testNow.Add(-3*time.Hour)))
	rep := h.run(t)
	if rep.SubmissionsResent != 1 || rep.SubmitUnknown != 1 {
		t.Errorf("report %+v", rep)
	}
	if n := emulators.QueueDepth(h.env.QueueName); n != 1 {
		t.Errorf("%d messages, want one for the submission whose message is gone", n)
	}
	for id, want := range map[string]string{lost: submission.Accepted, waiting: submission.Accepted, crashed: submission.Unknown, unknown: submission.SubmitUnknown} {
		if got, _, _ := subs.Get(ctx, id); got.Status != want {
			t.Errorf("%s is %s, want %s", id, got.Status, want)
		}
	}
	if evs := h.env.Events(); len(evs) != 1 || evs[0].DetailType != taskevent.SubmitUnknown {
		t.Errorf("events %+v", evs)
	}
	t.Run("a second run sends nothing again", func(t *testing.T) {
		if rep := h.run(t); rep.SubmissionsResent != 0 || emulators.QueueDepth(h.env.QueueName) != 1 {
			t.Errorf("report %+v", rep)
		}
	})
}
