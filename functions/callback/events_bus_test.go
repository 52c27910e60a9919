package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/emulators"
)

// detailsOf are the details of the events put so far, by detail type.
func detailsOf(tb testing.TB, env *emulators.Env) map[string][]taskevent.Detail {
	tb.Helper()
	out := map[string][]taskevent.Detail{}
	for _, ev := range env.Events() {
		var d taskevent.Detail
		if err := json.Unmarshal(ev.Detail, &d); err != nil {
			tb.Fatal(err)
		}
		if ev.Source != taskevent.Source || ev.Bus != env.Bus {
			tb.Errorf("event from %q on %q", ev.Source, ev.Bus)
		}
		out[ev.DetailType] = append(out[ev.DetailType], d)
	}
	return out
}

func TestTaskEventsOfTheCallback(t *testing.T) {
	const url = "https://tempfile.aiquickdraw.com/a.png"
	t.Run("a new failure puts one Task Failed event and records it", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, failure("ev_fail", 501)))
		got := detailsOf(t, h.env)
		if d := got[taskevent.Failed]; len(d) != 1 || d[0].TaskID != "ev_fail" || d[0].Status != "failed" || d[0].Code != 501 || d[0].Msg == "" || len(got) != 1 {
			t.Errorf("events %+v", got)
		}
		if rec := h.record(t, "ev_fail"); !rec.NotifiedAt.Equal(testNow) {
			t.Errorf("notifiedAt %v", rec.NotifiedAt)
		}
		h.call(t, callback(t, failure("ev_fail", 501)))
		if n := len(h.env.Events()); n != 1 {
			t.Errorf("a duplicate failure put another event: %d", n)
		}
	})
	t.Run("a task that is not final puts nothing", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, success("ev_ok", url)))
		h.call(t, callback(t, sunoStage("ev_progress", "text")))
		if n := len(h.env.Events()); n != 0 {
			t.Errorf("%d events for a queued and a pending task", n)
		}
	})
	t.Run("a pending task's final error puts Task Failed", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, sunoStage("ev_suno", "text")))
		h.call(t, callback(t, sunoStage("ev_suno", "error")))
		if d := detailsOf(t, h.env)[taskevent.Failed]; len(d) != 1 || d[0].TaskID != "ev_suno" || d[0].Deliveries != 2 || d[0].API != "suno" {
			t.Errorf("events %+v", d)
		}
	})
	t.Run("a refused entry still answers 200 and leaves the task to the sweep", func(t *testing.T) {
		h := newHarness(t, signed())
		h.env.RefuseEntries(true)
		if status, a := h.call(t, callback(t, failure("ev_refused", 500))); status != 200 || a.Status != "accepted" {
			t.Fatalf("got %d %+v", status, a)
		}
		rec := h.record(t, "ev_refused")
		if rec.Status != task.StatusFailed || !rec.NotifiedAt.IsZero() {
			t.Errorf("record %+v", rec)
		}
		left, err := h.store.Unnotified(context.Background(), task.StatusFailed, testNow.Add(time.Second), 10)
		if err != nil || len(left) != 1 {
			t.Errorf("unnotified %+v %v", left, err)
		}
		if !strings.Contains(h.logs.String(), "ev_refused") {
			t.Errorf("the failed put is not logged: %s", h.logs.String())
		}
	})
}
