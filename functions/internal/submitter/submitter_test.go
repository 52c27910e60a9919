package submitter_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/submitter"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
)

type harness struct {
	env      *emulators.Env
	platform *platform.API
	subs     dynamo.Submissions
	store    *dynamo.Store
	s        *submitter.Submitter
	now      time.Time
	mu       sync.Mutex
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	api := platform.ServeAPI("api-key")
	tb.Cleanup(api.Close)
	store := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	h := &harness{env: env, platform: api, store: store, subs: dynamo.Submissions{Store: store}, now: time.Unix(1764300000, 0).UTC()}
	h.s = &submitter.Submitter{
		Submissions: h.subs, Pace: h.subs, Account: h.subs, Platform: kieapi.New(api.URL, "api-key"), Tasks: store,
		Queue: queue.NewSubmissions(env.SQS, env.QueueURL), Events: eventbus.New(env.EventBridge, env.Bus, env.Bucket, store, time.Now),
		CallbackURL: callbackAt("https://cb.example/?token=t0k"), Rate: 18, Window: 10 * time.Second, MaxWait: 24 * time.Hour, TTL: time.Hour,
		Metrics: metrics.New(&capture.Buffer{}, "kiehook", time.Now), Logger: slog.New(slog.DiscardHandler), Now: h.clock,
	}
	return h
}

func callbackAt(u string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return u, nil }
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

