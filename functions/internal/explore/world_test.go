package explore

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/copier"
	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/reconciler"
	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/submitapi"
	"github.com/kiehook/kiehook/functions/internal/submitter"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/recovery"
)

const (
	bucket = "kiehook-copies"
	prefix = "tasks/"
	// The reconciler's settings: short, so that its passes act within a
	// few clock advances.
	stuckAfter  = 60 * time.Second
	notifyAfter = 60 * time.Second
	queuedAlert = 10 * time.Minute
	// Deadlines of the invocations, as Lambda enforces them: a process is
	// killed once the clock passes its deadline. A callback answers within
	// task.AnswerBudget; a copier without a context deadline leases for 15
	// minutes (plus its 5 s margin), so it is killed at 15 minutes; a
	// reconciler run gives each pass 10 s.
	callbackDeadline   = task.AnswerBudget
	copierDeadline     = 15 * time.Minute
	reconcilerDeadline = 10 * time.Second
)

// start is the virtual time every execution begins at.
var start = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// env is what executions share: the source server, the downloader, and
// the part buffers (mapped outside the heap, never freed: one budget for
// the whole test).
type env struct {
	src    *source
	dl     *download.Downloader
	budget *objects.Budget
	log    *slog.Logger
	seed   maphash.Seed
}

var (
	envOnce sync.Once
	shared  *env
)

func theEnv() *env {
	envOnce.Do(func() {
		shared = &env{
			src:    newSource(),
			dl:     download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, MaxBytes: 1 << 20}),
			budget: objects.NewBudget(4),
			log:    slog.New(slog.DiscardHandler),
			seed:   maphash.MakeSeed(),
		}
	})
	return shared
}

func hashString(s string) uint64 { return maphash.String(theEnv().seed, s) }

// world is one execution: the fakes, the actors, the clock, the trace.
type world struct {
	mu      sync.Mutex
	changed chan struct{}
	now     time.Time
	actors  []*actor
	last    *thread // the thread that ran last: continuing it is no preemption

	store *store
	sqs   *sqsFake
	s3    *s3Fake
	bus   *busFake
	env   *env
	sc    *scenario

	subs     *subStore
	platform *platformFake

	history     map[string][]reached
	seq         int
	faults      int  // faults injected so far
	requeued    bool // the operator's requeue or redrive said it sent a message
	subAnswered bool // a submit was answered 200 or 202
	abandoned   bool // a claim whose attempt died or sent its create call was given up
	violation   error
	trace       []entry
	phase       string // "prelude", "" (explored) or "drain"
	draining    bool   // no faults, the clock only when nothing can run

	receiver *task.Receiver
	copier   *copier.Copier
	rec      *reconciler.Reconciler
	ops      *recovery.Recovery

	submitH     *submitapi.Handler
	submitterFn *submitter.Submitter
}

// entry is one decision in the trace.
type entry struct {
	who, label, result, phase string
	kind                      kind
	preempt                   bool
}

