package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// audit waits for the copies to settle, then checks every task against
// what the platform was told.
func audit(ctx context.Context, s *stack.Stack, tasks []*Task, firstOK map[string]time.Time, start time.Time, wait time.Duration, rep *Report) error {
	records, dlq, err := settle(ctx, s, tasks, wait)
	if err != nil {
		return err
	}
	rep.DrainSeconds = time.Since(start).Seconds()
	rep.Options.Progress.Phase("auditing", nil)
	if records, err = awaitEvents(ctx, s, records, time.Now().Add(min(wait, 30*time.Second))); err != nil {
		return err
	}
	rep.auditEvents(s, records)
	if fwd := rep.forwarded; fwd != nil {
		rep.auditForwarded(ctx, fwd, records, time.Now().Add(min(wait, 30*time.Second)))
	}
	objects, err := listObjects(ctx, s)
	if err != nil {
		return err
	}
	byTask := map[string]*Task{}
	var lastStored time.Time
	for _, t := range tasks {
		byTask[t.ID] = t
		r, known := records[t.ID]
		switch t.Kind {
		case Success:
			rep.Planned.Success++
		case Failure:
			rep.Planned.Failure++
		case FailThenWin:
			rep.Planned.FailThenWin++
		}
		switch {
		case t.Accepted && known && r.Status == "stored":
			rep.Stored++
			rep.checkObjects(s, t, r, objects)
			if at, err := schema.ParseTimestamp(r.StoredAt); err == nil && !at.IsZero() {
				lastStored = maxTime(lastStored, at)
				// storedAt has whole seconds; a copy within the second reads 0.
				rep.toStored = append(rep.toStored, max(0, at.Sub(firstOK[t.ID].Truncate(time.Second))))
			}
		case t.Accepted && dlq[t.ID]:
			rep.InDLQ++
			rep.note("in DLQ: %s (record %s)", t.ID, r.Status)
		case t.Accepted && known && r.Status == "copy_failed":
			rep.CopyFailed++
			rep.note("copy_failed: %s: %s", t.ID, r.Error)
		case t.Accepted:
			rep.Lost++
			rep.note("LOST: %s accepted, record %q", t.ID, r.Status)
		case known && r.Status == "stored":
			// Its success was never answered 200, but a refused callback
			// may have written its record all the same (queued, its send
			// refused): that record is the task's, and is copied.
			rep.NeverAccepted++
			rep.StoredUnanswered++
			rep.checkObjects(s, t, r, objects)
		case t.Failed && known && r.Status == "failed":
			rep.FailedOK++
		case t.Failed:
			rep.Lost++
			rep.note("LOST: failure of %s accepted, record %q", t.ID, r.Status)
		default:
			rep.NeverAccepted++
		}
	}
	rep.auditTable(records, dlq, objects, copyMessages(s))
	if rep.OpenUploads, err = s.Env.OpenUploads(ctx); err != nil {
		return err
	}
	for id := range dlq {
		t, ok := byTask[id]
		switch {
		case ok && t.Accepted && records[id].Status == "stored" && rep.Options.StoredDeadLetters:
			rep.DeadLettersOfStored++
		case !ok || !t.Accepted || records[id].Status == "stored":
			rep.DLQUnexpected++
			rep.note("DLQ holds %s, which the scenario did not send there", id)
		}
	}
	slices.Sort(rep.toStored)
	rep.QueueLeft = emulators.QueueDepth(s.Env.QueueName)
	rep.DLQ = len(dlq)
	if !lastStored.IsZero() {
		rep.CopySeconds = lastStored.Sub(start.Truncate(time.Second)).Seconds()
	}
	return nil
}

