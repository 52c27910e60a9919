package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sync"
	"testing"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// sunoStage is a Suno callback of kind text, first, complete or error for
// a task of two tracks, shaped as the samples in events/kie-callbacks are.
func sunoStage(id, kind string) string {
	track := func(n int, done bool) map[string]any {
		t := map[string]any{"id": fmt.Sprint(id, "-track-", n), "audio_url": "", "image_url": "", "title": "Night City"}
		if done {
			t["audio_url"] = fmt.Sprintf("https://tempfile.aiquickdraw.com/r/%s-track%d.mp3", id, n)
			t["image_url"] = fmt.Sprintf("https://tempfile.aiquickdraw.com/r/%s-cover%d.jpg", id, n)
		}
		return t
	}
	code, msg := 200, "All generated successfully."
	var tracks any = []map[string]any{track(1, kind != "text"), track(2, kind == "complete")}
	if kind == "error" {
		code, msg, tracks = 501, "Audio generation failed.", nil
	}
	b, _ := json.Marshal(map[string]any{"code": code, "msg": msg, "data": map[string]any{"callbackType": kind, "task_id": id, "data": tracks}})
	return string(b)
}

// allTracks are the four URLs of a complete sunoStage, in document order.
func allTracks(id string) []string {
	var urls []string
	for n := 1; n <= 2; n++ {
		urls = append(urls, fmt.Sprintf("https://tempfile.aiquickdraw.com/r/%s-track%d.mp3", id, n), fmt.Sprintf("https://tempfile.aiquickdraw.com/r/%s-cover%d.jpg", id, n))
	}
	return urls
}

func TestProgressCallbacks(t *testing.T) {
	t.Run("the samples' text and first callbacks keep their task pending and queue nothing", func(t *testing.T) {
		h := newHarness(t, signed())
		for _, file := range []string{"suno-text.json", "suno-first.json"} {
			b, err := fs.ReadFile(sample.Files, "kie-callbacks/"+file)
			if err != nil {
				t.Fatal(err)
			}
			if status, a := h.call(t, callback(t, string(b))); status != 200 {
				t.Fatalf("%s: got %d %+v", file, status, a)
			}
		}
		rec := h.record(t, "5c79b2a4e1d0")
		if rec.Status != task.StatusPending || rec.Deliveries != 2 || rec.API != "suno" || len(rec.Sources) != 0 || rec.SubmittedAt.IsZero() {
			t.Errorf("record %+v, want pending with two deliveries and no sources", rec)
		}
		if ids := h.messages(t); len(ids) != 0 {
			t.Errorf("queued %v", ids)
		}
	})
	t.Run("a progress callback is accepted the first time and a duplicate after", func(t *testing.T) {
		h := newHarness(t, signed())
		if _, a := h.call(t, callback(t, sunoStage("prog_answers", "text"))); a.Status != "accepted" {
			t.Errorf("text: %+v", a)
		}
		if _, a := h.call(t, callback(t, sunoStage("prog_answers", "first"))); a.Status != "duplicate" {
			t.Errorf("first: %+v", a)
		}
		if _, a := h.call(t, callback(t, sunoStage("prog_answers", "complete"))); a.Status != "accepted" {
			t.Errorf("complete: %+v, want accepted: it queues the task", a)
		}
	})
	t.Run("a registered task's first progress callback is accepted and keeps it pending", func(t *testing.T) {
		h := newHarness(t, signed())
		h.seed(t, task.Task{ID: "prog_registered", Status: task.StatusPending, API: "suno", SubmittedAt: testNow})
		if _, a := h.call(t, callback(t, sunoStage("prog_registered", "text"))); a.Status != "accepted" {
			t.Errorf("text: %+v", a)
		}
		if rec := h.record(t, "prog_registered"); rec.Status != task.StatusPending || rec.Deliveries != 1 || !rec.ReceivedAt.Equal(testNow) {
			t.Errorf("record %+v", rec)
		}
	})

	// Every order in which the platform's three callbacks can arrive (late
	// first, text after complete, …) ends queued once, with every track.
	orders := [][]string{
		{"text", "first", "complete"}, {"text", "complete", "first"}, {"first", "text", "complete"},
		{"first", "complete", "text"}, {"complete", "text", "first"}, {"complete", "first", "text"},
	}
	for i, order := range orders {
		t.Run(fmt.Sprintf("%v ends queued with every track", order), func(t *testing.T) {
			h := newHarness(t, signed())
			id := fmt.Sprint("prog_order_", i)
			for _, kind := range order {
				if status, a := h.call(t, callback(t, sunoStage(id, kind))); status != 200 {
					t.Fatalf("%s: got %d %+v", kind, status, a)
				}
			}
			h.assertQueuedWithAllTracks(t, id, 3)
		})
	}
	failures := [][]string{{"text", "error"}, {"text", "first", "error"}, {"error", "first"}, {"error", "text"}, {"first", "error", "text"}}
	for i, order := range failures {
		t.Run(fmt.Sprintf("%v ends failed, never queued", order), func(t *testing.T) {
			h := newHarness(t, signed())
			id := fmt.Sprint("prog_fail_", i)
			for _, kind := range order {
				h.call(t, callback(t, sunoStage(id, kind)))
			}
			rec := h.record(t, id)
			if rec.Status != task.StatusFailed || rec.Code != 501 || rec.Deliveries != len(order) {
				t.Errorf("record %+v, want failed with code 501 and %d deliveries", rec, len(order))
			}
			if ids := h.messages(t); len(ids) != 0 {
				t.Errorf("queued %v", ids)
			}
		})
	}
	t.Run("a success after an error still wins, a progress callback after an error does not", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, sunoStage("prog_win", "error")))
		h.call(t, callback(t, sunoStage("prog_win", "first")))
		if rec := h.record(t, "prog_win"); rec.Status != task.StatusFailed {
			t.Fatalf("a first callback moved a failed task to %s", rec.Status)
		}
		h.call(t, callback(t, sunoStage("prog_win", "complete")))
		h.assertQueuedWithAllTracks(t, "prog_win", 3)
	})
	t.Run("concurrent deliveries of every stage end queued once with every track", func(t *testing.T) {
		h := newHarness(t, signed())
		var wg sync.WaitGroup
		for range 4 {
			for _, kind := range []string{"text", "first", "complete"} {
				wg.Go(func() {
					if status, a := h.call(t, callback(t, sunoStage("prog_race", kind))); status != 200 {
						t.Errorf("%s: got %d %+v", kind, status, a)
					}
				})
			}
		}
		wg.Wait()
		rec := h.record(t, "prog_race")
		if rec.Status != task.StatusQueued || rec.Deliveries != 12 || !slices.Equal(rec.Sources, allTracks("prog_race")) {
			t.Errorf("record %+v", rec)
		}
		// A repeat that finds the record still received queues it again (see
		// TestConcurrentRepeatsCreateOneRecord); what matters is that the
		// copied task is this one, with every track.
		if ids := h.messages(t); len(ids) == 0 {
			t.Error("the task was never queued")
		}
	})
}

func (h *harness) assertQueuedWithAllTracks(tb testing.TB, id string, deliveries int) {
	tb.Helper()
	rec := h.record(tb, id)
	if rec.Status != task.StatusQueued || rec.Deliveries != deliveries || !slices.Equal(rec.Sources, allTracks(id)) {
		tb.Errorf("record %+v, want queued with %d deliveries and every track", rec, deliveries)
	}
	if ids := h.messages(tb); !slices.Equal(ids, []string{id}) {
		tb.Errorf("queued %v, want %s once", ids, id)
	}
}