func newWorld(sc *scenario) *world {
	e := theEnv()
	e.src.reset()
	w := &world{changed: make(chan struct{}, 1), now: start, env: e, sc: sc, history: map[string][]reached{}}
	w.store = &store{w: w, recs: map[string]task.Task{}}
	w.sqs = newSQS(w)
	w.s3 = newS3(w)
	w.bus = &busFake{w: w}
	bus := eventbus.New(w.bus, "kiehook", bucket, w.store, w.Now)
	store := objects.New(w.s3, bucket, e.budget)
	w.receiver = &task.Receiver{Store: w.store, Queue: queue.New(w.sqs, copyURL), Notifier: bus, TTL: task.DefaultTTL, Now: w.Now, Logger: e.log,
		Group: w.sendGroup}
	w.copier = &copier.Copier{Store: w.store, Sources: opener{w: w, dl: e.dl}, Objects: store, Notifier: bus, Prefix: prefix,
		Logger: e.log, Now: w.Now, Sleep: w.sleep, Group: run.InTurn, Owner: w.owner}
	w.rec = &reconciler.Reconciler{Tasks: w.store, DeadLetters: queue.NewDeadLetters(w.sqs, dlqURL), Leftovers: store, Prefix: prefix,
		Receiver: w.receiver, Queue: queue.New(w.sqs, copyURL), Notifier: bus, Logger: e.log, Now: w.Now,
		PendingAfter: time.Minute, StuckAfter: stuckAfter, QueuedAlert: queuedAlert, Retention: 14 * 24 * time.Hour, Limit: 10, NotifyAfter: notifyAfter}
	w.ops = &recovery.Recovery{Records: w.store, SQS: w.sqs, Resources: recovery.Resources{QueueURL: copyURL, DLQURL: dlqURL}, Now: w.Now}
	w.subs = &subStore{w: w, recs: map[string]submission.Submission{}, history: map[string][]subReached{}}
	// The callback links a task to its submission; the reconciler links a
	// pending task before its poll, with a receiver that does not.
	polled := *w.receiver
	w.rec.Receiver = &polled
	w.receiver.Submissions = w.subs
	w.platform = &platformFake{w: w, answers: sc.platform}
	if len(w.platform.answers) == 0 {
		w.platform.answers = []int{http.StatusOK}
	}
	if sc.submissions {
		// Only here does the reconciler run its submissions' passes: the
		// other scenarios' runs make no steps for them.
		bus.Submissions = w.subs
		submits := queue.NewSubmissions(w.sqs, submitURL)
		w.rec.Submissions = reconciler.Submissions{Store: w.subs, Queue: submits, Events: bus, UnknownAfter: unknownAfter}
		w.rec.Platform = w.platform // the submitters' pending records are polled
		w.submitH = &submitapi.Handler{Submissions: w.subs, Queue: submits, Auth: bearer.Auth{IAM: true}, TTL: task.DefaultTTL,
			Logger: e.log, Now: w.Now, Group: w.sendGroup}
		w.submitterFn = &submitter.Submitter{Submissions: w.subs, Pace: openAccount{}, Account: openAccount{}, Platform: w.platform,
			Tasks: w.store, Queue: submits, Events: bus, Rate: 20, Window: submitWindow, MaxWait: 24 * time.Hour, TTL: task.DefaultTTL,
			CallbackURL: func(context.Context) (string, error) { return "https://callback.local/?token=t", nil },
			Logger:      e.log, Now: w.Now, Group: run.InTurn, Owner: w.claimant, Jitter: func(time.Duration) time.Duration { return 0 }}
	}
	return w
}

// Now is the virtual clock, every component's.
func (w *world) Now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

// sleep is the copier's wait for a record: a step, after which the clock
// has moved on by d.
func (w *world) sleep(ctx context.Context, d time.Duration) error {
	c := w.call("sleep "+d.String(), 0, nil)
	if c.failed() {
		c.end("")
		return c.err()
	}
	w.mu.Lock()
	w.advanceTo(w.now.Add(d), false)
	c.t.slept = true
	w.mu.Unlock()
	c.end("")
	return nil
}

// owner names a copy attempt after the copier that makes it, and the
// messages it copies for, as the real names do.
func (w *world) owner(messageIDs []string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.sole().actor
	a.attempts++
	return fmt.Sprintf("%s.%d/%s", a.name, a.attempts, strings.Join(messageIDs, ","))
}

// claimant names a submitter's create attempt after the submitter that
// makes it.
func (w *world) claimant() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	a := w.sole().actor
	a.attempts++
	a.claiming = fmt.Sprintf("%s.%d", a.name, a.attempts)
	return a.claiming
}

// claimOwner is the actor whose attempt claimed is, or nil.
func (w *world) claimOwner(claimed string) *actor {
	name, _, ok := strings.Cut(claimed, ".")
	for _, a := range w.actors {
		if ok && a.name == name {
			return a
		}
	}
	return nil
}

