package task_test

import (
	"errors"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestRepeat(t *testing.T) {
	now := time.Unix(1764300000, 0).UTC()
	ok := task.Callback{TaskID: "t1", Code: 200, Msg: "success", Sources: []string{"https://x/a.png"}}
	bad := task.Callback{TaskID: "t1", Code: 501, Msg: "failed"}
	progress := task.Callback{TaskID: "t1", Code: 200, Msg: "First track generated", Sources: []string{"https://x/t1.mp3"}, Progress: true}
	tests := []struct {
		name    string
		from    task.Status
		cb      task.Callback
		to      task.Status
		outcome task.Outcome
		queue   bool
		replace bool
	}{
		{"a pending task's success is queued", task.StatusPending, ok, task.StatusQueued, task.Accepted, true, true},
		{"a pending task's failure is recorded as failed", task.StatusPending, bad, task.StatusFailed, task.Accepted, false, true},
		{"a success after a failure replaces it", task.StatusFailed, ok, task.StatusQueued, task.Accepted, true, true},
		{"a failure after a failure is a duplicate", task.StatusFailed, bad, "", task.Duplicate, false, false},
		{"a queued task is a duplicate", task.StatusQueued, ok, "", task.Duplicate, false, false},
		{"a stored task is a duplicate", task.StatusStored, ok, "", task.Duplicate, false, false},
		{"a copy_failed task is a duplicate", task.StatusCopyFailed, ok, "", task.Duplicate, false, false},
		{"a registered task's first progress callback is accepted and leaves it pending", task.StatusPending, progress, "", task.Accepted, false, false},
		{"a progress callback never moves a failed task on", task.StatusFailed, progress, "", task.Duplicate, false, false},
		{"a progress callback after the final one changes nothing", task.StatusQueued, progress, "", task.Duplicate, false, false},
		{"a progress callback after the copy changes nothing", task.StatusStored, progress, "", task.Duplicate, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, outcome, queue := task.Repeat(task.Task{ID: "t1", Status: tt.from}, tt.cb, now, time.Hour)
			e := c.Effect()
			if e.Status != tt.to || outcome != tt.outcome || queue != tt.queue || (e.Result != nil) != tt.replace {
				t.Errorf("got to=%q outcome=%s queue=%v replace=%v", e.Status, outcome, queue, e.Result != nil)
			}
			if c.Condition().Status != tt.from || !e.AddDelivery || c.ID() != "t1" {
				t.Errorf("change %+v must be conditional on %s and count the delivery", c, tt.from)
			}
		})
	}
}

func TestNew(t *testing.T) {
	now := time.Unix(1764300000, 0).UTC()
	got := task.New(task.Callback{TaskID: "t1", Code: 200, Sources: []string{"u"}}, now, time.Hour)
	if got.Status != task.StatusQueued || got.Deliveries != 1 || !got.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("new success %+v", got)
	}
	if got := task.New(task.Callback{TaskID: "t2", Code: 200}, now, time.Hour); got.Status != task.StatusFailed {
		t.Errorf("a success without results is %s, want failed", got.Status)
	}
	for _, code := range []int{200, 501} {
		got := task.New(task.Callback{TaskID: "t3", Code: code, API: "suno", Sources: []string{"u"}, Progress: true}, now, time.Hour)
		if got.Status != task.StatusPending || len(got.Sources) != 0 || got.Deliveries != 1 || !got.SubmittedAt.Equal(now) || !got.ReceivedAt.Equal(now) {
			t.Errorf("a first progress callback with code %d made %+v, want pending, polled from now, with no sources", code, got)
		}
	}
}

func TestErrorsHideInternalCauses(t *testing.T) {
	err := task.Wrap(task.EUNAVAILABLE, "queue unavailable", errSecret("10.1.2.3 refused"))
	if task.ErrorCode(err) != task.EUNAVAILABLE || task.ErrorMessage(err) != "queue unavailable" {
		t.Errorf("code %s message %s", task.ErrorCode(err), task.ErrorMessage(err))
	}
	if task.ErrorCode(errSecret("x")) != task.EINTERNAL || task.ErrorMessage(errSecret("x")) != "internal error" {
		t.Error("an uncoded error must read as internal with an opaque message")
	}
}

type errSecret string

func (e errSecret) Error() string { return string(e) }

func TestTheReconcilersChangesHoldOnlyWhileNothingMovedTheTask(t *testing.T) {
	listed := task.Task{ID: "t1", Status: task.StatusPending, API: "veo", UpdatedAt: time.Unix(1764300000, 0).UTC()}
	now := listed.UpdatedAt.Add(time.Hour)
	moved := listed
	moved.UpdatedAt = listed.UpdatedAt.Add(time.Minute)
	for _, tt := range []struct {
		name   string
		change task.Change
		want   task.Status
	}{
		{"a claim moves only the clock", task.Claim(listed, now), task.StatusPending},
		{"an expiry fails the task, saying why", task.Expire(listed, "no result", now), task.StatusFailed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := task.Apply(listed, tt.change)
			if err != nil || got.Status != tt.want || !got.UpdatedAt.Equal(now) {
				t.Errorf("applied to the listed record: %+v %v", got, err)
			}
			if _, err := task.Apply(moved, tt.change); !errors.Is(err, task.ErrStale) {
				t.Errorf("applied to a record moved since it was listed: %v, want ErrStale", err)
			}
		})
	}
	if got, _ := task.Apply(listed, task.Expire(listed, "no result", now)); got.Msg != "no result" || got.API != "veo" {
		t.Errorf("an expiry records its reason as the task's msg: %+v", got)
	}
}
