// Package explore is the explorer: a test that runs the real callback
// receiver, copier, reconciler, operator recovery, submit handler and
// submitter as actors over
// in-memory services, explores the interleavings of their steps with
// crashes, lost answers and clock advances, and checks invariants after
// every step. It is deterministic simulation in the manner of
// FoundationDB's, searched as a stateless model checker in the manner of
// CHESS. All of it is in _test.go files: it ships nothing.
//
// # What runs
//
// The code under test is the production code, unchanged:
// task.Receiver (the callback), copier.Handler and copier.Copier (each
// invocation of the event source mapping), reconciler.Reconciler.Run,
// recovery.Requeue and Redrive, submitapi.Handler (POST /submissions) and
// submitter.Submitter (each invocation of its mapping). With them run the
// real adapters: queue.Queue, queue.Submissions and queue.DeadLetters,
// objects.Store, eventbus.Bus and download.Downloader. Only the services
// are fakes, each deterministic:
//
//   - the task table keeps records by value and changes one only through
//     task.Apply; its Open and Unnotified read the open index as dynamo's
//     do (without the index's lag);
//   - the submissions' part of the table keeps them by value and changes
//     one only through submission.Apply; its Open and Unannounced read
//     the open index as dynamo's do;
//   - the platform's create call answers the scenario's codes, one a
//     call (a 200 makes a task); a lost answer is a call that made its
//     task and timed out, a refused one a call that failed before its
//     request was written. The platform then calls each task it made back
//     through the real receiver, which links its submission (a failed
//     generation, so that no copy starts), and, in the drain, once more
//     a round while no callback of it was answered; unless it is silent,
//     and only the reconciler's poll of its record-info, which says the
//     same, finds it;
//   - SQS has the copy queue and the submission queue, each with its
//     dead-letter queue, with their visibility timeouts (30 and 6
//     minutes), delays, receive counts and a maxReceiveCount of 2: the
//     receive that would exceed it moves the message; a delete with a
//     receipt that a later receive replaced deletes nothing; a long poll
//     waits, on the virtual clock, for a message that shows within it;
//   - S3 keeps each object's length and SHA-256, and open multipart
//     uploads;
//   - EventBridge keeps every event put;
//   - the source is a loopback HTTP server whose paths script their
//     answers, one a request in each execution (/seq/503,404/x.png fails
//     once, then is gone), through the real downloader;
//   - the clock is virtual, every component's Now; the copier's Sleep is
//     a step that moves it on.
//
// # The scheduler
//
// Each actor runs on its own goroutine. Every call it makes to a fake
// service first parks it: the scheduler lets one thread run at a time,
// from one call to the next, and at every point where all are parked (or
// done) it chooses what happens next. The copier's Group and the
// handler's are run.InTurn, so the copier spawns nothing. The callback's
// receiver sends its message while it writes the record, on its Group:
// here (sendGroup) Go starts the send as a second thread of the
// callback's actor and returns once that thread is parked at its
// SendMessage, and Wait blocks the callback until the send has ended,
// whose end lets it go on within the same step. The answer to the
// platform waits for the send, as in production; the send's effect and
// timing are the scheduler's to choose, and the callback's crash kills
// it. It is the one thread that blocks on another outside a call, and
// while it does it offers no choice.
//
// The choices at each point are:
//
//   - run a parked thread's call (a copier's poll only once a message is
//     visible; a copier that has just slept only once nothing else can
//     run: a sleep yields);
//   - crash its actor at that call: the call panics, unwinding the real
//     code as a dead process stops (deferred cleanup included, whose calls
//     to the services panic in turn); what it held comes back as SQS and
//     the leases say, once the clock passes their end;
//   - lose the answer of a write (Create, Update, SendMessage): it takes
//     effect, and its caller gets an error;
//   - refuse a write, or a PutEvents: it fails with no effect;
//   - send an update of a record (a task's or a submission's) again, as
//     the SDK does once an answer is lost: it takes effect, and its
//     caller gets the answer of the second send, which meets the first's
//     effect (a conditional one stale, with the record as the first left
//     it);
//   - advance the clock to the next timer: a hidden message showing
//     again, a lease ending, or, while a reconciler run is still to
//     start, a record growing old enough for one of its passes. A process
//     whose Lambda deadline the advance passes is killed there, which
//     counts as a crash. (A sleep or a long poll never kills: it stops the
//     clock at the first deadline instead, so that another process is
//     merely slow.)
//
// A scenario may first run a prelude in one fixed order (a task's copies
// failing into the dead-letter queue, a give-up); its end is taken once
// as a snapshot that every execution starts from.
//
// # The invariants
//
// After every step:
//
//   - a stored record names only objects that are in the bucket, whole,
//     with its SHA-256, which is its source's;
//   - stored never changes status nor objects; failed changes only to
//     queued; copy_failed changes only through a requeue, to queued in
//     the next generation; no queueing goes back;
//   - a copy_failed or failed task has nothing under tasks/<id>/, no
//     object and no open upload;
//   - the reconciler gives a task up in generation g only if a message of
//     generation g reached the dead-letter queue;
//   - every event put is for a status its task reached, and a stored
//     event names the record's objects;
//   - the platform makes at most one task for a submission, and takes a
//     create call only from the attempt that holds its claim; a
//     submission is submitted only as a task the platform made for it;
//     an ended submission never changes but for its event's mark; a claim
//     is abandoned only once its attempt has ended; an event is put only
//     for a status the submission reached, and a submitted one names its
//     task.
//
// Once the explored actors are done, a drain takes the system to
// quiescence with no fault: copiers take every message as it shows, a
// reconciler runs after each round, and the clock moves on (to the next
// timer, or by a stride past every reconciler threshold) until a round
// changes nothing and nothing is in flight. Then every task must have
// ended (none is left short of final with no message, lease or run to
// move it), every final status each task reached must have been
// announced after it was reached, the prefix of each must hold only the
// objects its record names and no open upload, the copy queue must be
// empty, and the scenario's own expectation must hold (a success with at
// most one fault is stored; a requeue with none is copied in its new
// generation...). With submissions the drain also runs submitters while
// a submission's message shows, and the platform's callbacks; then every
// submission must have ended and its end been announced, one answered 200
// or 202 must be kept, and a task the platform made must be its
// submission's, unless a callback of it found the submission ended
// submit_unknown (SUBMIT_UNKNOWN_AFTER, half an hour here). A kept
// submission ends submitted, as one task; or submit_unknown only where
// the platform may have made its task unseen: a create call's answer was
// lost, or an attempt that died or sent its call left its claim.
//
// # The search
//
// The search is depth-first over the sequence of choices, each execution
// replayed from scratch (stateless: goroutines cannot be copied, so a
// state is reached again by its choices; a replay that sees other options
// than before fails the test as nondeterministic). Two reductions keep it
// finite and short:
//
// Preemption bounding. A preemption is a switch away from the thread
// that ran last while it could go on (running another thread, faulting
// another thread's call, or advancing the clock); a switch from a thread
// that is done or blocked is free. Each execution may preempt at most P
// times, crash at most C processes and inject at most E wrong answers.
// The bound is iterated, P = 0, 1, …, so that a counterexample comes with
// the fewest preemptions it needs; among those found, the one with the
// fewest faults, then steps, is printed.
//
// State hashing. At each decision point the state is hashed: the records,
// both queues (messages, receive counts, visibility, receipts), the
// bucket, the statuses each task reached and the events put after each,
// what the source will answer, the clock, and each live thread's state
// (parked at which call, its step count) and fingerprint: the hash of
// every answer it has had, with the clock at each. The real code is
// deterministic and reads the world only through those answers and the
// clock, so the fingerprint stands for its local state; a finished thread
// is left out, for it never acts again. A point whose hash was reached
// before with at least the budget left now is pruned: its future was
// explored. (The reconciler's give-up lease is computed from a real-time
// context deadline; it is rounded up to the second, where it cannot
// differ between executions.) The end state before the drain depends on
// the data alone, so a drain that passed from one is not run again.
//
// Random runs complement the search: random choices with no preemption
// bound, one crash and one wrong answer, from -explore.seed (a failure
// prints the seed that replays it).
//
// # Why the bounds cover the races
//
// Each race of issue 34 needs at most two preemptions and one fault;
// most need none, which is what makes them easy to miss in tests and
// cheap to find here. The counts are those of the shortest schedules, as
// the explorer finds them with the fix reverted.
//
//   - Point 2, a give-up clearing a copy in progress: the reconciler reads
//     the dead letter and the record (no lease), is preempted; a copier
//     takes the twin message, leases, uploads, marks the task stored and
//     runs to its end; the reconciler resumes and clears the prefix. One
//     preemption; its variants (the reconciler resuming between the
//     upload and the stored mark) two. With Seize first, the reconciler's
//     seize is refused, or the copier finds its lease.
//   - Point 3, an earlier attempt's object left by a copy_failed: one
//     copier alone, its first attempt storing source 0 while source 1
//     fails transiently, its second finding source 1 gone. No preemption;
//     the same with a crash of the second attempt, and the give-up that
//     follows, one crash.
//   - Point 4, a requeued copy given up on an old dead letter: the
//     operator requeues, a copier begins the new queueing and its copy
//     fails transiently (lease released), then a reconciler run reads the
//     old letter. No preemption: the actors' order alone.
//   - Point 1, a success whose message was never sent: the callback's
//     send refused, or its process dead at it, and the reconciler's
//     resend. No preemption, one fault.
//   - An event's late mark (MarkNotified) taking a later end out of the
//     sweep: a copier ends the task copy_failed and puts its event, is
//     preempted before its mark; the operator requeues, a second copier
//     ends the new queueing copy_failed and its event is refused; the
//     first copier's mark lands on the second end unless it is held to
//     its generation. One preemption, one fault.
//
// The submissions' races, found the same way with each guard removed:
//
//   - One submission sent twice: its message delivered twice (or the
//     application's repeat POST sending another), the first submitter
//     reads it, is preempted; the second claims, makes the task and dies
//     before it marks it; without the claim's condition that nobody holds
//     it, the first claims over it and makes a second task. One
//     preemption, one crash.
//   - A create call whose answer is lost, sent again as if it could pass
//     later: a second task. No preemption, one lost answer.
//   - A submission whose message a submitter took before its record was
//     written (the submit handler does both at once): the submitter finds
//     nothing and drops it, and only the reconciler's resend of an
//     untouched accepted submission moves it. No preemption, no fault.
//   - A claim whose write lost its answer: the submitter fails the
//     message, and its next delivery finds the claim old and makes the
//     submission unknown, though no call went out, unless the claim was
//     given back at once. No preemption, one lost answer.
//   - A task whose callback never comes, its submitter dead between its
//     pending record and its mark: the reconciler's poll records it, and
//     the record's answer is lost. Linked only by the poll's callback,
//     after the record, the submission was never linked, for a final task
//     is polled no more; the reconciler links a pending task before its
//     poll. No preemption, one crash, one lost answer.
//   - A claim the SDK sends again: the second send finds the submission
//     claimed, and a submitter that took that for another's claim left
//     it, to be abandoned: unknown, though no call went out. No
//     preemption, one second send.
//
// The CI bounds contain each of these schedules: P=2 and C=1 for points
// 2 and 3; P=1 and C=1 for point 4 (and its redrive twin) and for the
// plain success path; P=2, C=1, E=1 for point 1; P=1, E=1 for the late
// mark; P=1, C=1, E=1 for the submissions, P=1, E=1 for the second
// sends (the full bound sends any update twice in every scenario whose
// faults allow it). State hashing prunes only
// states whose futures were explored within at least the same budget, so
// no execution within the bounds is lost to it. With -race on two cores
// the CI search is some 49,000 executions in about 105 s; -explore.full
// (P=3, C=1, E=1; P=2 for the redrive, whose operator polls seven times,
// and for the submissions) is some 740,000 in about 4m15s without -race.
//
// # Running it
//
//	go test ./functions/internal/explore              # CI bounds, 100 random runs each
//	go test ./functions/internal/explore -explore.full # P=3, C=1, E=1; 2000 random runs
//	go test ./functions/internal/explore -run TestRandomRuns -explore.seed=N -explore.runs=1
//
// -explore.run narrows to the scenarios whose name contains its value,
// -explore.bounds=P,C,E overrides the bounds, -explore.v prints progress.
//
// What is not modelled: SQS hands messages out oldest first, one per
// batch; the index is read without lag; sources are smaller than a part
// (no multipart upload); the platform is polled only where there are
// submissions (a pending record otherwise waits for its callback); the
// copier's invocation has no context
// deadline, so its lease lasts 15 minutes and it is killed at 15
// minutes; the submitters' pace and the account's credits are left out
// (every slot is free at once, and the platform never answers 402: their
// stores have tests of their own); the SDK's second send only of a
// record's update (not of a Create, nor of a call to SQS, S3 or
// EventBridge), and at the CI bounds only in the two scenarios of its
// own; record-info says failed, never running; one
// Idempotency-Key, waits without
// jitter, every task called back in the end but where the platform is
// silent, and the index read as with
// events on (the submit function writes only accepted submissions, which
// it holds either way).
package explore
