package reconciler

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/platform"
)

// ended writes a record that reached status age ago and whose function
// died before putting its event.
func (h *harness) ended(tb testing.TB, id string, status task.Status, age time.Duration) {
	tb.Helper()
	ctx := context.Background()
	at := testNow.Add(-age)
	t := task.Task{ID: id, Status: task.StatusQueued, API: "veo", Code: 200, Msg: "success", Deliveries: 1, ReceivedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if status == task.StatusFailed {
		t.Status = status
	}
	if _, created, err := h.store.Create(ctx, t); err != nil || !created {
		tb.Fatalf("seed %s: %v %v", id, created, err)
	}
	var err error
	switch status {
	case task.StatusStored:
		_, err = h.store.Update(ctx, task.MarkStored(id, "", []task.Object{{Key: "tasks/" + id + "/0.mp4", Bytes: 7, SHA256: "ab", ContentType: "video/mp4", Source: "https://tempfile.aiquickdraw.com/v.mp4"}}, at))
	case task.StatusCopyFailed:
		_, err = h.store.Update(ctx, task.MarkCopyFailed(id, "", "source 0: source answered 404 Not Found", at))
	}
	if err != nil {
		tb.Fatal(err)
	}
}

func (h *harness) eventTypes(tb testing.TB) map[string]string {
	tb.Helper()
	out := map[string]string{}
	for _, ev := range h.env.Events() {
		var d taskevent.Detail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			tb.Fatal(err)
		}
		out[d.TaskID] = ev.DetailType
	}
	return out
}

func TestTheSweepPutsTheEventsAFunctionDiedBefore(t *testing.T) {
	t.Run("every ended task left unannounced is announced once", func(t *testing.T) {
		h := newHarness(t)
		h.ended(t, "sw_stored", task.StatusStored, 5*time.Minute)
		h.ended(t, "sw_failed", task.StatusFailed, 5*time.Minute)
		h.ended(t, "sw_copy_failed", task.StatusCopyFailed, 5*time.Minute)
		if rep := h.run(t); rep.Notified != 3 {
			t.Errorf("report %+v", rep)
		}
		want := map[string]string{"sw_stored": taskevent.Stored, "sw_failed": taskevent.Failed, "sw_copy_failed": taskevent.CopyFailed}
		if got := h.eventTypes(t); len(got) != 3 || got["sw_stored"] != want["sw_stored"] || got["sw_failed"] != want["sw_failed"] || got["sw_copy_failed"] != want["sw_copy_failed"] {
			t.Errorf("events %v, want %v", got, want)
		}
		var d taskevent.Detail
		for _, ev := range h.env.Events() {
			if ev.DetailType == taskevent.Stored {
				json.Unmarshal(ev.Detail, &d)
			}
		}
		if len(d.Objects) != 1 || d.Objects[0].Bucket != h.env.Bucket {
			t.Errorf("the swept Task Stored lacks its objects: %+v", d)
		}
		if rep := h.run(t); rep.Notified != 0 || len(h.env.Events()) != 3 {
			t.Errorf("a second run put again: %+v", rep)
		}
	})
	t.Run("a task that ended moments ago is left to the function that ended it", func(t *testing.T) {
		h := newHarness(t)
		h.ended(t, "sw_young", task.StatusFailed, 30*time.Second)
		if rep := h.run(t); rep.Notified != 0 {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("a bus that refuses fails the run, and the next run puts the event", func(t *testing.T) {
		h := newHarness(t)
		h.ended(t, "sw_refused", task.StatusFailed, 5*time.Minute)
		h.env.RefuseEntries(true)
		if _, err := h.r.Run(context.Background()); err == nil {
			t.Error("want the run to fail")
		}
		h.env.RefuseEntries(false)
		if rep := h.run(t); rep.Notified != 1 {
			t.Errorf("report %+v", rep)
		}
	})
	t.Run("open tasks are never announced", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "sw_queued", "veo", task.StatusQueued, 5*time.Minute)
		h.seed(t, "sw_pending", "veo", task.StatusPending, time.Minute)
		h.run(t)
		if n := len(h.env.Events()); n != 0 {
			t.Errorf("%d events", n)
		}
	})
}

func TestTasksTheReconcilerEndsAreAnnounced(t *testing.T) {
	t.Run("an expired pending task puts Task Failed", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "rc_expired", "veo", task.StatusPending, 15*24*time.Hour)
		h.run(t)
		if got := h.eventTypes(t); got["rc_expired"] != taskevent.Failed {
			t.Errorf("events %v", got)
		}
	})
}

