package explore

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
)

// snapshot is a world's data once every actor has ended: what a prelude
// leaves. A prelude runs in one fixed order, so it is run once per
// scenario and each execution starts from a copy of its snapshot.
type snapshot struct {
	now     time.Time
	recs    map[string]task.Task
	queues  map[string][]message
	sqsIDs  int
	rcpts   int
	dead    []schema.CopyMessage
	objects map[string]object
	uploads map[string]mpu
	s3IDs   int
	events  []event
	history map[string][]reached
	seq     int
	trace   []entry
	served  map[string]int
	err     error

	subs        map[string]submission.Submission
	subHistory  map[string][]subReached
	platform    platformFake
	subAnswered bool
	abandoned   bool
}

// freeze copies w's data; every actor of w has ended.
func (w *world) freeze() *snapshot {
	s := &snapshot{now: w.now, recs: maps.Clone(w.store.recs), queues: map[string][]message{}, sqsIDs: w.sqs.ids, rcpts: w.sqs.rcpts, dead: slices.Clone(w.sqs.dead),
		objects: maps.Clone(w.s3.objects), uploads: map[string]mpu{}, s3IDs: w.s3.ids, events: slices.Clone(w.bus.events),
		history: map[string][]reached{}, seq: w.seq, trace: slices.Clone(w.trace), err: w.violation}
	for url, q := range w.sqs.queues {
		for _, m := range q.msgs {
			s.queues[url] = append(s.queues[url], *m)
		}
	}
	for id, up := range w.s3.uploads {
		s.uploads[id] = mpu{key: up.key, parts: maps.Clone(up.parts)}
	}
	for id, h := range w.history {
		s.history[id] = slices.Clone(h)
	}
	w.env.src.mu.Lock()
	s.served = maps.Clone(w.env.src.served)
	w.env.src.mu.Unlock()
	s.subs, s.subHistory, s.subAnswered, s.abandoned = maps.Clone(w.subs.recs), maps.Clone(w.subs.history), w.subAnswered, w.abandoned
	s.platform = platformFake{calls: w.platform.calls, tasks: cloneTasks(w.platform.tasks), callers: slices.Clone(w.platform.callers), answerLost: w.platform.answerLost}
	return s
}

// cloneTasks copies the platform's tasks, each by value.
func cloneTasks(tasks []*madeTask) []*madeTask {
	out := make([]*madeTask, len(tasks))
	for i, t := range tasks {
		c := *t
		out[i] = &c
	}
	return out
}

// thaw makes w's data a copy of s's, w being new.
func (w *world) thaw(s *snapshot) {
	w.now, w.store.recs, w.sqs.ids, w.s3.ids = s.now, maps.Clone(s.recs), s.sqsIDs, s.s3IDs
	w.sqs.dead, w.sqs.rcpts = slices.Clone(s.dead), s.rcpts
	for url, msgs := range s.queues {
		for _, m := range msgs {
			w.sqs.queues[url].msgs = append(w.sqs.queues[url].msgs, &m)
		}
	}
	w.s3.objects = maps.Clone(s.objects)
	for id, up := range s.uploads {
		w.s3.uploads[id] = &mpu{key: up.key, parts: maps.Clone(up.parts)}
	}
	w.bus.events, w.seq, w.trace, w.violation = slices.Clone(s.events), s.seq, slices.Clone(s.trace), s.err
	for id, h := range s.history {
		w.history[id] = slices.Clone(h)
	}
	w.env.src.mu.Lock()
	w.env.src.served = maps.Clone(s.served)
	w.env.src.mu.Unlock()
	w.subs.recs, w.subAnswered, w.abandoned = maps.Clone(s.subs), s.subAnswered, s.abandoned
	for id, h := range s.subHistory {
		w.subs.history[id] = slices.Clone(h)
	}
	w.platform.calls, w.platform.tasks, w.platform.answerLost = s.platform.calls, cloneTasks(s.platform.tasks), s.platform.answerLost
	w.platform.callers = slices.Clone(s.platform.callers)
}

var (
	snapMu sync.Mutex
	snaps  = map[*scenario]*snapshot{}
)

// preluded is sc's prelude, run once.
func preluded(sc *scenario) *snapshot {
	snapMu.Lock()
	defer snapMu.Unlock()
	if s, ok := snaps[sc]; ok {
		return s
	}
	w := newWorld(sc)
	w.phase = "prelude"
	sc.prelude(w)
	w.abort()
	s := w.freeze()
	if s.err == nil {
		s.err = w.check()
	}
	snaps[sc] = s
	return s
}
