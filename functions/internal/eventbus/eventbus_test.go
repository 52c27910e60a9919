package eventbus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/emulators"
)

var testNow = time.Unix(1764300000, 0).UTC()

type harness struct {
	env   *emulators.Env
	store *dynamo.Store
	bus   *eventbus.Bus
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	store := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	return &harness{env: env, store: store, bus: eventbus.New(env.EventBridge, env.Bus, env.Bucket, store, func() time.Time { return testNow })}
}

// stored is a task that a copier has just marked stored.
func (h *harness) stored(tb testing.TB, id string) task.Task {
	tb.Helper()
	ctx := context.Background()
	cb := task.Callback{TaskID: id, Code: 200, Msg: "success", API: "midjourney", Sources: []string{"https://tempfile.aiquickdraw.com/m/1.png"}}
	if _, _, err := h.store.Create(ctx, task.New(cb, testNow.Add(-time.Minute), time.Hour)); err != nil {
		tb.Fatal(err)
	}
	t, err := h.store.Update(ctx, task.MarkStored(id, "", []task.Object{{Key: "tasks/" + id + "/0.png", Bytes: 42, SHA256: strings.Repeat("ab", 32), ContentType: "image/png", Source: cb.Sources[0]}}, testNow))
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

func (h *harness) unnotified(tb testing.TB, status task.Status) []task.Task {
	tb.Helper()
	tasks, err := h.store.Unnotified(context.Background(), status, testNow.Add(time.Hour), 10)
	if err != nil {
		tb.Fatal(err)
	}
	return tasks
}

func TestNotifyPutsTheEventThenRecordsIt(t *testing.T) {
	h := newHarness(t)
	st := h.stored(t, "ev_stored")
	if got := h.unnotified(t, task.StatusStored); len(got) != 1 || got[0].ID != "ev_stored" {
		t.Fatalf("a stored task must wait in the unnotified index: %+v", got)
	}
	if err := h.bus.Notify(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	events := h.env.Events()
	if len(events) != 1 {
		t.Fatalf("%d events", len(events))
	}
	ev := events[0]
	if ev.Bus != h.env.Bus || ev.Source != taskevent.Source || ev.DetailType != taskevent.Stored {
		t.Errorf("event %+v", ev)
	}
	var d taskevent.Detail
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		t.Fatal(err)
	}
	want := taskevent.Object{Bucket: h.env.Bucket, Key: "tasks/ev_stored/0.png", Bytes: 42, SHA256: strings.Repeat("ab", 32), ContentType: "image/png", Source: "https://tempfile.aiquickdraw.com/m/1.png"}
	if d.TaskID != "ev_stored" || d.Status != "stored" || d.API != "midjourney" || d.Code != 200 || d.Deliveries != 1 || d.StoredAt != "2025-11-28T03:20:00Z" || len(d.Objects) != 1 || d.Objects[0] != want {
		t.Errorf("detail %+v", d)
	}
	rec, _, _ := h.store.Get(context.Background(), "ev_stored")
	if !rec.NotifiedAt.Equal(testNow) {
		t.Errorf("notifiedAt %v, want %v", rec.NotifiedAt, testNow)
	}
	if got := h.unnotified(t, task.StatusStored); len(got) != 0 {
		t.Errorf("a notified task stays in the unnotified index: %+v", got)
	}
	t.Run("a notified task puts nothing again", func(t *testing.T) {
		if err := h.bus.Notify(context.Background(), rec); err != nil || len(h.env.Events()) != 1 {
			t.Errorf("err %v, %d events", err, len(h.env.Events()))
		}
	})
}

func TestNotifyPutsNothingForATaskThatIsNotFinal(t *testing.T) {
	h := newHarness(t)
	for _, s := range []task.Status{task.StatusPending, task.StatusQueued} {
		if err := h.bus.Notify(context.Background(), task.Task{ID: "ev_open", Status: s}); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if n := len(h.env.Events()); n != 0 {
		t.Errorf("%d events for open tasks", n)
	}
}

func TestNotifyFailuresLeaveTheTaskUnnotified(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
	}{
		{"a failed entry", func(h *harness) { h.env.RefuseEntries(true) }},
		{"a bus that cannot be reached", func(h *harness) {
			down := eventbridge.NewFromConfig(emulators.Config(), func(o *eventbridge.Options) {
				o.BaseEndpoint = aws.String("http://127.0.0.1:1")
				o.RetryMaxAttempts = 1
			})
			h.bus = eventbus.New(down, h.env.Bus, h.env.Bucket, h.store, time.Now)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is an error and leaves the task unnotified", func(t *testing.T) {
			h := newHarness(t)
			st := h.stored(t, "ev_fail")
			tt.setup(h)
			if err := h.bus.Notify(context.Background(), st); err == nil {
				t.Fatal("want an error")
			}
			if got := h.unnotified(t, task.StatusStored); len(got) != 1 {
				t.Errorf("the task left the unnotified index: %+v", got)
			}
		})
	}
}

func TestNotifiedLeavesATaskThatMovedOnAlone(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	failed := task.New(task.Callback{TaskID: "ev_moved", Code: 501, API: "veo"}, testNow, time.Hour)
	h.store.Create(ctx, failed)
	win := task.Callback{TaskID: "ev_moved", Code: 200, API: "veo", Sources: []string{"https://x/v.mp4"}}
	success, _, _ := task.Repeat(failed, win, testNow, time.Hour)
	if _, err := h.store.Update(ctx, success); err != nil {
		t.Fatal(err)
	}
	// The failure's event is put late, after a success replaced it.
	if err := h.bus.Notify(ctx, failed); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := h.store.Get(ctx, "ev_moved")
	if !rec.NotifiedAt.IsZero() || rec.Status != task.StatusQueued {
		t.Errorf("record %+v: the queued task must not read as notified", rec)
	}
}

func TestAnEventPastEventBridgesLimitIsShrunkNeverRetriedForever(t *testing.T) {
	long := "https://tempfile.aiquickdraw.com/m/" + strings.Repeat("x", 2000) + ".png"
	manyObjects := func(n int) []task.Object {
		var objects []task.Object
		for i := range n {
			objects = append(objects, task.Object{Key: fmt.Sprintf("tasks/big/%d.png", i), Bytes: 1, SHA256: strings.Repeat("ab", 32), ContentType: "image/png", Source: long})
		}
		return objects
	}
	tests := []struct {
		name        string
		t           task.Task
		keepObjects bool
	}{
		{"200 results with 2 KB source URLs lose their sources", task.Task{Objects: manyObjects(200)}, true},
		{"a message of 300 KB is cut", task.Task{Msg: strings.Repeat("é", 150<<10), Objects: manyObjects(2)}, true},
		{"2,000 results go, the record keeps them", task.Task{Objects: manyObjects(2000)}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tt.t.ID, tt.t.Status, tt.t.API, tt.t.UpdatedAt = fmt.Sprint("big_", i), task.StatusStored, "midjourney", testNow
			if err := h.bus.Notify(context.Background(), tt.t); err != nil {
				t.Fatalf("Notify: %v: the sweep would retry it forever", err)
			}
			evs := h.env.Events()
			if len(evs) != 1 || len(evs[0].Detail) > eventbus.MaxEntryBytes {
				t.Fatalf("%d events, detail of %d bytes", len(evs), len(evs[0].Detail))
			}
			var d taskevent.Detail
			if err := json.Unmarshal(evs[0].Detail, &d); err != nil || !utf8.ValidString(d.Msg) {
				t.Fatalf("detail: %v", err)
			}
			if (len(d.Objects) == len(tt.t.Objects)) != tt.keepObjects {
				t.Errorf("%d of %d objects in the event", len(d.Objects), len(tt.t.Objects))
			}
			for _, o := range d.Objects {
				if o.Source != "" && len(tt.t.Objects) > 2 {
					t.Error("a source URL was kept though the event had to shrink")
				}
			}
		})
	}
}

func TestEveryEventTheBusTakesIsCounted(t *testing.T) {
	h := newHarness(t)
	var out strings.Builder
	h.bus.Metrics = metrics.New(&out, "kiehook", func() time.Time { return testNow })
	if err := h.bus.Notify(context.Background(), h.stored(t, "counted")); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, `"EventsPut":1`) || !strings.Contains(got, `"Outcome":"Task Stored"`) {
		t.Errorf("metrics %s", got)
	}
}