func TestEveryPassGetsItsTurn(t *testing.T) {
	t.Run("a platform that hangs does not starve the cheap passes", func(t *testing.T) {
		h := newHarness(t)
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
		defer hang.Close()
		h.r.Platform = kieapi.New(hang.URL, "api-key")
		h.seed(t, "turn_pending", "veo", task.StatusPending, 3*time.Minute)
		h.seed(t, "turn_stuck", "veo", task.StatusQueued, time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		rep, _ := h.r.Run(ctx)
		if rep.Resent != 1 {
			t.Errorf("report %+v: the stranded record must be sent again before polling starts", rep)
		}
	})
	t.Run("a failure that only the log needs does not end the polling", func(t *testing.T) {
		h := newHarness(t)
		for _, id := range []string{"turn_a", "turn_b"} {
			h.seed(t, id, "veo", task.StatusPending, 3*time.Minute)
			h.platform.Set("veo", id, platform.Failure)
		}
		h.env.RefuseEntries(true) // each failed task's event fails: for the log and the sweep
		rep, _ := h.r.Run(context.Background())
		if rep.Finished != 2 {
			t.Errorf("report %+v: both pending tasks must be finished", rep)
		}
	})
}

// deadLetter puts a copy message of id in the dead-letter queue, as SQS
// does once its deliveries are used up.
func (h *harness) deadLetter(tb testing.TB, id string) {
	tb.Helper()
	body := schema.CopyMessage{TaskID: id}.Encode()
	if _, err := h.env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &h.env.DLQURL, MessageBody: &body}); err != nil {
		tb.Fatal(err)
	}
}

// lease records a copy of id that a delivery made, its lease ending at until.
func (h *harness) lease(tb testing.TB, id string, receives int, until time.Time) {
	tb.Helper()
	if err := updated(h.store.Update(context.Background(), task.TakeLease(id, task.Lease{Owner: "copier-" + id, Until: until}, receives, until.Add(-time.Minute)))); err != nil {
		tb.Fatal(err)
	}
}

func TestACopyIsGivenUpFromTheDeadLetterQueueNeverOnTimeQueued(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "gave_up", "veo", task.StatusQueued, 3*time.Hour)
	h.lease(t, "gave_up", 5, testNow.Add(-time.Minute))
	h.deadLetter(t, "gave_up")
	// Its last deliveries failed before they could count themselves (a
	// read that failed, a copier that could not start): the record says 2.
	h.seed(t, "uncounted", "veo", task.StatusQueued, time.Hour)
	h.lease(t, "uncounted", 2, testNow.Add(-time.Minute))
	h.deadLetter(t, "uncounted")
	// A backlog: queued for hours, longer than all five deliveries could
	// take, yet its message is still in the queue.
	h.seed(t, "backlog", "veo", task.StatusQueued, 3*time.Hour)
	h.lease(t, "backlog", 5, testNow.Add(-time.Minute))
	// A copy of another message of the task is still running.
	h.seed(t, "last_try", "veo", task.StatusQueued, 3*time.Hour)
	h.lease(t, "last_try", 5, testNow.Add(time.Minute))
	h.deadLetter(t, "last_try")
	// Stored by a duplicate message since: its dead letter waits for redrive.
	h.ended(t, "stored_since", task.StatusStored, time.Hour)
	h.deadLetter(t, "stored_since")
	// Requeued by an operator since its letter: that letter is spent.
	requeued := task.Task{ID: "requeued", Status: task.StatusQueued, API: "veo", Code: 200, Sources: []string{"https://tempfile.aiquickdraw.com/r.png"},
		UpdatedAt: testNow.Add(-2 * time.Hour), ExpiresAt: testNow.Add(time.Hour), Generation: 1}
	if _, _, err := h.store.Create(context.Background(), requeued); err != nil {
		t.Fatal(err)
	}
	h.deadLetter(t, "requeued")
	rep := h.run(t)
	if rep.GivenUp != 2 || rep.StaleQueued != 3 {
		t.Errorf("report %+v", rep)
	}
	for _, id := range []string{"gave_up", "uncounted"} {
		if rec := h.record(t, id); rec.Status != task.StatusCopyFailed || !strings.Contains(rec.Error, "dead-letter queue") || !strings.Contains(rec.Error, "infra/ops redrive") {
			t.Errorf("%s: record %s %q", id, rec.Status, rec.Error)
		}
	}
	for _, id := range []string{"backlog", "last_try", "requeued"} {
		if rec := h.record(t, id); rec.Status != task.StatusQueued {
			t.Errorf("%s became %s: its copy may still succeed", id, rec.Status)
		}
	}
	// stored_since's event is the sweep's: its copier died before putting it.
	if got := h.eventTypes(t); got["gave_up"] != taskevent.CopyFailed || got["uncounted"] != taskevent.CopyFailed || len(got) != 3 {
		t.Errorf("events %v", got)
	}
}