// advanceTo moves the clock to t. With kill, every process whose
// deadline it passes is killed (the scheduler's advance, which counts
// each as a crash), and their names returned; without, the clock stops
// at the first live deadline: the wait of a running thread (a copier's
// sleep, a long poll) must not kill another process for free, so that
// process is merely slow; w.mu is held.
func (w *world) advanceTo(t time.Time, kill bool) (killed []string) {
	if !kill {
		for _, a := range w.actors {
			if a.live() && !a.deadline.IsZero() && t.After(a.deadline) {
				t = a.deadline
			}
		}
	}
	if !t.After(w.now) {
		return nil
	}
	w.now = t
	for _, a := range w.victims() {
		a.note = "killed at its deadline"
		killed = append(killed, a.name+" killed at its deadline")
		w.kill(a)
	}
	return killed
}

// victims are the live processes whose deadline the clock has passed;
// w.mu is held.
func (w *world) victims() []*actor {
	var out []*actor
	for _, a := range w.actors {
		if a.live() && !a.deadline.IsZero() && w.now.After(a.deadline) {
			out = append(out, a)
		}
	}
	return out
}

// victimsAt are the live processes a move of the clock to t would kill;
// w.mu is held.
func (w *world) victimsAt(t time.Time) []*actor {
	var out []*actor
	for _, a := range w.actors {
		if a.live() && !a.deadline.IsZero() && t.After(a.deadline) {
			out = append(out, a)
		}
	}
	return out
}

// The actors.

// callback is the platform calling back: the real receiver, whose
// success starts its send (sendGroup).
func (w *world) callback(name string, cb task.Callback) {
	w.spawn(name, callbackDeadline, func(ctx context.Context, a *actor) {
		out, err := w.receiver.Receive(ctx, cb)
		a.note = fmt.Sprintf("answered %q %v", out, err)
	})
}

// esm is the event source mapping with its copier: it polls the copy
// queue for one message at a time, invokes the real handler, and deletes
// what the handler did not report failed, for batches invocations.
func (w *world) esm(name string, batches int) {
	h := copier.NewHandler(w.copier.Copy, w.env.log)
	h.Group = run.InTurn
	w.mapping(name, batches, copyURL, visibility, copierDeadline, h.Handle)
}

// mapping is an event source mapping of the queue at url (its visibility
// hide) to a function that has deadline: batches invocations of handle,
// each with one message.
func (w *world) mapping(name string, batches int, url string, hide, deadline time.Duration,
	handle func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)) {
	w.spawn(name, 0, func(ctx context.Context, a *actor) {
		for done := 0; done < batches; {
			recs := w.sqs.esmReceive(url, hide)
			if len(recs) == 0 {
				continue // the message went to the dead-letter queue
			}
			done++
			w.mu.Lock()
			a.deadline = w.now.Add(deadline)
			w.mu.Unlock()
			resp, err := handle(ctx, events.SQSEvent{Records: recs})
			if err != nil {
				continue // the whole batch returns
			}
			for _, m := range recs {
				if !slices.ContainsFunc(resp.BatchItemFailures, func(f events.SQSBatchItemFailure) bool { return f.ItemIdentifier == m.MessageId }) {
					w.sqs.esmDelete(url, m)
				}
			}
			w.mu.Lock()
			a.deadline, a.claiming = time.Time{}, ""
			w.mu.Unlock()
		}
	})
}

// reconcile is one scheduled reconciler run. It starts when scheduled:
// the run reads the clock first.
func (w *world) reconcile(name string) {
	w.spawn(name, 0, func(ctx context.Context, a *actor) {
		c := w.park(pending{label: "run starts", noCrash: true})
		w.mu.Lock()
		a.deadline = w.now.Add(reconcilerDeadline)
		w.mu.Unlock()
		c.end("")
		rep, err := w.rec.Run(ctx)
		a.note = fmt.Sprintf("%+v %v", rep, err)
	})
}

// requeue is an operator's go run ./infra/ops requeue <id>.
func (w *world) requeue(name, id string) {
	w.spawn(name, 0, func(ctx context.Context, a *actor) {
		err := w.ops.Requeue(ctx, id)
		a.note = fmt.Sprint(err)
		w.mu.Lock()
		w.requeued = err == nil
		w.mu.Unlock()
	})
}

