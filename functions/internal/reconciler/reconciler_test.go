package reconciler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"encoding/json"
	"io/fs"

	"github.com/aws/aws-lambda-go/events"
	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
)

var testNow = time.Unix(1764300000, 0).UTC()

type harness struct {
	env      *emulators.Env
	store    *dynamo.Store
	platform *platform.API
	r        *Reconciler
	metrics  *capture.Buffer
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	api := platform.ServeAPI("api-key")
	tb.Cleanup(api.Close)
	h := &harness{env: env, store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents), platform: api, metrics: &capture.Buffer{}}
	clock := func() time.Time { return testNow }
	bus := eventbus.New(env.EventBridge, env.Bus, env.Bucket, h.store, clock)
	h.r = &Reconciler{
		Tasks:    h.store,
		Platform: kieapi.New(api.URL, "api-key"),
		Receiver: &task.Receiver{Store: h.store, Queue: queue.New(env.SQS, env.QueueURL), Notifier: bus, TTL: 720 * time.Hour, Now: clock,
			Logger: slog.New(slog.DiscardHandler)},
		Queue:        queue.New(env.SQS, env.QueueURL),
		Notifier:     bus,
		DeadLetters:  queue.NewDeadLetters(env.SQS, env.DLQURL),
		Leftovers:    objects.New(env.S3, env.Bucket, nil),
		Prefix:       "tasks/",
		NotifyAfter:  2 * time.Minute,
		Metrics:      metrics.New(h.metrics, "kiehook", clock),
		Logger:       slog.New(slog.DiscardHandler),
		Now:          clock,
		PendingAfter: 2 * time.Minute,
		StuckAfter:   5 * time.Minute,
		QueuedAlert:  30 * time.Minute,
		Retention:    14 * 24 * time.Hour,
		Limit:        50,
	}
	return h
}

// seed writes a record last updated age ago.
func (h *harness) seed(tb testing.TB, id, api string, status task.Status, age time.Duration) {
	tb.Helper()
	at := testNow.Add(-age)
	t := task.NewPending(id, api, nil, at, time.Hour)
	if status != task.StatusPending {
		t = task.Task{ID: id, Status: status, API: api, Code: 200, Sources: []string{"https://tempfile.aiquickdraw.com/x.png"}, Deliveries: 1, ReceivedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour)}
	}
	if _, created, err := h.store.Create(context.Background(), t); err != nil || !created {
		tb.Fatalf("seed %s: %v %v", id, created, err)
	}
}

func (h *harness) record(tb testing.TB, id string) task.Task {
	tb.Helper()
	t, found, err := h.store.Get(context.Background(), id)
	if err != nil || !found {
		tb.Fatalf("record %s: %v %v", id, found, err)
	}
	return t
}

func (h *harness) queued(tb testing.TB) []string {
	tb.Helper()
	var ids []string
	for {
		out, err := h.env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &h.env.QueueURL, MaxNumberOfMessages: 10})
		if err != nil {
			tb.Fatal(err)
		}
		if len(out.Messages) == 0 {
			slices.Sort(ids)
			return ids
		}
		for _, m := range out.Messages {
			msg, _ := schema.DecodeCopyMessage(*m.Body)
			ids = append(ids, msg.TaskID)
		}
	}
}