// settle waits until the queue is empty and every record has ended (a
// task whose message is in the dead-letter queue ends when the reconciler
// gives it up), and every accepted task has a record, or wait has passed.
func settle(ctx context.Context, s *stack.Stack, tasks []*Task, wait time.Duration) (map[string]stack.Task, map[string]bool, error) {
	deadline := time.Now().Add(wait)
	for {
		list, err := s.Tasks(ctx)
		if err != nil {
			return nil, nil, err
		}
		records := make(map[string]stack.Task, len(list))
		open := 0
		for _, r := range list {
			records[r.TaskID] = r
			if detailTypes[r.Status] == "" {
				open++
			}
		}
		for _, t := range tasks {
			if _, known := records[t.ID]; !known && (t.Accepted || t.Failed) {
				open++
			}
		}
		if (open == 0 && emulators.QueueDepth(s.Env.QueueName) == 0) || time.Now().After(deadline) {
			dlq := map[string]bool{}
			for _, m := range queueMessages(s.Env.DLQName) {
				dlq[m.TaskID] = true
			}
			return records, dlq, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// queueMessages are the copy messages in the queue name, visible or in
// flight.
func queueMessages(name string) []schema.CopyMessage {
	var out []schema.CopyMessage
	for _, body := range emulators.Messages(name) {
		var m schema.CopyMessage
		if json.Unmarshal([]byte(body), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// copyMessages are, by task, the newest queueing that a message in the
// copy queue (visible or in flight) is for.
func copyMessages(s *stack.Stack) map[string]int {
	newest := map[string]int{}
	for _, m := range queueMessages(s.Env.QueueName) {
		if g, ok := newest[m.TaskID]; !ok || m.Generation > g {
			newest[m.TaskID] = m.Generation
		}
	}
	return newest
}

// auditTable holds the table and the bucket to each other, whatever the
// platform was told. A record short of final with no message of its
// queueing on the copy queue is stranded: nothing would ever move it (the
// stack's reconciler has no API key, so it polls no pending task). Every
// object under the prefix must be named by a stored record: a copy_failed
// record names none.
func (r *Report) auditTable(records map[string]stack.Task, dlq map[string]bool, objects map[string]object, messages map[string]int) {
	named := map[string]bool{}
	for id, rec := range records {
		if g, ok := messages[id]; detailTypes[rec.Status] == "" && (!ok || g < rec.Generation) {
			r.Stranded++
			r.note("STRANDED: %s is %s with no copy message on its way", id, rec.Status)
		}
		if rec.Status == "stored" {
			for _, o := range rec.Objects {
				named[o.Key] = true
			}
		}
		if rec.Status == "copy_failed" && dlq[id] {
			r.CopiesGivenUp++
		}
		if rec.ResentAt != "" {
			r.Resent++
		}
	}
	for key := range objects {
		if !named[key] {
			r.UnnamedObjects++
			r.note("object %s: no stored record names it", key)
		}
	}
}

type object struct {
	size int64
}

// objectPrefix is where the copier writes: OBJECT_PREFIX's default, which
// the stack keeps.
const objectPrefix = "tasks/"

// listObjects lists the bucket under objectPrefix.
func listObjects(ctx context.Context, s *stack.Stack) (map[string]object, error) {
	objects := map[string]object{}
	p := s3.NewListObjectsV2Paginator(s.Env.S3, &s3.ListObjectsV2Input{Bucket: &s.Env.Bucket, Prefix: new(objectPrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			objects[*o.Key] = object{size: *o.Size}
		}
	}
	return objects, nil
}

// checkObjects compares a stored task's objects with the source files:
// one per URL, in order, with the source's bytes and SHA-256.
func (r *Report) checkObjects(s *stack.Stack, t *Task, rec stack.Task, objects map[string]object) {
	if len(rec.Objects) != len(t.Files) {
		r.Corrupt++
		r.note("%s: %d objects for %d results", t.ID, len(rec.Objects), len(t.Files))
		return
	}
	for i, o := range rec.Objects {
		u, _ := url.Parse(o.Source)
		size, digest := platform.Digest(u.Path)
		stored, exists := objects[o.Key]
		if u.Path != "/"+t.Files[i] || o.Bytes != size || o.SHA256 != digest || !exists || stored.size != size {
			r.Corrupt++
			r.note("%s object %d: %s %d bytes sha %s, want %s %d bytes sha %s (in bucket: %v)", t.ID, i, o.Key, o.Bytes, o.SHA256, t.Files[i], size, digest, exists)
			continue
		}
		r.BytesCopied += size
		r.Objects++
	}
}

func (r *Report) note(format string, args ...any) {
	if len(r.Notes) < 50 {
		r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
