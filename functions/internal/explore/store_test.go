package explore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// store is the task table: records by value, and task.Apply the only
// rule that changes one, as in dynamo.Store. Its Open and Unnotified read
// the sparse open index as dynamo's do.
type store struct {
	w    *world
	recs map[string]task.Task
}

func (s *store) Get(ctx context.Context, id string) (task.Task, bool, error) {
	c := s.w.call("Get "+id, 0, nil)
	if c.failed() {
		c.end("")
		return task.Task{}, false, c.err()
	}
	t, ok := s.recs[id]
	if !ok {
		c.end("none", false)
		return task.Task{}, false, nil
	}
	c.end(brief(t), digest(t))
	return t, true, nil
}

func (s *store) Create(ctx context.Context, t task.Task) (task.Task, bool, error) {
	c := s.w.call("Create "+t.ID+" "+string(t.Status), mayLose|mayRefuse, nil)
	if c.failed() {
		c.end("")
		return task.Task{}, false, c.err()
	}
	if existing, ok := s.recs[t.ID]; ok {
		if c.lost() {
			c.end("exists")
			return task.Task{}, false, errLost
		}
		c.end("exists: "+brief(existing), digest(existing))
		return existing, false, nil
	}
	s.put(task.Task{}, t)
	if c.lost() {
		c.end("created")
		return task.Task{}, false, errLost
	}
	c.end("created")
	return task.Task{}, true, nil
}

func (s *store) Update(ctx context.Context, ch task.Change) (task.Task, error) {
	c := s.w.call("Update "+ch.ID()+" "+describe(ch), mayLose|mayRefuse|mayRetry, nil)
	if c.failed() {
		c.end("")
		return task.Task{}, c.err()
	}
	prev, ok := s.recs[ch.ID()]
	if !ok {
		c.end("stale: no record")
		return task.Task{}, task.ErrStale
	}
	next, err := task.Apply(prev, ch)
	if err != nil {
		if c.lost() {
			c.end("stale")
			return task.Task{}, errLost
		}
		c.end("stale: "+brief(prev), digest(prev))
		return task.Task{}, &task.StaleError{Current: prev}
	}
	s.put(prev, next)
	if c.lost() {
		c.end("applied")
		return task.Task{}, errLost
	}
	if c.retried() {
		// The second send meets the first's effect, as the SDK's retry
		// of a write whose answer was lost does.
		again, err := task.Apply(next, ch)
		if err != nil {
			c.end("stale: "+brief(next), digest(next))
			return task.Task{}, &task.StaleError{Current: next}
		}
		s.put(next, again)
		next = again
	}
	if ch.Ends() {
		c.end("applied: "+brief(next), digest(next))
		return next, nil
	}
	c.end("applied")
	return task.Task{}, nil
}

// Open lists the tasks of the open index in status updated before
// before, oldest first.
func (s *store) Open(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error) {
	return s.list("Open", status, before, limit)
}

// Unnotified lists the ended tasks of the open index, whose event is due:
// the same query, as dynamo's is.
func (s *store) Unnotified(ctx context.Context, status task.Status, before time.Time, limit int32) ([]task.Task, error) {
	return s.list("Unnotified", status, before, limit)
}

