package explore

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/kiehook/kiehook/functions/internal/task"
)

const id = "t1"

// success is the platform's success callback for the task, with sources.
func success(sources ...string) task.Callback {
	return task.Callback{TaskID: id, Code: task.CodeSuccess, Msg: "success", API: "veo", Sources: sources}
}

// record is the task's record at the end.
func (w *world) record() task.Task { return w.store.recs[id] }

// wantStatus expects the task to end in status, in generation gen.
func wantStatus(w *world, status task.Status, gen int) error {
	if t := w.record(); t.Status != status || t.Generation != gen {
		return fmt.Errorf("task %s ended %s (generation %d), want %s (generation %d)", id, t.Status, t.Generation, status, gen)
	}
	return nil
}

// wantOne expects the task to end in status in its first queueing, when
// at most one fault was injected: two can spend every delivery of a copy.
func wantOne(w *world, status task.Status) error {
	if _, ok := w.store.recs[id]; !ok && w.faults > 0 {
		return nil // the callback died before its record: the platform calls again
	}
	if w.faults > 1 {
		return nil
	}
	return wantStatus(w, status, 0)
}

// deadLettered is the prelude of a task whose every copy failed: its
// source answers 503 to the copier's two deliveries, and the next poll
// moves the message to the dead-letter queue.
func deadLettered(w *world, src string) {
	w.callback("callback", success(src))
	w.runToEnd()
	for range maxReceives {
		w.esm("copier", 1)
		w.runToEnd()
		w.advance()
	}
	w.esm("poll", 1) // finds only the message to dead-letter
	w.runToEnd()
}

// accepted is the prelude of a submission the application posted: kept
// and its message sent.
func accepted(w *world) {
	w.submit("app")
	w.runToEnd()
}

// submittedAfterA429 is a submitter that meets the platform's 429, then,
// sent again, its 200; and the platform, which calls the task back.
func submittedAfterA429(w *world) {
	w.submitter("submitter", 2)
	w.platformCalls("platform", 1)
}

// noRetries leaves out the SDK's second send of a submission's write:
// its own scenario explores it.
func noRetries(_ *thread, _ *pending, k kind) bool { return k != kindRetry }