// accept keeps a submission as POST /submissions does, and returns its id.
func (h *harness) accept(tb testing.TB, key string) string {
	tb.Helper()
	sub, err := submission.New(key, []byte(`{"api":"veo","input":{"prompt":"a cat","model":"veo3"},"labels":{"user":"7"}}`), h.clock(), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := h.subs.Create(context.Background(), sub); err != nil {
		tb.Fatal(err)
	}
	return sub.ID
}

// deliver hands the submitter one batch of the ids' messages, and returns
// the ids of the messages it failed.
func (h *harness) deliver(tb testing.TB, ids ...string) []string {
	tb.Helper()
	var ev events.SQSEvent
	for i, id := range ids {
		body, _ := json.Marshal(schema.SubmitMessage{SubmissionID: id})
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: string(rune('a' + i)), Body: string(body)})
	}
	resp, err := h.s.Handle(context.Background(), ev)
	if err != nil {
		tb.Fatal(err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

func (h *harness) get(tb testing.TB, id string) submission.Submission {
	tb.Helper()
	s, found, err := h.subs.Get(context.Background(), id)
	if err != nil || !found {
		tb.Fatalf("submission %s: %v %v", id, found, err)
	}
	return s
}

func (h *harness) eventTypes() []string {
	var types []string
	for _, ev := range h.env.Events() {
		types = append(types, ev.DetailType)
	}
	return types
}

func TestASubmissionIsCreatedOnceWithItsCallbackURL(t *testing.T) {
	h := newHarness(t)
	id := h.accept(t, "order-1")
	if failed := h.deliver(t, id, id); len(failed) != 0 { // SQS handed the message twice, at once
		t.Fatalf("failed %v", failed)
	}
	calls := h.platform.Creates()
	if len(calls) != 1 {
		t.Fatalf("%d create calls, want 1", len(calls))
	}
	u, _ := url.Parse(calls[0].CallBackURL)
	if q := u.Query(); u.Host != "cb.example" || q.Get("token") != "t0k" || q.Get("user") != "7" || q.Get("sid") != id {
		t.Errorf("callBackUrl %s: the callback's, with its token, the labels and the submission's id", calls[0].CallBackURL)
	}
	sub := h.get(t, id)
	if sub.Status != submission.Submitted || sub.TaskID != calls[0].TaskID || sub.Attempts != 1 || sub.ClaimedBy != "" {
		t.Errorf("submission %+v", sub)
	}
	rec, found, _ := h.store.Get(context.Background(), sub.TaskID)
	if !found || rec.Status != "pending" || rec.SubmissionID != id || rec.Labels["user"] != "7" {
		t.Errorf("task record %+v: pending, polled should its callback never come", rec)
	}
	if types := h.eventTypes(); len(types) != 1 || types[0] != taskevent.Submitted {
		t.Errorf("events %v", types)
	}
	if failed := h.deliver(t, id); len(failed) != 0 || len(h.platform.Creates()) != 1 {
		t.Errorf("a late redelivery made another call: %d", len(h.platform.Creates()))
	}
}

// losingClaims are the submissions, whose first claim is written and its
// answer lost, as a connection reset after the request does.
type losingClaims struct {
	dynamo.Submissions
	lost bool
}

func (l *losingClaims) Update(ctx context.Context, c submission.Change) (submission.Submission, error) {
	sub, err := l.Submissions.Update(ctx, c)
	if c.Claim != "" && !l.lost {
		l.lost = true
		return submission.Submission{}, errors.New("connection reset by peer")
	}
	return sub, err
}

func TestAClaimWhoseAnswerWasLostIsGivenBackAndTheNextDeliverySendsIt(t *testing.T) {
	h := newHarness(t)
	h.s.Submissions = &losingClaims{Submissions: h.subs}
	id := h.accept(t, "order-lost-claim")
	if failed := h.deliver(t, id); len(failed) != 1 {
		t.Fatalf("failed %v: the message is delivered again", failed)
	}
	if sub := h.get(t, id); sub.Status != submission.Accepted || sub.ClaimedBy != "" || len(h.platform.Creates()) != 0 {
		t.Fatalf("submission %+v, %d create calls: want accepted, unclaimed, not sent", sub, len(h.platform.Creates()))
	}
	h.advance(6 * time.Minute) // the queue's visibility timeout: past the time a claim looks abandoned
	if failed := h.deliver(t, id); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if sub := h.get(t, id); sub.Status != submission.Submitted || len(h.platform.Creates()) != 1 {
		t.Errorf("submission %+v, %d create calls: want submitted, once", sub, len(h.platform.Creates()))
	}
}

// sentTwice are the submissions, whose first change that matches the SDK
// sends twice: the first's answer lost, the second finds its effect.
type sentTwice struct {
	dynamo.Submissions
	matches func(submission.Change) bool
	sent    bool
}

func (s *sentTwice) Update(ctx context.Context, c submission.Change) (submission.Submission, error) {
	if s.matches(c) && !s.sent {
		s.sent = true
		s.Submissions.Update(ctx, c)
	}
	return s.Submissions.Update(ctx, c)
}

func TestAChangeTheSDKSentTwiceIsTheSubmittersOwn(t *testing.T) {
	t.Run("a claim sent twice is the submitter's, which sends the submission", func(t *testing.T) {
		h := newHarness(t)
		h.s.Submissions = &sentTwice{Submissions: h.subs, matches: func(c submission.Change) bool { return c.Claim != "" }}
		id := h.accept(t, "order-retried-claim")
		if failed := h.deliver(t, id); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		if sub := h.get(t, id); sub.Status != submission.Submitted || len(h.platform.Creates()) != 1 {
			t.Errorf("submission %+v, %d create calls: want submitted, once", sub, len(h.platform.Creates()))
		}
	})
	t.Run("a mark sent twice still tells the submission's end at once", func(t *testing.T) {
		h := newHarness(t)
		h.s.Submissions = &sentTwice{Submissions: h.subs, matches: func(c submission.Change) bool { return c.To == submission.Submitted }}
		id := h.accept(t, "order-retried-mark")
		h.deliver(t, id)
		if types := h.eventTypes(); h.get(t, id).Status != submission.Submitted || len(types) != 1 || types[0] != taskevent.Submitted {
			t.Errorf("events %v: want Task Submitted, put by the submitter", types)
		}
	})
	t.Run("a release sent twice after a 429 still sends the submission again", func(t *testing.T) {
		h := newHarness(t)
		h.platform.SetCreateLimit(1, time.Minute)
		h.deliver(t, h.accept(t, "first"))
		h.s.Submissions = &sentTwice{Submissions: h.subs, matches: func(c submission.Change) bool { return c.DropClaim && c.To == "" }}
		id := h.accept(t, "second")
		if failed := h.deliver(t, id); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		if sub, n := h.get(t, id), emulators.QueueDepth(h.env.QueueName); sub.Code != 429 || n != 1 {
			t.Errorf("submission %+v, %d messages: want it waiting its turn in the queue", sub, n)
		}
	})
}

func TestASubmissionOverTheRateWaitsWithoutSpendingADelivery(t *testing.T) {
	h := newHarness(t)
	h.s.Rate = 3
	var ids []string
	for i := range 5 {
		ids = append(ids, h.accept(t, "paced-"+string(rune('a'+i))))
	}
	if failed := h.deliver(t, ids...); len(failed) != 0 {
		t.Fatalf("failed %v: waiting is no failure", failed)
	}
	if n := len(h.platform.Creates()); n != 3 {
		t.Errorf("%d create calls in one window, want the rate, 3", n)
	}
	if n := emulators.QueueDepth(h.env.QueueName); n != 2 {
		t.Errorf("%d submissions sent again to wait, want 2", n)
	}
	h.advance(10 * time.Second)
	h.deliver(t, ids...)
	if n := len(h.platform.Creates()); n != 5 {
		t.Errorf("%d create calls once the window slid, want 5", n)
	}
}

func TestEveryPlatformAnswerIsHandledAsTheContractSays(t *testing.T) {
	t.Run("a 429 waits accepted, a window at least, with the claim given back", func(t *testing.T) {
		h := newHarness(t)
		h.platform.SetCreateLimit(1, time.Minute)
		h.deliver(t, h.accept(t, "first"))
		id := h.accept(t, "second")
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Accepted || sub.ClaimedBy != "" || sub.Code != 429 || sub.Attempts != 1 {
			t.Errorf("submission %+v", sub)
		}
	})
	t.Run("a 455 (maintenance) waits accepted", func(t *testing.T) {
		h := newHarness(t)
		h.platform.SetMaintenance(true)
		id := h.accept(t, "maint")
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Accepted || sub.Code != 455 {
			t.Errorf("submission %+v", sub)
		}
	})
	t.Run("a refusal for good ends submit_failed with the platform's code and msg", func(t *testing.T) {
		h := newHarness(t)
		h.s.CallbackURL = callbackAt("not a url at all") // the platform answers 422 to a body without an absolute callBackUrl
		id := h.accept(t, "refused")
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.SubmitFailed || sub.Code != 422 || sub.Msg == "" {
			t.Errorf("submission %+v", sub)
		}
		if types := h.eventTypes(); len(types) != 1 || types[0] != taskevent.SubmitFailed {
			t.Errorf("events %v", types)
		}
	})
	t.Run("a lost answer is unknown and is never sent again", func(t *testing.T) {
		h := newHarness(t)
		h.platform.SetAmbiguous(1)
		id := h.accept(t, "lost")
		h.deliver(t, id)
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Unknown || len(h.platform.Creates()) != 1 {
			t.Errorf("submission %+v after %d calls", sub, len(h.platform.Creates()))
		}
	})
	t.Run("no credits pause every submission until the platform reports credits", func(t *testing.T) {
		h := newHarness(t)
		h.platform.SetCredits(false)
		first, second := h.accept(t, "broke-1"), h.accept(t, "broke-2")
		h.deliver(t, first)
		h.deliver(t, second)
		if n := len(h.platform.Creates()); n != 1 {
			t.Errorf("%d create calls: once the account is out of credits, the next submission waits without one", n)
		}
		h.platform.SetCredits(true)
		h.advance(time.Minute)
		h.deliver(t, first) // it asks the credit endpoint, and resumes the account
		h.deliver(t, second)
		if a, b := h.get(t, first), h.get(t, second); a.Status != submission.Submitted || b.Status != submission.Submitted {
			t.Errorf("after credits came back: %s and %s", a.Status, b.Status)
		}
	})
	t.Run("a claim a crashed submitter left makes the submission unknown", func(t *testing.T) {
		h := newHarness(t)
		id := h.accept(t, "crashed")
		if _, err := h.subs.Update(context.Background(), submission.Claim(id, "dead", h.clock())); err != nil {
			t.Fatal(err)
		}
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Accepted {
			t.Errorf("a fresh claim is a live submitter's: %s", sub.Status)
		}
		h.advance(3 * time.Minute)
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Unknown || len(h.platform.Creates()) != 0 {
			t.Errorf("submission %+v: its call may have gone out, so it is never sent again", sub)
		}
	})
	t.Run("a submission that waited past SUBMIT_MAX_WAIT fails", func(t *testing.T) {
		h := newHarness(t)
		id := h.accept(t, "old")
		h.advance(25 * time.Hour)
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.SubmitFailed || !strings.Contains(sub.Error, "SUBMIT_MAX_WAIT") {
			t.Errorf("submission %+v", sub)
		}
	})
	t.Run("a platform that cannot be reached is retried: nothing was written", func(t *testing.T) {
		h := newHarness(t)
		h.platform.Close()
		id := h.accept(t, "down")
		h.deliver(t, id)
		if sub := h.get(t, id); sub.Status != submission.Accepted || sub.ClaimedBy != "" {
			t.Errorf("submission %+v", sub)
		}
	})
}