// redrive is an operator's go run ./infra/ops redrive.
func (w *world) redrive(name string) {
	w.spawn(name, 0, func(ctx context.Context, a *actor) {
		letters, unseen, err := w.ops.Redrive(ctx)
		a.note = fmt.Sprintf("%+v %d %v", letters, unseen, err)
		w.mu.Lock()
		w.requeued = slices.ContainsFunc(letters, func(l recovery.Letter) bool { return l.Action == recovery.Moved })
		w.mu.Unlock()
	})
}

// Choices.

// option is one choice at a decision point.
type option struct {
	kind    kind
	t       *thread
	preempt bool
	kills   int // processes a clock advance kills at their deadline
}

func (o option) String() string {
	if o.kind == kindAdvance {
		return "advance the clock"
	}
	return fmt.Sprintf("%s %s", o.kind, o.t.name)
}

// budget is what an execution may still spend.
type budget struct{ preemptions, crashes, errors int }

// ready is whether t's pending call can be taken now; w.mu is held.
func ready(t *thread) bool {
	return t.state == parked && (t.pending.ready == nil || t.pending.ready())
}

// enabled is whether t may run now: ready, and, if it has just slept,
// only once no other thread that has not is ready. A sleep is a yield:
// the others run while a copier waits for a record, rather than the
// copier's every wait being a point where they may; w.mu is held.
func (w *world) enabled(t *thread) bool {
	if !ready(t) {
		return false
	}
	if !t.slept {
		return true
	}
	for _, a := range w.actors {
		for _, u := range a.threads {
			if u != t && !u.slept && ready(u) {
				return false
			}
		}
	}
	return true
}

// options are the choices at this point, within b: the thread that ran
// last first (continuing it is free), the others in the order they were
// spawned, the clock, then the faults.
func (w *world) options(b budget) []option {
	w.mu.Lock()
	defer w.mu.Unlock()
	var threads []*thread
	if w.last != nil && w.enabled(w.last) {
		threads = append(threads, w.last)
	}
	for _, a := range w.actors {
		for _, t := range a.threads {
			if t != w.last && w.enabled(t) {
				threads = append(threads, t)
			}
		}
	}
	lastOn := w.last != nil && w.enabled(w.last)
	var opts []option
	add := func(o option) {
		if o.preempt && b.preemptions <= 0 {
			return
		}
		opts = append(opts, o)
	}
	for _, t := range threads {
		add(option{kind: kindRun, t: t, preempt: lastOn && t != w.last})
	}
	if at, ok := w.nextTimer(); ok && (len(threads) == 0 || !w.draining) {
		// A move past a live process's deadline kills it: a crash each,
		// where the scenario allows one.
		kills := w.victimsAt(at)
		allowed := len(kills) <= b.crashes
		for _, a := range kills {
			for _, t := range a.threads {
				allowed = allowed && (t.state != parked || w.sc.faultOK(t, t.pending, kindCrash))
			}
		}
		if allowed {
			add(option{kind: kindAdvance, preempt: lastOn, kills: len(kills)})
		}
	}
	if w.draining {
		return opts
	}
	for _, t := range threads {
		p := t.pending
		pre := lastOn && t != w.last
		if b.crashes > 0 && !p.noCrash && w.sc.faultOK(t, p, kindCrash) {
			add(option{kind: kindCrash, t: t, preempt: pre})
		}
		if b.errors > 0 && p.faults&mayLose != 0 && w.sc.faultOK(t, p, kindLose) {
			add(option{kind: kindLose, t: t, preempt: pre})
		}
		if b.errors > 0 && p.faults&mayRefuse != 0 && w.sc.faultOK(t, p, kindRefuse) {
			add(option{kind: kindRefuse, t: t, preempt: pre})
		}
		if b.errors > 0 && p.faults&mayRetry != 0 && w.sc.faultOK(t, p, kindRetry) {
			add(option{kind: kindRetry, t: t, preempt: pre})
		}
	}
	return opts
}