// scenarios are the races the issue names, each with the actors that
// make it and the faults it needs.
func scenarios() []*scenario {
	src := theEnv().src
	return []*scenario{
		{
			name: "a success is stored once, whatever its repeat callback and redeliveries do",
			actors: func(w *world) {
				cb := success(src.url("200", "a"))
				w.callback("callback", cb)
				w.callback("repeat", cb)
				w.esm("copier1", 1)
				w.esm("copier2", 1)
			},
			expect: func(w *world) error { return wantOne(w, task.StatusStored) },
			// The faults that make a redelivery: a copier dying, a write
			// whose answer is lost.
			faults: func(t *thread, p *pending, k kind) bool {
				return k == kindCrash && strings.HasPrefix(t.name, "copier") || k == kindLose
			},
			ci:   budget{preemptions: 1, crashes: 1},
			full: budget{preemptions: 3, crashes: 1, errors: 1},
		},
		{
			name: "a give-up never clears what a copier of the task's twin message stores",
			prelude: func(w *world) {
				deadLettered(w, src.url("503,503,200", "b"))
				// The platform calls again: a twin message, which a copier
				// takes while the reconciler gives the task up.
				w.callback("repeat", success(src.url("503,503,200", "b")))
				w.runToEnd()
			},
			actors: func(w *world) {
				w.reconcile("reconciler")
				w.esm("copier", 1)
			},
			ci:   budget{preemptions: 2, crashes: 1},
			full: budget{preemptions: 3, crashes: 1, errors: 1},
		},
		{
			name: "a copy that fails for good leaves nothing under its prefix, not even an earlier attempt's object",
			actors: func(w *world) {
				// The first attempt stores source 0, and source 1 fails
				// transiently; the second finds source 1 gone.
				w.callback("callback", success(src.url("200", "c0"), src.url("503,404", "c1")))
				w.esm("copier1", 2)
				w.esm("copier2", 1)
			},
			expect: func(w *world) error { return wantOne(w, task.StatusCopyFailed) },
			faults: func(t *thread, p *pending, k kind) bool { return k == kindCrash && strings.HasPrefix(t.name, "copier") },
			ci:     budget{preemptions: 2, crashes: 1},
			full:   budget{preemptions: 3, crashes: 1, errors: 1},
		},
		{
			name: "a requeue after copy_failed is copied, whatever the old dead letter makes the reconciler do",
			prelude: func(w *world) {
				// The source fails once more: the requeued copy is retried,
				// its lease released, while the old dead letter waits.
				deadLettered(w, src.url("503,503,503,200", "d"))
				w.reconcile("reconciler")
				w.runToEnd()
			},
			actors: func(w *world) {
				w.requeue("operator", id)
				w.reconcile("reconciler2")
				w.esm("copier", 1)
			},
			expect: func(w *world) error {
				if !w.requeued || w.faults > 0 {
					// The operator was told to run it again (or died first),
					// or a fault and the source's failure spent the new
					// queueing's deliveries: a give-up then is checked at
					// every step to rest on a dead letter of its queueing.
					return nil
				}
				return wantStatus(w, task.StatusStored, 1)
			},
			// Its race needs no preemption (a requeued copy retried, then a
			// reconciler run): one bound less keeps CI short.
			ci:   budget{preemptions: 1, crashes: 1},
			full: budget{preemptions: 3, crashes: 1, errors: 1},
		},
		{
			name: "a redrive of a given-up task is copied in the next queueing",
			prelude: func(w *world) {
				deadLettered(w, src.url("503,503,200", "r"))
				w.reconcile("reconciler")
				w.runToEnd()
				w.advance() // the reconciler's look at the dead letter has passed
			},
			actors: func(w *world) {
				w.redrive("operator")
				w.reconcile("reconciler2")
				w.esm("copier", 1)
			},
			expect: func(w *world) error {
				// Its letter may stay (deleted with a receipt a reconciler's
				// look replaced): it is of the queueing the redrive ended,
				// and the reconciler passes it over.
				if !w.requeued || w.faults > 0 {
					return nil
				}
				return wantStatus(w, task.StatusStored, 1)
			},
			// Redrive polls the dead-letter queue up to seven times: a long
			// run, whose third preemption the full bound leaves out.
			ci:   budget{preemptions: 1, crashes: 1},
			full: budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name: "an event's late mark never passes for the announcement of the task's next end",
			prelude: func(w *world) {
				w.callback("callback", success(src.url("404", "n")))
				w.runToEnd()
			},
			actors: func(w *world) {
				// The first copier ends the task copy_failed and puts its
				// event; before it marks it announced, the operator
				// requeues, the second copier ends the new queueing
				// copy_failed and its event is refused. The late mark is
				// of the first end (generation 0): it must not take the
				// second's out of the sweep.
				w.esm("copier1", 1)
				w.requeue("operator", id)
				w.esm("copier2", 1)
			},
			faults: func(t *thread, p *pending, k kind) bool {
				return k == kindRefuse && strings.HasPrefix(p.label, "PutEvents")
			},
			ci:   budget{preemptions: 1, errors: 1},
			full: budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name: "a submission is created on the platform once, whatever its redeliveries, crashes and lost answers do",
			prelude: func(w *world) {
				// The application posts it twice (its first answer lost,
				// say): two messages, for two submitters at once.
				w.submit("app")
				w.submit("app-again")
				w.runToEnd()
			},
			actors: func(w *world) {
				w.submitter("submitter1", 1)
				w.submitter("submitter2", 1)
				w.platformCalls("platform", 1)
			},
			submissions: true,
			expect:      submittedOnce,
			faults:      noRetries,
			ci:          budget{preemptions: 1, crashes: 1, errors: 1},
			full:        budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name: "a submission answered 202 is never lost, whatever fails as it is kept and sent",
			actors: func(w *world) {
				w.submit("app")
				w.submitter("submitter", 1)
				w.reconcile("reconciler")
			},
			submissions: true,
			expect:      submittedOnce,
			faults:      noRetries,
			ci:          budget{preemptions: 1, crashes: 1, errors: 1},
			full:        budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name:    "a task whose callback never comes is finished by the reconciler's poll, which links its submission",
			prelude: accepted,
			actors: func(w *world) {
				w.submitter("submitter", 1)
				w.reconcile("reconciler")
			},
			submissions: true,
			silent:      true,
			expect:      submittedOnce,
			faults:      noRetries,
			ci:          budget{preemptions: 1, crashes: 1, errors: 1},
			full:        budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name:        "a create call past the rate is sent again after its wait, and makes one task",
			prelude:     accepted,
			actors:      submittedAfterA429,
			submissions: true,
			platform:    []int{http.StatusTooManyRequests, http.StatusOK},
			expect:      submittedOnce,
			faults:      noRetries,
			ci:          budget{preemptions: 1, crashes: 1, errors: 1},
			full:        budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name:        "a claim or a release the SDK sends twice is the submitter's own, and the submission is made once",
			prelude:     accepted,
			actors:      submittedAfterA429,
			submissions: true,
			platform:    []int{http.StatusTooManyRequests, http.StatusOK},
			expect:      submittedOnce,
			// A second send whose first answer was lost: the claim's finds
			// it claimed, the release's finds it unclaimed, each by the
			// submitter's own first send.
			faults: func(t *thread, p *pending, k kind) bool { return k == kindRetry },
			ci:     budget{preemptions: 1, errors: 1},
			full:   budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name: "a success is stored and told, whatever write of its copy the SDK sends twice",
			actors: func(w *world) {
				w.callback("callback", success(src.url("200", "s2")))
				w.esm("copier", 1)
				w.reconcile("reconciler")
			},
			expect: func(w *world) error { return wantStatus(w, task.StatusStored, 0) },
			faults: func(t *thread, p *pending, k kind) bool { return k == kindRetry },
			ci:     budget{preemptions: 1, errors: 1},
			full:   budget{preemptions: 2, crashes: 1, errors: 1},
		},
		{
			name: "a success whose message was never sent is still stored, by the reconciler's resend",
			actors: func(w *world) {
				w.callback("callback", success(src.url("200", "e")))
				w.reconcile("reconciler")
				w.esm("copier", 1)
			},
			expect: func(w *world) error { return wantOne(w, task.StatusStored) },
			// The platform never calls again: the callback's send fails, and
			// nothing else does.
			faults: func(t *thread, p *pending, k kind) bool {
				return t.name == "callback/send" && (k == kindRefuse || k == kindCrash)
			},
			ci:   budget{preemptions: 2, crashes: 1, errors: 1},
			full: budget{preemptions: 3, crashes: 1, errors: 1},
		},
	}
}
