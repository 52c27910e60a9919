package load

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/stack"
)

// detailTypes are the task events' detail types, by final status.
var detailTypes = map[string]string{"stored": "Task Stored", "failed": "Task Failed", "copy_failed": "Task Copy Failed"}

// eventDetail is what the audit reads of an event's detail.
type eventDetail struct {
	TaskID  string        `json:"taskId"`
	Status  string        `json:"status"`
	Objects []eventObject `json:"objects"`
}

type eventObject struct {
	Bucket, Key, SHA256 string
	Bytes               int64
}

// awaitEvents waits, at most until deadline, for every ended record to be
// notified: its function puts the event at once, the reconciler's sweep
// seconds later when a fault stopped it.
func awaitEvents(ctx context.Context, s *stack.Stack, records map[string]stack.Task, deadline time.Time) (map[string]stack.Task, error) {
	for {
		waiting := 0
		for _, r := range records {
			if detailTypes[r.Status] != "" && r.NotifiedAt == "" {
				waiting++
			}
		}
		if waiting == 0 || time.Now().After(deadline) {
			return records, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		list, err := s.Tasks(ctx)
		if err != nil {
			return nil, err
		}
		records = make(map[string]stack.Task, len(list))
		for _, r := range list {
			records[r.TaskID] = r
		}
	}
}

// auditEvents checks the bus against the records: every ended task has an
// event of its final status whose detail is its record; a task that has not
// ended has none. Repeats of one task and status are counted, not faults:
// delivery is at least once.
func (r *Report) auditEvents(s *stack.Stack, records map[string]stack.Task) {
	seen := map[[2]string]int{}
	for _, ev := range s.Env.Events() {
		r.Events++
		var d eventDetail
		if err := json.Unmarshal(ev.Detail, &d); err != nil || ev.Source != "kiehook" || ev.Bus != s.Env.Bus || detailTypes[d.Status] != ev.DetailType {
			r.EventsWrong++
			r.note("event %s of %s: %s", ev.DetailType, d.TaskID, ev.Detail)
			continue
		}
		key := [2]string{d.TaskID, d.Status}
		if seen[key]++; seen[key] > 1 {
			r.EventRepeats++
		}
		rec, ok := records[d.TaskID]
		switch {
		case !ok || detailTypes[rec.Status] == "" && !supersededFailure(d.Status, rec.Status):
			r.EventsForOpen++
			r.note("event %s of %s, whose record is %q", ev.DetailType, d.TaskID, rec.Status)
		case d.Status == rec.Status && !sameObjects(d, rec, s.Env.Bucket):
			r.EventsWrong++
			r.note("event %s of %s does not describe its record's objects", ev.DetailType, d.TaskID)
		}
	}
	for id, rec := range records {
		if detailTypes[rec.Status] != "" && seen[[2]string{id, rec.Status}] == 0 {
			r.EventsMissing++
			r.note("no %s event for %s", detailTypes[rec.Status], id)
		}
	}
}

func sameObjects(d eventDetail, rec stack.Task, bucket string) bool {
	return slices.EqualFunc(d.Objects, rec.Objects, func(e eventObject, o stack.Object) bool {
		return e.Bucket == bucket && e.Key == o.Key && e.SHA256 == o.SHA256 && e.Bytes == o.Bytes
	})
}

// auditForwarded waits, at most until deadline, for every ended task's
// event to reach the endpoint the stack forwards to (retried there as
// EventBridge retries), then counts what arrived: every ended task's
// detail at least once, none for a task that has not ended.
func (r *Report) auditForwarded(ctx context.Context, fwd *forward.Receiver, records map[string]stack.Task, deadline time.Time) {
	for {
		seen := map[[2]string]int{}
		details := fwd.Details()
		for _, raw := range details {
			var d eventDetail
			json.Unmarshal(raw, &d)
			seen[[2]string{d.TaskID, d.Status}]++
		}
		var missing []string
		for id, rec := range records {
			if detailTypes[rec.Status] != "" && seen[[2]string{id, rec.Status}] == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		r.Forwarded, r.ForwardedMissing, r.ForwardRefused = len(details), len(missing), int(fwd.Refused.Load())
		for _, id := range missing {
			r.note("no forwarded %s for %s", detailTypes[records[id].Status], id)
		}
		for key, n := range seen {
			if rec := records[key[0]]; detailTypes[rec.Status] == "" && !supersededFailure(key[1], rec.Status) {
				r.ForwardedForOpen += n
				r.note("forwarded %s of %s, whose record is %q", key[1], key[0], rec.Status)
			}
		}
		return
	}
}

// supersededFailure reports whether an event of status failed belongs to a
// task that a later success took out of failed (received, queued): the
// event was due when it was put, and the task's next end brings its own.
func supersededFailure(eventStatus, recordStatus string) bool {
	return eventStatus == "failed" && recordStatus != ""
}