func TestNoBacklogHidesADeadLetter(t *testing.T) {
	h := newHarness(t)
	h.r.Limit = 5
	// More old records waiting than a run lists, and more dead letters of
	// ended tasks than a run gives up, all ahead of the newer one.
	for i := range 8 {
		h.seed(t, fmt.Sprintf("waiting_%d", i), "veo", task.StatusQueued, 5*time.Hour)
	}
	for i := range 20 {
		id := fmt.Sprintf("ended_%d", i)
		h.ended(t, id, task.StatusCopyFailed, 4*time.Hour)
		h.deadLetter(t, id)
	}
	h.seed(t, "newer", "veo", task.StatusQueued, time.Hour)
	h.deadLetter(t, "newer")
	h.run(t)
	if rec := h.record(t, "newer"); rec.Status != task.StatusCopyFailed {
		t.Errorf("the newer exhausted task is %s", rec.Status)
	}
}

func TestGivingUpLeavesNothingInTheBucket(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.seed(t, "half", "veo", task.StatusQueued, time.Hour)
	h.lease(t, "half", 5, testNow.Add(-time.Minute))
	key := "tasks/half/0.mp4"
	up, err := h.env.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &h.env.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if err := updated(h.store.Update(ctx, task.RecordUpload("half", "copier-half", task.Upload{Key: key, ID: *up.UploadId}))); err != nil {
		t.Fatal(err)
	}
	// A copier died after starting an upload, before it could record it.
	untracked := "tasks/half/2.mp4"
	if _, err := h.env.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &h.env.Bucket, Key: &untracked}); err != nil {
		t.Fatal(err)
	}
	// An earlier attempt stored source 1 before source 0 failed.
	stored := "tasks/half/1.png"
	if _, err := h.env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &h.env.Bucket, Key: &stored, Body: strings.NewReader("png")}); err != nil {
		t.Fatal(err)
	}
	other := "tasks/halfway/0.png" // another task's, whose id starts alike
	if _, err := h.env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &h.env.Bucket, Key: &other, Body: strings.NewReader("png")}); err != nil {
		t.Fatal(err)
	}
	h.deadLetter(t, "half")
	if rep := h.run(t); rep.GivenUp != 1 {
		t.Fatalf("report %+v", rep)
	}
	if n, err := h.env.OpenUploads(ctx); n != 0 || err != nil {
		t.Errorf("%d uploads open (%v): the record that named them is gone", n, err)
	}
	if _, err := h.env.Object(ctx, stored); err == nil {
		t.Error("an object of the given-up task stays, which no record names")
	}
	if _, err := h.env.Object(ctx, other); err != nil {
		t.Errorf("another task's object went: %v", err)
	}
}

// updated is the error of an update whose record the test does not need.
func updated(_ task.Task, err error) error { return err }
