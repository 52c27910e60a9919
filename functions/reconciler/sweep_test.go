package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/platform"
)

// ended writes a record that reached status age ago and whose function
// died before putting its event.
func (h *harness) ended(tb testing.TB, id string, status task.Status, age time.Duration) {
	tb.Helper()
	ctx := context.Background()
	at := testNow.Add(-age)
	t := task.Task{ID: id, Status: task.StatusReceived, API: "veo", Code: 200, Msg: "success", Deliveries: 1, ReceivedAt: at, UpdatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if status == task.StatusFailed {
		t.Status = status
	}
	if _, created, err := h.store.Create(ctx, t); err != nil || !created {
		tb.Fatalf("seed %s: %v %v", id, created, err)
	}
	var err error
	switch status {
	case task.StatusStored:
		_, err = h.store.Stored(ctx, id, "", []task.Object{{Key: "tasks/" + id + "/0.mp4", Bytes: 7, SHA256: "ab", ContentType: "video/mp4", Source: "https://tempfile.aiquickdraw.com/v.mp4"}}, at)
	case task.StatusCopyFailed:
		_, err = h.store.CopyFailed(ctx, id, "", "source 0: source answered 404 Not Found", at)
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
		h.seed(t, "turn_stuck", "veo", task.StatusReceived, time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		rep, _ := h.r.Run(ctx)
		if rep.Requeued != 1 || h.record(t, "turn_stuck").Status != task.StatusQueued {
			t.Errorf("report %+v: the stuck record must be queued again before polling starts", rep)
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

func TestACopyIsGivenUpOnDeliveriesNeverOnTimeQueued(t *testing.T) {
	h := newHarness(t)
	h.r.MaxReceives = 5
	// lease records the copy that a delivery of the task's message made,
	// its lease ending at until.
	lease := func(id string, receives int, until time.Time) {
		t.Helper()
		if err := h.store.Lease(context.Background(), id, task.Lease{Owner: "copier-" + id, Until: until}, receives, until.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	h.seed(t, "gave_up", "veo", task.StatusQueued, 3*time.Hour)
	lease("gave_up", 5, testNow.Add(-time.Minute))
	// A backlog: queued for hours, longer than all five deliveries could
	// take, yet delivered once.
	h.seed(t, "backlog", "veo", task.StatusQueued, 3*time.Hour)
	lease("backlog", 1, testNow.Add(-time.Minute))
	h.seed(t, "never_delivered", "veo", task.StatusQueued, 3*time.Hour)
	// The last delivery's copy is still running.
	h.seed(t, "last_try", "veo", task.StatusQueued, 3*time.Hour)
	lease("last_try", 5, testNow.Add(time.Minute))
	rep := h.run(t)
	if rep.GivenUp != 1 || rep.StaleQueued != 3 {
		t.Errorf("report %+v", rep)
	}
	if rec := h.record(t, "gave_up"); rec.Status != task.StatusCopyFailed || !strings.Contains(rec.Error, "dead-letter queue") || !strings.Contains(rec.Error, "infra/ops requeue") {
		t.Errorf("record %s %q", rec.Status, rec.Error)
	}
	for _, id := range []string{"backlog", "never_delivered", "last_try"} {
		if rec := h.record(t, id); rec.Status != task.StatusQueued {
			t.Errorf("%s became %s: its message still has deliveries to come", id, rec.Status)
		}
	}
	if got := h.eventTypes(t); got["gave_up"] != taskevent.CopyFailed || len(got) != 1 {
		t.Errorf("events %v", got)
	}
}