// orphanedTask keeps a submission whose submitter made task id on the
// platform, wrote its pending record and died before its mark: its claim
// made the submission unknown, and the task's callback never came. The
// platform has the task in state; the reconciler finishes submissions.
func (h *harness) orphanedTask(tb testing.TB, id, state string) submission.Submission {
	tb.Helper()
	ctx, subs := context.Background(), dynamo.Submissions{Store: h.store}
	h.r.Submissions = Submissions{Store: subs, Queue: queue.NewSubmissions(h.env.SQS, h.env.QueueURL), UnknownAfter: 2 * time.Hour}
	sub, err := submission.New("order-5", []byte(`{"api":"veo","input":{"prompt":"x"}}`), testNow.Add(-time.Hour), time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := subs.Create(ctx, sub); err != nil {
		tb.Fatal(err)
	}
	claimed, err := subs.Update(ctx, submission.Claim(sub.ID, "submitter-1", testNow.Add(-time.Hour)))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := subs.Update(ctx, submission.Abandon(claimed, testNow.Add(-50*time.Minute))); err != nil {
		tb.Fatal(err)
	}
	pending := task.NewPending(id, "veo", nil, testNow.Add(-time.Hour), time.Hour)
	pending.SubmissionID = sub.ID
	if _, _, err := h.store.Create(ctx, pending); err != nil {
		tb.Fatal(err)
	}
	h.platform.Set("veo", id, state, "https://tempfile.aiquickdraw.com/p/"+id+".mp4")
	return sub
}

// wantLinked expects sub submitted as task id, and the task in status.
func (h *harness) wantLinked(tb testing.TB, sub submission.Submission, id string, status task.Status) {
	tb.Helper()
	got, _, err := dynamo.Submissions{Store: h.store}.Get(context.Background(), sub.ID)
	if err != nil || got.Status != submission.Submitted || got.TaskID != id {
		tb.Errorf("submission %+v %v: want submitted as %s", got, err, id)
	}
	if rec := h.record(tb, id); rec.Status != status || rec.SubmissionID != sub.ID {
		tb.Errorf("record %+v: want %s, of its submission", rec, status)
	}
}

// refusingLinks refuses every link while refused, as an unreachable
// table does.
type refusingLinks struct {
	openSubmissions
	refused bool
}

func (l *refusingLinks) LinkTask(ctx context.Context, id, taskID string, now time.Time) error {
	if l.refused {
		return errors.New("ProvisionedThroughputExceededException")
	}
	return l.openSubmissions.LinkTask(ctx, id, taskID, now)
}

func (h *harness) run(tb testing.TB) Report {
	tb.Helper()
	rep, err := h.r.Run(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return rep
}

func TestWithoutAnAPIKeyPendingTasksStillExpire(t *testing.T) {
	h := newHarness(t)
	h.r.Platform = nil
	h.seed(t, "too_old", "veo", task.StatusPending, 15*24*time.Hour)
	h.seed(t, "recent", "veo", task.StatusPending, 3*time.Minute)
	if rep := h.run(t); rep.Expired != 1 || rep.Polled != 0 {
		t.Errorf("report %+v", rep)
	}
	if rec := h.record(t, "too_old"); rec.Status != task.StatusFailed || !strings.Contains(rec.Msg, "retention") {
		t.Errorf("too_old is %s %q", rec.Status, rec.Msg)
	}
	if rec := h.record(t, "recent"); rec.Status != task.StatusPending {
		t.Errorf("recent is %s", rec.Status)
	}
}

func TestPendingTasksArePolledAndFinishedLikeCallbacks(t *testing.T) {
	for _, api := range platform.APIs {
		t.Run("a finished "+api+" task is queued for the copier", func(t *testing.T) {
			h := newHarness(t)
			id := "pend_" + strings.ReplaceAll(api, "-", "_")
			h.seed(t, id, api, task.StatusPending, 3*time.Minute)
			urls := []string{"https://tempfile.aiquickdraw.com/p/" + id + ".png", "https://tempfile.aiquickdraw.com/p/" + id + "-2.png"}
			if api == "flux-kontext" {
				urls = urls[:1]
			}
			h.platform.Set(api, id, platform.Success, urls...)
			if rep := h.run(t); rep.Polled != 1 || rep.Finished != 1 {
				t.Errorf("report %+v", rep)
			}
			rec := h.record(t, id)
			if rec.Status != task.StatusQueued || rec.Code != 200 || !slices.Equal(rec.Sources, urls) || rec.ReceivedAt.IsZero() {
				t.Errorf("record %+v", rec)
			}
			if rec.Deliveries != 0 {
				t.Errorf("deliveries %d: a poll is no callback that arrived", rec.Deliveries)
			}
			if ids := h.queued(t); !slices.Equal(ids, []string{id}) {
				t.Errorf("queued %v", ids)
			}
		})
	}
	t.Run("a Suno task whose final callback never came is finished from its progress callbacks' record", func(t *testing.T) {
		h := newHarness(t)
		id := "pend_suno_progress"
		// The text and first callbacks arrived three minutes ago; complete never did.
		h.r.Receiver.(*task.Receiver).Now = func() time.Time { return testNow.Add(-3 * time.Minute) }
		for range 2 {
			cb := task.Callback{TaskID: id, Code: 200, API: "suno", Sources: []string{"https://tempfile.aiquickdraw.com/r/t1.mp3"}, Progress: true}
			if _, err := h.r.Receiver.Receive(context.Background(), cb); err != nil {
				t.Fatal(err)
			}
		}
		h.r.Receiver.(*task.Receiver).Now = func() time.Time { return testNow }
		urls := []string{"https://tempfile.aiquickdraw.com/r/t1.mp3", "https://tempfile.aiquickdraw.com/r/c1.jpg", "https://tempfile.aiquickdraw.com/r/t2.mp3", "https://tempfile.aiquickdraw.com/r/c2.jpg"}
		h.platform.Set("suno", id, platform.Success, urls...)
		if rep := h.run(t); rep.Polled != 1 || rep.Finished != 1 {
			t.Errorf("report %+v", rep)
		}
		if rec := h.record(t, id); rec.Status != task.StatusQueued || !slices.Equal(rec.Sources, urls) {
			t.Errorf("record %+v, want queued with every track", rec)
		}
		if ids := h.queued(t); !slices.Equal(ids, []string{id}) {
			t.Errorf("queued %v", ids)
		}
	})
	t.Run("a failed task becomes failed with the platform's code", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "pend_fail", "veo", task.StatusPending, 3*time.Minute)
		h.platform.Set("veo", "pend_fail", platform.Failure)
		h.run(t)
		if rec := h.record(t, "pend_fail"); rec.Status != task.StatusFailed || rec.Code != 501 || rec.Msg != "generation failed" {
			t.Errorf("record %+v", rec)
		}
		if got := h.eventTypes(t); got["pend_fail"] != taskevent.Failed {
			t.Errorf("events %v: the failure is announced", got)
		}
		if ids := h.queued(t); len(ids) != 0 {
			t.Errorf("queued %v", ids)
		}
	})
	t.Run("a polled task links its submission, whose submitter died before it marked it", func(t *testing.T) {
		h := newHarness(t)
		sub := h.orphanedTask(t, "pend_sub", platform.Success)
		h.run(t)
		h.wantLinked(t, sub, "pend_sub", task.StatusQueued)
	})
	t.Run("a task still generating links its submission all the same", func(t *testing.T) {
		h := newHarness(t)
		sub := h.orphanedTask(t, "pend_sub", platform.Generating)
		h.run(t)
		h.wantLinked(t, sub, "pend_sub", task.StatusPending)
	})
	t.Run("a link that fails leaves the task unpolled, and the next run links it", func(t *testing.T) {
		h := newHarness(t)
		sub := h.orphanedTask(t, "pend_sub", platform.Success)
		links := &refusingLinks{openSubmissions: h.r.Submissions.Store, refused: true}
		h.r.Submissions.Store = links
		if _, err := h.r.Run(context.Background()); err == nil {
			t.Error("the run reports nothing of the link it could not make")
		}
		if rec := h.record(t, "pend_sub"); rec.Status != task.StatusPending || h.platform.Polls("pend_sub") != 0 {
			t.Fatalf("record %+v, polled %d times: want pending, not polled", rec, h.platform.Polls("pend_sub"))
		}
		links.refused = false
		later := func() time.Time { return testNow.Add(3 * time.Minute) }
		h.r.Now, h.r.Receiver.(*task.Receiver).Now = later, later
		h.run(t)
		h.wantLinked(t, sub, "pend_sub", task.StatusQueued)
	})
	t.Run("a task still generating stays pending and is asked again later", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "pend_run", "suno", task.StatusPending, 3*time.Minute)
		h.platform.Set("suno", "pend_run", platform.Generating)
		h.run(t)
		rec := h.record(t, "pend_run")
		if rec.Status != task.StatusPending || !rec.UpdatedAt.Equal(testNow) {
			t.Errorf("record %+v: want pending, touched now", rec)
		}
		h.run(t) // at once: within 30 s of the last poll
		if n := h.platform.Polls("pend_run"); n != 1 {
			t.Errorf("polled %d times within 30 s, want 1", n)
		}
	})
	t.Run("a young pending task is left alone", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "pend_young", "veo", task.StatusPending, 20*time.Second)
		h.run(t)
		if n := h.platform.Polls("pend_young"); n != 0 {
			t.Errorf("polled %d times", n)
		}
	})
	t.Run("a task older than the platform's retention fails with a clear reason", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "pend_old", "veo", task.StatusPending, 15*24*time.Hour)
		if rep := h.run(t); rep.Expired != 1 {
			t.Errorf("report %+v", rep)
		}
		rec := h.record(t, "pend_old")
		if rec.Status != task.StatusFailed || !strings.Contains(rec.Msg, "retention") {
			t.Errorf("record %+v", rec)
		}
		if n := h.platform.Polls("pend_old"); n != 0 {
			t.Errorf("polled %d times", n)
		}
	})
	t.Run("a 429 ends the run's polling", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "pend_a", "veo", task.StatusPending, 5*time.Minute)
		h.seed(t, "pend_b", "veo", task.StatusPending, 4*time.Minute)
		h.platform.RateLimit(true)
		rep := h.run(t)
		if !rep.RateLimited || h.platform.Polls("pend_a")+h.platform.Polls("pend_b") != 1 {
			t.Errorf("report %+v, polls %d+%d: want one call, then back off", rep, h.platform.Polls("pend_a"), h.platform.Polls("pend_b"))
		}
	})
	t.Run("without an API key nothing is polled", func(t *testing.T) {
		h := newHarness(t)
		h.r.Platform = nil
		h.seed(t, "pend_nokey", "veo", task.StatusPending, 5*time.Minute)
		h.run(t)
		if rec := h.record(t, "pend_nokey"); rec.Status != task.StatusPending {
			t.Errorf("record %+v", rec)
		}
	})
}