// apply makes a choice, and waits for its effects.
func (w *world) apply(o option) {
	w.mu.Lock()
	e := entry{kind: o.kind, preempt: o.preempt, phase: w.phase}
	switch o.kind {
	case kindAdvance:
		at, _ := w.nextTimer()
		e.who, e.label = "clock", fmt.Sprintf("+%v", at.Sub(w.now))
		w.trace = append(w.trace, e)
		killed := w.advanceTo(at, true)
		w.faults += len(killed)
		w.trace[len(w.trace)-1].result = strings.Join(append(killed, "now "+w.now.Sub(start).String()), ", ")
	case kindCrash:
		e.who, e.label = o.t.name, o.t.pending.label
		w.trace = append(w.trace, e)
		o.t.entry = len(w.trace) - 1
		w.last = nil
		w.faults++
		w.kill(o.t.actor)
	default:
		if o.kind != kindRun {
			w.faults++
		}
		e.who, e.label = o.t.name, o.t.pending.label
		w.trace = append(w.trace, e)
		o.t.entry = len(w.trace) - 1
		w.last = o.t
		w.release(o.t, o.kind)
	}
	w.mu.Unlock()
	w.settle()
}

// nextTimer is the first whole second after the earliest moment the
// clock changes something: a hidden message shows again, a lease ends,
// or, while a reconciler run is still to start, a record becomes old
// enough for one of its passes; w.mu is held. A process's deadline is no
// timer: killing it there is a crash, which the crash choices make.
func (w *world) nextTimer() (time.Time, bool) {
	var at time.Time
	consider := func(t time.Time) {
		if t.IsZero() {
			return
		}
		t = ceilSecond(t)
		if t.After(w.now) && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	for _, url := range []string{copyURL, dlqURL, submitURL} {
		if url == dlqURL && w.draining {
			// A dead letter a reconciler peeked at shows again in seconds;
			// the drain's runs see it again after their stride anyway.
			continue
		}
		if t, ok := w.sqs.queues[url].nextVisible(w.now); ok {
			consider(t)
		}
	}
	reconcilerWaits := false
	for _, a := range w.actors {
		if !a.dead && a.threads[0].state == parked && a.threads[0].pending.label == "run starts" {
			reconcilerWaits = true
		}
	}
	for _, t := range w.store.recs {
		if t.Lease.Live(w.now) {
			consider(t.Lease.Until)
		}
		if !reconcilerWaits {
			continue
		}
		switch {
		case t.Status == task.StatusPending && w.rec.Platform != nil:
			consider(t.UpdatedAt.Add(w.rec.PendingAfter))
		case t.Status == task.StatusQueued && !t.Started() && t.ResentAt.IsZero():
			consider(t.UpdatedAt.Add(stuckAfter))
		case t.Status == task.StatusQueued && !t.Started():
			consider(t.ResentAt.Add(queuedAlert))
		case task.Final(t.Status) && t.NotifiedAt.IsZero():
			consider(t.UpdatedAt.Add(notifyAfter))
		}
	}
	for _, sub := range w.subs.recs {
		if !reconcilerWaits || !w.sc.submissions {
			break
		}
		switch {
		case sub.Status == submission.Accepted && sub.ClaimedBy != "":
			consider(sub.ClaimedAt.Add(claimTimeout))
		case sub.Status == submission.Accepted:
			consider(sub.UpdatedAt.Add(lostMessageAfter))
		case sub.Status == submission.Unknown:
			consider(sub.UpdatedAt.Add(unknownAfter))
		case sub.Unannounced():
			consider(sub.UpdatedAt.Add(notifyAfter))
		}
	}
	return at, !at.IsZero()
}

// Invariants.

// check holds the state to the invariants that hold after every step;
// w.mu is not held, and every thread is parked or finished.
func (w *world) check() error {
	if w.violation != nil {
		return w.violation
	}
	for _, id := range sortedKeys(w.store.recs) {
		t := w.store.recs[id]
		under := w.s3.keysUnder(prefix + id + "/")
		uploads := w.s3.uploadsUnder(prefix + id + "/")
		switch t.Status {
		case task.StatusStored:
			for _, o := range t.Objects {
				got, ok := w.s3.objects[o.Key]
				switch {
				case !ok:
					return fmt.Errorf("stored task %s names %s, which is not in the bucket", id, o.Key)
				case got.sha256 != o.SHA256 || got.size != o.Bytes:
					return fmt.Errorf("stored task %s names %s of %d bytes, sha256 %s; the bucket holds %d bytes, sha256 %s", id, o.Key, o.Bytes, o.SHA256, got.size, got.sha256)
				case o.SHA256 != sourceSHA(o.Source):
					return fmt.Errorf("stored task %s names %s, sha256 %s, which is not its source's %s", id, o.Key, o.SHA256, sourceSHA(o.Source))
				}
			}
		case task.StatusCopyFailed, task.StatusFailed:
			if len(under) > 0 || len(uploads) > 0 {
				return fmt.Errorf("%s task %s leaves %s under its prefix", t.Status, id, strings.Join(append(under, uploads...), ", "))
			}
		}
	}
	return nil
}

// sourceSHA is the SHA-256 of what the source serves at url.
func sourceSHA(url string) string {
	name := url[strings.LastIndexByte(url, '/')+1:]
	name = strings.TrimSuffix(name, ".png")
	return sha256Hex(pngOf(name))
}

// quiescent holds the state, once nothing can happen any more, to what
// must be true at the end: every task ended, its end announced, its
// prefix holding only what its record names.
func (w *world) quiescent() error {
	for _, id := range sortedKeys(w.store.recs) {
		t := w.store.recs[id]
		if !task.Final(t.Status) {
			return fmt.Errorf("task %s is stuck %s: no message, lease or run will move it (%s)", id, t.Status, brief(t))
		}
		for _, r := range w.history[id] {
			if !task.Final(r.status) {
				continue
			}
			if !slices.ContainsFunc(w.bus.events, func(e event) bool { return e.task == id && e.status == r.status && e.seq > r.seq }) {
				return fmt.Errorf("task %s reached %s (generation %d), and no event announced it", id, r.status, r.generation)
			}
		}
		named := map[string]bool{}
		for _, o := range t.Objects {
			named[o.Key] = true
		}
		for _, k := range w.s3.keysUnder(prefix + id + "/") {
			if !named[k] {
				return fmt.Errorf("%s task %s leaves %s, which its record does not name", t.Status, id, k)
			}
		}
		if ups := w.s3.uploadsUnder(prefix + id + "/"); len(ups) > 0 {
			return fmt.Errorf("%s task %s leaves multipart uploads %s open", t.Status, id, strings.Join(ups, ", "))
		}
	}
	if n := len(w.sqs.queues[copyURL].msgs); n > 0 {
		return fmt.Errorf("%d messages left in the copy queue", n)
	}
	return w.submissionsQuiescent()
}

// State hashing.

// hash is the state at a decision point: the data (see data), and each
// live thread's state and fingerprint (everything it has been answered:
// its local state). A finished thread's is left out: it will never act
// again. Two points with one hash have the same futures.
func (w *world) hash() uint64 {
	var b strings.Builder
	w.data(&b)
	if w.last != nil && w.enabled(w.last) {
		// Which thread ran last matters only while it can continue: it
		// is free to.
		fmt.Fprintf(&b, "last %s|", w.last.name)
	}
	for _, a := range w.actors {
		if !a.live() {
			continue
		}
		fmt.Fprintf(&b, "%s %d %d %s|", a.name, a.deadline.UnixMilli(), a.attempts, a.claiming)
		for _, t := range a.threads {
			if t.state == finished {
				continue
			}
			fmt.Fprintf(&b, "%s %d %d %d %t", t.name, t.state, t.steps, t.fp, t.slept)
			if t.pending != nil {
				b.WriteString(" " + t.pending.label)
			}
			b.WriteByte('|')
		}
	}
	return hashString(b.String())
}

// dataHash is the data alone: once every actor has ended, all the drain
// depends on.
func (w *world) dataHash() uint64 {
	var b strings.Builder
	w.data(&b)
	return hashString(b.String())
}

// data writes what every service holds, what the explorer checks against
// (the statuses reached, the events put, the faults injected), what the
// source will answer, and the clock.
func (w *world) data(b *strings.Builder) {
	fmt.Fprintf(b, "now %d|faults %d %t %t %t|", w.now.Sub(start).Milliseconds(), w.faults, w.requeued, w.subAnswered, w.abandoned)
	for _, id := range sortedKeys(w.store.recs) {
		fmt.Fprintf(b, "%s|", digest(w.store.recs[id]))
	}
	for _, url := range []string{copyURL, dlqURL, submitURL, submitDLQURL} {
		for _, m := range w.sqs.queues[url].msgs {
			fmt.Fprintf(b, "%s %s %s %d %d %d %s|", url, m.id, m.body, m.receives, m.sentAt.UnixMilli(), m.visibleAt.UnixMilli(), m.receipt)
		}
	}
	for _, id := range sortedKeys(w.subs.recs) {
		fmt.Fprintf(b, "%+v|", w.subs.recs[id])
		for _, r := range w.subs.history[id] {
			fmt.Fprintf(b, "%s %s|", id, r.status)
			for _, e := range w.bus.events {
				if e.submission == id && e.seq > r.seq {
					fmt.Fprintf(b, "announced %s|", e.status)
				}
			}
		}
	}
	fmt.Fprintf(b, "platform %d %t %v|", w.platform.calls, w.platform.answerLost, w.platform.callers)
	for _, t := range w.platform.tasks {
		fmt.Fprintf(b, "%+v|", *t)
	}
	fmt.Fprintf(b, "ids %d %d %d|dead %v|", w.sqs.ids, w.sqs.rcpts, w.s3.ids, w.sqs.dead)
	for _, k := range sortedKeys(w.s3.objects) {
		fmt.Fprintf(b, "%s %+v|", k, w.s3.objects[k])
	}
	for _, id := range sortedKeys(w.s3.uploads) {
		fmt.Fprintf(b, "%s %s %d|", id, w.s3.uploads[id].key, len(w.s3.uploads[id].parts))
	}
	for _, id := range sortedKeys(w.history) {
		for _, r := range w.history[id] {
			// The order of the statuses and events matters, not their
			// sequence numbers.
			fmt.Fprintf(b, "%s %s %d|", id, r.status, r.generation)
			for _, e := range w.bus.events {
				if e.task == id && e.seq > r.seq {
					fmt.Fprintf(b, "announced %s|", e.status)
				}
			}
		}
	}
	fmt.Fprintf(b, "events %d|%s|", len(w.bus.events), w.env.src.state())
}

// progress is the part of the state the drain must see settle: records,
// the copy queue, the bucket, the events.
func (w *world) progress() uint64 {
	var b strings.Builder
	for _, id := range sortedKeys(w.store.recs) {
		fmt.Fprintf(&b, "%s|", digest(w.store.recs[id]))
	}
	for _, url := range []string{copyURL, submitURL} {
		for _, m := range w.sqs.queues[url].msgs {
			fmt.Fprintf(&b, "%s %d|", m.id, m.receives)
		}
	}
	for _, id := range sortedKeys(w.subs.recs) {
		fmt.Fprintf(&b, "%+v|", w.subs.recs[id])
	}
	for _, t := range w.platform.tasks {
		fmt.Fprintf(&b, "%+v|", *t)
	}
	fmt.Fprintf(&b, "%d|%v|%d|%d", len(w.sqs.queues[dlqURL].msgs), sortedKeys(w.s3.objects), len(w.s3.uploads), len(w.bus.events))
	return hashString(b.String())
}

func sortedKeys[M ~map[K]V, K cmp.Ordered, V any](m M) []K {
	return slices.Sorted(maps.Keys(m))
}