// list is one query of the open index, a step named op.
func (s *store) list(op string, status task.Status, before time.Time, limit int32) ([]task.Task, error) {
	c := s.w.call(op+" "+string(status), 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	var out []task.Task
	for _, t := range s.sorted() {
		if indexed(t) && t.Status == status && t.UpdatedAt.Unix() < before.Unix() {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b task.Task) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	if len(out) > int(limit) {
		out = out[:limit]
	}
	c.end(ids(out), digests(out))
	return out, nil
}

// indexed is dynamo's rule for the open index, with events on: open
// tasks, and ended ones whose event the bus has not accepted.
func indexed(t task.Task) bool {
	return (task.Open(t.Status) || task.Final(t.Status)) && t.NotifiedAt.IsZero()
}

func (s *store) sorted() []task.Task {
	out := make([]task.Task, 0, len(s.recs))
	for _, id := range sortedKeys(s.recs) {
		out = append(out, s.recs[id])
	}
	return out
}

// put writes next over prev, checking the transition and keeping the
// history of statuses each task reached.
func (s *store) put(prev, next task.Task) {
	w := s.w
	s.recs[next.ID] = next
	err := transition(prev, next)
	if err == nil && next.Status == task.StatusCopyFailed && prev.Status == task.StatusQueued &&
		strings.HasPrefix(prev.Lease.Owner, "reconciler/") && !w.sqs.deadLettered(next.ID, prev.Generation) {
		// The reconciler gives up a copy only on the record of its
		// deliveries used up: a dead letter of the same queueing.
		err = fmt.Errorf("task %s given up in generation %d, and no message of that generation reached the dead-letter queue", next.ID, prev.Generation)
	}
	if err != nil {
		w.mu.Lock()
		w.fail(err)
		w.mu.Unlock()
	}
	h := w.history[next.ID]
	if len(h) == 0 || h[len(h)-1].status != next.Status || h[len(h)-1].generation != next.Generation {
		w.seq++
		w.history[next.ID] = append(h, reached{status: next.Status, generation: next.Generation, seq: w.seq})
	}
}

// reached is one status a task reached, in one queueing.
type reached struct {
	status     task.Status
	generation int
	seq        int
}

// transition checks the life cycle's one-way doors on every write.
func transition(prev, next task.Task) error {
	if prev.ID == "" {
		return nil
	}
	bad := func(why string) error {
		return fmt.Errorf("task %s went from %s (generation %d) to %s (generation %d): %s",
			next.ID, prev.Status, prev.Generation, next.Status, next.Generation, why)
	}
	switch {
	case next.Generation < prev.Generation:
		return bad("its queueing went back")
	case prev.Status == task.StatusStored && next.Status != task.StatusStored:
		return bad("a stored task never changes status")
	case prev.Status == task.StatusStored && !slices.Equal(prev.Objects, next.Objects):
		return bad("a stored task's objects never change")
	case prev.Status == task.StatusFailed && next.Status != task.StatusFailed && next.Status != task.StatusQueued:
		return bad("a failed task only moves to queued, on a later success")
	case prev.Status == task.StatusCopyFailed && next.Status != task.StatusCopyFailed &&
		!(next.Status == task.StatusQueued && next.Generation == prev.Generation+1):
		return bad("a copy_failed task only moves on through a requeue, in the next queueing")
	case prev.Status == task.StatusCopyFailed && next.Status == task.StatusCopyFailed && next.Generation != prev.Generation:
		return bad("a copy_failed task's queueing moved without a requeue")
	}
	return nil
}

// describe names a change by the constructor that made it, for traces.
func describe(c task.Change) string {
	w, e := c.Condition(), c.Effect()
	by := ""
	if w.LeasedBy != "" {
		by = " by " + w.LeasedBy
	}
	switch {
	case e.Status == task.StatusStored:
		return "MarkStored" + by
	case e.Status == task.StatusCopyFailed:
		return "MarkCopyFailed" + by
	case e.Status != "" && e.Generation != nil:
		return fmt.Sprintf("Requeue to generation %d, lease %s", *e.Generation, e.Lease.Owner)
	case e.Status != "":
		return fmt.Sprintf("%s→%s (callback)", w.Status, e.Status)
	case e.Lease != nil && w.Generation != nil:
		return "Seize for " + e.Lease.Owner
	case e.Lease != nil:
		return "TakeLease for " + e.Lease.Owner
	case e.DropLease:
		return "ReleaseLease" + by
	case e.AddUpload != nil:
		return "RecordUpload" + by
	case e.DropUploads:
		return "ForgetUploads" + by
	case !e.NotifiedAt.IsZero():
		return fmt.Sprintf("MarkNotified %s", w.Status)
	case !e.ResentAt.IsZero():
		return "MarkResent"
	case e.DropResent:
		return "UnmarkResent"
	case e.AddDelivery:
		return "duplicate (callback)"
	default:
		return "Claim"
	}
}

// brief is a record in a few words, for traces.
func brief(t task.Task) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", t.Status)
	if t.Generation > 0 {
		fmt.Fprintf(&b, " gen %d", t.Generation)
	}
	if t.Lease.Owner != "" {
		fmt.Fprintf(&b, " lease %s", t.Lease.Owner)
	}
	if t.Receives > 0 {
		fmt.Fprintf(&b, " receives %d", t.Receives)
	}
	if len(t.Objects) > 0 {
		keys := make([]string, len(t.Objects))
		for i, o := range t.Objects {
			keys[i] = o.Key
		}
		fmt.Fprintf(&b, " objects %s", strings.Join(keys, ","))
	}
	if !t.NotifiedAt.IsZero() {
		b.WriteString(" notified")
	}
	return b.String()
}

// digest is a record as a fingerprint sees it. A lease's end is rounded
// up to the second: the reconciler's is computed from a real-time
// deadline, the one input the explorer does not control, and a few
// milliseconds of it must not make two equal states differ.
func digest(t task.Task) string {
	if !t.Lease.Until.IsZero() {
		t.Lease.Until = ceilSecond(t.Lease.Until)
	}
	return fmt.Sprintf("%+v", t)
}

func digests(ts []task.Task) string {
	var b strings.Builder
	for _, t := range ts {
		b.WriteString(digest(t))
		b.WriteByte(';')
	}
	return b.String()
}

func ids(ts []task.Task) string {
	if len(ts) == 0 {
		return "none"
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return strings.Join(out, ",")
}

// ceilSecond is the first whole second after t.
func ceilSecond(t time.Time) time.Time { return t.Truncate(time.Second).Add(time.Second) }