// started leases id as a copier that took its message did.
func (h *harness) started(tb testing.TB, id string) {
	tb.Helper()
	l := task.Lease{Owner: "copier", Until: testNow.Add(-time.Minute)}
	if _, err := h.store.Update(context.Background(), task.TakeLease(id, l, 1, testNow.Add(-2*time.Minute))); err != nil {
		tb.Fatal(err)
	}
}

func TestQueuedTasksWhoseCopyNeverStartedAreSentAgainOnce(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "stranded", "veo", task.StatusQueued, 10*time.Minute)
	h.seed(t, "fresh", "veo", task.StatusQueued, time.Minute)
	h.seed(t, "slow", "veo", task.StatusQueued, time.Hour)
	h.started(t, "slow")
	rep := h.run(t)
	if rep.Resent != 1 || rep.StaleQueued != 1 {
		t.Errorf("report %+v", rep)
	}
	if ids := h.queued(t); !slices.Equal(ids, []string{"stranded"}) {
		t.Errorf("sent %v: only the task whose copy never started and that is older than STUCK_RECEIVED_AFTER", ids)
	}
	if m := h.metrics.String(); !strings.Contains(m, `"StaleQueued":1`) || !strings.Contains(m, `"CopiesResent":1`) {
		t.Errorf("metrics %s", m)
	}
	t.Run("a task sent again waits in the backlog without a message every run", func(t *testing.T) {
		if rep := h.run(t); rep.Resent != 0 {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("a resend a crash left is taken again after QUEUED_ALERT_AFTER", func(t *testing.T) {
		h.r.Now = func() time.Time { return testNow.Add(31 * time.Minute) }
		if rep := h.run(t); rep.Resent != 2 {
			t.Errorf("report %+v, want stranded and fresh sent", rep)
		}
	})
}

// refusingQueue refuses every send while it is down.
type refusingQueue struct {
	task.Queue
	down *bool
}

func (q refusingQueue) Enqueue(ctx context.Context, id string, generation int) error {
	if *q.down {
		return errors.New("sqs: service unavailable")
	}
	return q.Queue.Enqueue(ctx, id, generation)
}

func TestAPolledSuccessWhoseSendFailedIsSentByALaterRun(t *testing.T) {
	// No callback will ever come for a polled task: that is why it was
	// polled. Its send failing must not leave it queued with no message.
	h := newHarness(t)
	down := true
	q := refusingQueue{Queue: queue.New(h.env.SQS, h.env.QueueURL), down: &down}
	h.r.Receiver.(*task.Receiver).Queue = q
	h.r.Queue = q
	h.seed(t, "polled", "midjourney", task.StatusPending, 5*time.Minute)
	h.platform.Set("midjourney", "polled", platform.Success, "https://tempfile.aiquickdraw.com/m/polled.png")
	if _, err := h.r.Run(context.Background()); err == nil {
		t.Fatal("the send failed, and the run must say so")
	}
	if rec := h.record(t, "polled"); rec.Status != task.StatusQueued {
		t.Fatalf("record %+v", rec)
	}
	down = false
	h.r.Now = func() time.Time { return testNow.Add(h.r.StuckAfter + time.Minute) }
	if rep := h.run(t); rep.Resent != 1 {
		t.Errorf("report %+v", rep)
	}
	if ids := h.queued(t); !slices.Equal(ids, []string{"polled"}) {
		t.Errorf("sent %v", ids)
	}
}

func TestAQueueOutageStrandsNoTask(t *testing.T) {
	// The queue refuses every send for 30 minutes while 100 success
	// callbacks arrive; the platform's retries, after 1, 5 and 15 minutes,
	// all fail too, and it gives up. The reconciler runs every minute.
	h := newHarness(t)
	down, now := true, testNow
	clock := func() time.Time { return now }
	q := refusingQueue{Queue: queue.New(h.env.SQS, h.env.QueueURL), down: &down}
	receiver := &task.Receiver{Store: h.store, Queue: q, TTL: time.Hour, Now: clock, Logger: slog.New(slog.DiscardHandler)}
	h.r.Queue, h.r.Now, h.r.Limit = q, clock, 200
	h.r.DeadLetters = nil // nothing dead-letters here; each scan would wait its second
	callback := func(i int) {
		cb := task.Callback{TaskID: fmt.Sprint("outage_", i), Code: 200, API: "veo", Sources: []string{"https://tempfile.aiquickdraw.com/o.png"}}
		if _, err := receiver.Receive(context.Background(), cb); err == nil {
			t.Fatalf("callback %d answered 200 while the queue was down", i)
		}
	}
	for minute := 0; minute <= 30; minute++ {
		now = testNow.Add(time.Duration(minute) * time.Minute)
		for i := range 100 {
			if slices.Contains([]int{0, 1, 6, 21}, minute-i%10) {
				callback(i) // the first call, then the platform's retries
			}
		}
		h.r.Run(context.Background())
	}
	down = false
	for minute := 31; minute <= 40; minute++ {
		now = testNow.Add(time.Duration(minute) * time.Minute)
		h.run(t)
	}
	if ids := h.queued(t); len(slices.Compact(ids)) != 100 {
		t.Errorf("%d tasks have a message once the queue is back, want all 100 with no operator", len(slices.Compact(ids)))
	}
}

func TestOverlappingRunsActOnceOnEachTask(t *testing.T) {
	h := newHarness(t)
	for i := range 10 {
		id := fmt.Sprint("overlap_", i)
		h.seed(t, id, "midjourney", task.StatusPending, 5*time.Minute)
		h.platform.Set("midjourney", id, platform.Success, "https://tempfile.aiquickdraw.com/m/"+id+".png")
		h.seed(t, fmt.Sprint("stuck_", i), "veo", task.StatusQueued, time.Hour)
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { h.r.Run(context.Background()) })
	}
	wg.Wait()
	for i := range 10 {
		if n := h.platform.Polls(fmt.Sprint("overlap_", i)); n != 1 {
			t.Errorf("overlap_%d polled %d times", i, n)
		}
	}
	if ids := h.queued(t); len(ids) != 20 {
		t.Errorf("%d messages, want one per task (20): %v", len(ids), ids)
	}
}

func TestTheScheduleEventRunsAPass(t *testing.T) {
	raw, err := fs.ReadFile(sample.Files, "reconciler-schedule.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.EventBridgeEvent
	if err := json.Unmarshal(raw, &ev); err != nil || ev.DetailType != "Scheduled Event" {
		t.Fatalf("decode: %+v %v", ev, err)
	}
	h := newHarness(t)
	h.seed(t, "sched_stuck", "veo", task.StatusQueued, time.Hour)
	if err := h.r.Handle(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if rec := h.record(t, "sched_stuck"); rec.ResentAt.IsZero() {
		t.Errorf("record %+v: not sent again", rec)
	}
}

// hangingPlatform answers no poll before the caller gives up.
type hangingPlatform struct{}

func (hangingPlatform) Record(ctx context.Context, _, _ string) (kie.Record, error) {
	<-ctx.Done()
	return kie.Record{}, ctx.Err()
}

func TestPollingAHangingPlatformStillWritesTheRunsMetrics(t *testing.T) {
	h := newHarness(t)
	h.r.Platform = hangingPlatform{}
	for i := range 3 {
		h.seed(t, fmt.Sprint("hang_", i), "veo", task.StatusPending, 3*time.Minute)
	}
	// The dead-letter scan's last, empty long poll takes a second.
	ctx, cancel := context.WithTimeout(context.Background(), runMargin+2*time.Second)
	defer cancel()
	h.r.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the run reached the function's deadline: Lambda would kill it before its metrics")
	}
	if !strings.Contains(h.metrics.String(), "PendingPolled") {
		t.Errorf("metrics %q", h.metrics.String())
	}
}
