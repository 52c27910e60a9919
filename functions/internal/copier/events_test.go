package copier

import (
	"context"
	"encoding/json"
	"io/fs"
	"slices"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestSampleEventsRunThroughTheHandler(t *testing.T) {
	files, _ := fs.Glob(sample.Files, "copier-*.json")
	if len(files) == 0 {
		t.Fatal("no copier events")
	}
	for _, file := range files {
		t.Run(file+" copies every task it names, once", func(t *testing.T) {
			b, _ := fs.ReadFile(sample.Files, file)
			var ev events.SQSEvent
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("decode: %v", err)
			}
			h := newHarness(t)
			var ids []string
			for _, rec := range ev.Records {
				var m struct{ TaskID string }
				json.Unmarshal([]byte(rec.Body), &m)
				if !slices.Contains(ids, m.TaskID) { // a batch may deliver a task twice
					h.seed(t, m.TaskID, task.StatusQueued, "/img.png")
					ids = append(ids, m.TaskID)
				}
			}
			// A second delivery of a task in the same batch is the same
			// copy as the first.
			resp, err := h.handler.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v %v", resp.BatchItemFailures, err)
			}
			for _, id := range ids {
				h.assertStored(t, id, "/img.png")
			}
		})
	}
}
