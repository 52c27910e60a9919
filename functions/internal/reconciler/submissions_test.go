package reconciler

import (
	"context"
	"encoding/json"
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

func TestTheReconcilerAnnouncesEveryEndOnce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	subs := dynamo.Submissions{Store: h.store}
	bus := eventbus.New(h.env.EventBridge, h.env.Bus, h.env.Bucket, h.store, func() time.Time { return testNow })
	bus.Submissions = subs
	h.r.Submissions = Submissions{Store: subs, Queue: queue.NewSubmissions(h.env.SQS, h.env.QueueURL), Events: bus, UnknownAfter: 2 * time.Hour}
	h.r.DeadLetters = nil
	accept := func(key string) string {
		s, _ := submission.New(key, []byte(`{"api":"veo","input":{"prompt":"x"}}`), testNow.Add(-time.Hour), 2*time.Hour)
		subs.Create(ctx, s)
		return s.ID
	}
	// Its submitter ended it, then died before it put the event.
	died := accept("submitter-died")
	subs.Update(ctx, submission.Claim(died, "s", testNow.Add(-10*time.Minute)))
	subs.Update(ctx, submission.MarkSubmitted(died, "s", "veo_1", testNow.Add(-10*time.Minute)))
	// Its answer was lost; the callback linked it, and leaves the event.
	linked := accept("answer-lost")
	subs.Update(ctx, submission.Claim(linked, "s", testNow.Add(-10*time.Minute)))
	subs.Update(ctx, submission.MarkUnknown(linked, "s", "no answer", testNow.Add(-10*time.Minute)))
	subs.Update(ctx, submission.Link(linked, "veo_2", testNow.Add(-5*time.Minute)))
	// Ended a moment ago: its submitter may still be putting the event.
	recent := accept("just-ended")
	subs.Update(ctx, submission.Claim(recent, "s", testNow))
	subs.Update(ctx, submission.MarkRefused(recent, "s", 422, "bad input", testNow))

	h.run(t)
	told := map[string]string{}
	for _, ev := range h.env.Events() {
		var d taskevent.SubmissionDetail
		json.Unmarshal(ev.Detail, &d)
		told[d.SubmissionID] = ev.DetailType
	}
	if len(h.env.Events()) != 2 || told[died] != taskevent.Submitted || told[linked] != taskevent.Submitted {
		t.Errorf("events %v: want Task Submitted for the two ended long enough ago", told)
	}
	for id, want := range map[string]bool{died: true, linked: true, recent: false} {
		if got, _, _ := subs.Get(ctx, id); got.NotifiedAt.IsZero() == want {
			t.Errorf("%s notified at %v", id, got.NotifiedAt)
		}
	}
	t.Run("a second run puts nothing again", func(t *testing.T) {
		h.run(t)
		if n := len(h.env.Events()); n != 2 {
			t.Errorf("%d events", n)
		}
	})
}
