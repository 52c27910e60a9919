package copier

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// withEvents makes the harness's copier announce what it ends on the
// emulated bus.
func (h *harness) withEvents() *harness {
	h.copier.Notifier = eventbus.New(h.env.EventBridge, h.env.Bus, h.env.Bucket, h.store, h.copier.Now)
	return h
}

// events are the details put so far, each with its detail type.
func (h *harness) events(tb testing.TB) []struct {
	Type   string
	Detail taskevent.Detail
} {
	tb.Helper()
	var out []struct {
		Type   string
		Detail taskevent.Detail
	}
	for _, ev := range h.env.Events() {
		var d taskevent.Detail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			tb.Fatal(err)
		}
		out = append(out, struct {
			Type   string
			Detail taskevent.Detail
		}{ev.DetailType, d})
	}
	return out
}

func TestTaskEventsOfTheCopier(t *testing.T) {
	t.Run("a stored task puts Task Stored with its objects, then records it", func(t *testing.T) {
		h := newHarness(t).withEvents()
		h.seed(t, "ev_stored", task.StatusQueued, "/img.png", "/song.mp3")
		if failed := h.run(t, message("ev_stored")); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		evs := h.events(t)
		if len(evs) != 1 || evs[0].Type != taskevent.Stored {
			t.Fatalf("events %+v", evs)
		}
		d := evs[0].Detail
		rec := h.record(t, "ev_stored")
		if d.TaskID != "ev_stored" || d.Status != "stored" || d.StoredAt == "" || len(d.Objects) != 2 {
			t.Fatalf("detail %+v", d)
		}
		for i, o := range d.Objects {
			want := taskevent.Object{Bucket: h.env.Bucket, Key: rec.Objects[i].Key, Bytes: rec.Objects[i].Bytes, SHA256: rec.Objects[i].SHA256, ContentType: rec.Objects[i].ContentType, Source: rec.Objects[i].Source}
			if o != want {
				t.Errorf("object %d = %+v, want %+v", i, o, want)
			}
		}
		if !rec.NotifiedAt.Equal(testNow) {
			t.Errorf("notifiedAt %v", rec.NotifiedAt)
		}
		h.run(t, message("ev_stored"))
		if n := len(h.env.Events()); n != 1 {
			t.Errorf("a redelivery of a notified task put another event: %d", n)
		}
	})
	t.Run("a copy that fails for good puts Task Copy Failed with the reason", func(t *testing.T) {
		h := newHarness(t).withEvents()
		h.seed(t, "ev_copy_failed", task.StatusQueued, "/status/404")
		h.run(t, message("ev_copy_failed"))
		evs := h.events(t)
		if len(evs) != 1 || evs[0].Type != taskevent.CopyFailed || evs[0].Detail.Error == "" || evs[0].Detail.Status != "copy_failed" || len(evs[0].Detail.Objects) != 0 {
			t.Errorf("events %+v", evs)
		}
	})
	t.Run("a refused event returns the message, and its redelivery puts the event without copying again", func(t *testing.T) {
		h := newHarness(t).withEvents()
		h.seed(t, "ev_retry", task.StatusQueued, "/img.png")
		h.env.RefuseEntries(true)
		if failed := h.run(t, message("ev_retry")); !slices.Equal(failed, []string{"msg-ev_retry"}) {
			t.Fatalf("failed %v, want the message returned", failed)
		}
		if rec := h.record(t, "ev_retry"); rec.Status != task.StatusStored || !rec.NotifiedAt.IsZero() {
			t.Fatalf("record %+v: stored, not notified", rec)
		}
		h.env.RefuseEntries(false)
		if failed := h.run(t, message("ev_retry")); len(failed) != 0 {
			t.Fatalf("redelivery failed %v", failed)
		}
		if evs := h.events(t); len(evs) != 1 || evs[0].Type != taskevent.Stored || len(evs[0].Detail.Objects) != 1 {
			t.Errorf("events %+v", evs)
		}
		if n := h.src.count("/img.png"); n != 1 {
			t.Errorf("downloaded %d times", n)
		}
		if rec := h.record(t, "ev_retry"); rec.NotifiedAt.IsZero() {
			t.Error("notifiedAt not set")
		}
	})
	t.Run("a task that another copier ended and died on is announced by a redelivery", func(t *testing.T) {
		h := newHarness(t).withEvents()
		h.seed(t, "ev_orphan", task.StatusCopyFailed, "/img.png")
		if failed := h.run(t, message("ev_orphan")); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		if evs := h.events(t); len(evs) != 1 || evs[0].Type != taskevent.CopyFailed {
			t.Errorf("events %+v", evs)
		}
	})
}

// sentTwice is the task table, whose first change that matches the SDK
// sends twice: the first's answer lost, the second finds its effect.
type sentTwice struct {
	taskStore
	matches func(task.Change) bool
	sent    bool
}

func (s *sentTwice) Update(ctx context.Context, c task.Change) (task.Task, error) {
	if s.matches(c) && !s.sent {
		s.sent = true
		s.taskStore.Update(ctx, c)
	}
	return s.taskStore.Update(ctx, c)
}

func TestAChangeTheSDKSentTwiceIsTheCopiersOwn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		matches func(task.Change) bool
	}{
		{"a lease sent twice is the copier's, which copies at once", func(c task.Change) bool { return c.Effect().Lease != nil }},
		{"a stored mark sent twice is announced at once", func(c task.Change) bool { return c.Effect().Status == task.StatusStored }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t).withEvents()
			h.copier.Store = &sentTwice{taskStore: h.store, matches: tt.matches}
			h.seed(t, "twice", task.StatusQueued, "/img.png")
			if failed := h.run(t, message("twice")); len(failed) != 0 {
				t.Fatalf("failed %v: the copy waits for its own lease to end", failed)
			}
			if evs := h.events(t); h.record(t, "twice").Status != task.StatusStored || len(evs) != 1 || evs[0].Type != taskevent.Stored {
				t.Errorf("record %+v, events %v: want stored, and told", h.record(t, "twice"), evs)
			}
		})
	}
}
