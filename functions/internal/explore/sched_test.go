package explore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/queue"
)

// A thread is one goroutine of an actor: its main one, or the send a
// callback starts. It runs only between a release by the scheduler and
// its next call to a fake service, so that one thread runs at a time.
type thread struct {
	name    string
	actor   *actor
	state   threadState
	pending *pending  // the call it is parked at
	resume  chan kind // the scheduler's decision on that call
	pre     *kind     // the decision on the call it is about to make (a send, parked before it starts)
	fp      uint64    // what it has been answered so far: its local state
	steps   int       // calls made: its program counter
	entry   int       // its current entry in the trace, -1 for none
	slept   bool      // its last call was a sleep: it yields
	scratch strings.Builder
}

type threadState uint8

const (
	running  threadState = iota // between a release and its next call
	parked                      // at a call, waiting for the scheduler
	finished                    // returned, or unwound by a crash
)

// pending is the call a parked thread waits at.
type pending struct {
	label   string
	faults  faults
	ready   func() bool // nil: always; a copier's receive waits for a visible message
	noCrash bool        // a pseudo-step (a reconciler run starting): nothing to crash
}

// faults are the wrong answers a call admits besides a crash.
type faults uint8

const (
	mayLose   faults = 1 << iota // it takes effect, and its caller gets an error
	mayRefuse                    // it fails with no effect
)

// kind is what the scheduler decides at a decision point.
type kind uint8

const (
	kindRun     kind = iota // the call proceeds
	kindCrash               // the actor dies at this call: none of it happens
	kindLose                // the call takes effect, its answer is lost
	kindRefuse              // the call fails, with no effect
	kindAdvance             // the clock moves to the next timer
)

func (k kind) String() string {
	return [...]string{"run", "crash", "lost answer", "refused", "advance clock"}[k]
}

// An actor is one process of the system: a callback invocation, an event
// source mapping with its copier, a reconciler run, an operator.
type actor struct {
	name     string
	threads  []*thread
	dead     bool // crashed, killed at its deadline, or ended by the explorer
	deadline time.Time
	attempts int // copy attempts named (the copier's Owner)
	expect   int // sends the callback is about to start
	note     string
}

// live reports whether the actor still runs: not dead, some thread not
// finished.
func (a *actor) live() bool {
	if a.dead {
		return false
	}
	for _, t := range a.threads {
		if t.state != finished {
			return true
		}
	}
	return false
}

// crashed is the panic that unwinds a thread whose actor died, as a dead
// process stops: nothing after it runs but the deferred calls, whose
// calls to the services panic in turn.
type crashed struct{}

var (
	errLost    = errors.New("explore: connection reset after the request was sent")
	errRefused = errors.New("explore: service unavailable")
)

// call is one call to a fake service, in flight.
type call struct {
	w    *world
	t    *thread
	kind kind
}

// failed reports whether the call must fail with no effect.
func (c *call) failed() bool { return c.kind == kindRefuse }

func (c *call) err() error { return errRefused }

// lost reports whether the call's answer is lost after it took effect.
func (c *call) lost() bool { return c.kind == kindLose }

// end records what the call answered, for the trace (short) and for the
// thread's fingerprint (full: everything the caller learns).
func (c *call) end(short string, full ...any) {
	w := c.w
	w.mu.Lock()
	defer w.mu.Unlock()
	t := c.t
	if t.entry >= 0 && t.entry < len(w.trace) {
		e := &w.trace[t.entry]
		switch {
		case c.kind == kindLose:
			e.result = short + " (answer lost)"
		case c.failed():
			e.result = c.err().Error()
		default:
			e.result = short
		}
	}
	t.entry = -1
	t.scratch.Reset()
	fmt.Fprintf(&t.scratch, "%d|%s|%s|%d|", t.fp, short, c.kind, w.now.UnixMilli())
	for _, f := range full {
		fmt.Fprintf(&t.scratch, "%+v|", f)
	}
	t.fp = hashString(t.scratch.String())
}

// call parks the calling thread at a call labelled label until the
// scheduler decides on it. A thread whose actor died panics with crashed.
func (w *world) call(label string, f faults, ready func() bool) *call {
	return w.park(pending{label: label, faults: f, ready: ready})
}

func (w *world) park(p pending) *call {
	w.mu.Lock()
	t := w.sole()
	if t == nil {
		w.mu.Unlock()
		panic(fmt.Sprintf("explore: a call (%s) while no thread, or two, run", p.label))
	}
	if t.actor.dead {
		w.mu.Unlock()
		panic(crashed{})
	}
	if k := t.pre; k != nil {
		// The thread was parked before it started, at this call.
		t.pre = nil
		w.mu.Unlock()
		return &call{w: w, t: t, kind: *k}
	}
	t.state, t.pending = parked, &p
	w.signal()
	w.mu.Unlock()
	k := <-t.resume
	if k == kindCrash {
		panic(crashed{})
	}
	return &call{w: w, t: t, kind: k}
}

// sole is the one thread running: the caller, since the scheduler
// releases one thread at a time; nil if none or more run; w.mu is held.
func (w *world) sole() *thread {
	var sole *thread
	for _, a := range w.actors {
		for _, t := range a.threads {
			if t.state == running {
				if sole != nil {
					return nil
				}
				sole = t
			}
		}
	}
	return sole
}

// signal wakes the scheduler; w.mu is held.
func (w *world) signal() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// fail records the first violation; w.mu is held.
func (w *world) fail(err error) {
	if w.violation == nil {
		w.violation = err
	}
}

// spawn starts an actor running body on its main thread, and waits
// until it has reached its first call or ended.
func (w *world) spawn(name string, sends int, deadline time.Duration, body func(ctx context.Context, a *actor)) *actor {
	w.mu.Lock()
	a := &actor{name: name, expect: sends}
	if deadline > 0 {
		a.deadline = w.now.Add(deadline)
	}
	w.actors = append(w.actors, a)
	t := w.thread(a, name, running)
	w.mu.Unlock()
	go w.run(t, func() { body(context.WithValue(context.Background(), actorKey{}, a), a) })
	w.settle()
	return a
}

type actorKey struct{}

// thread adds a thread to a; w.mu is held.
func (w *world) thread(a *actor, name string, s threadState) *thread {
	t := &thread{name: name, actor: a, state: s, resume: make(chan kind, 1), entry: -1}
	a.threads = append(a.threads, t)
	return t
}

// run runs body as t, which ends when body returns or its actor dies.
func (w *world) run(t *thread, body func()) {
	defer func() {
		r := recover()
		w.mu.Lock()
		defer w.mu.Unlock()
		if _, ok := r.(crashed); r != nil && !ok {
			buf := make([]byte, 1<<16)
			w.fail(fmt.Errorf("%s panicked: %v\n%s", t.name, r, buf[:runtime.Stack(buf, false)]))
		}
		t.state = finished
		w.signal()
	}()
	body()
}

// sendQueue is the callback's queue. The receiver sends on a goroutine
// of its own while it writes the record, and its answer waits for both;
// here the send is a thread of the callback's actor, parked at its
// SendMessage from the start, and the receiver is answered at once. What
// the send does to the queue, and when, is the scheduler's to choose as
// before, and a crash of the callback still kills it; only the answer to
// the platform no longer waits for it, and nothing the explorer checks
// reads that answer (the platform's retry is an actor of its own). So no
// thread ever blocks on another outside a call, and the scheduler never
// has to tell one so blocked from one still running.
type sendQueue struct {
	w *world
	q *queue.Queue
}

func (s sendQueue) Enqueue(ctx context.Context, taskID string, generation int) error {
	w := s.w
	a := ctx.Value(actorKey{}).(*actor)
	w.mu.Lock()
	a.expect--
	t := w.thread(a, a.name+"/send", parked)
	t.pending = &pending{label: fmt.Sprintf("SendMessage copy {\"taskId\":%q} (the callback's send)", taskID), faults: mayLose | mayRefuse}
	w.signal()
	w.mu.Unlock()
	go w.run(t, func() {
		k := <-t.resume
		if k == kindCrash {
			panic(crashed{})
		}
		w.mu.Lock()
		t.pre = &k
		w.mu.Unlock()
		s.q.Enqueue(ctx, taskID, generation)
	})
	return nil
}

// settle waits until no thread runs: each is parked at a call or
// finished.
func (w *world) settle() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	watchdog := time.Now().Add(60 * time.Second)
	for {
		w.mu.Lock()
		busy := w.busy()
		w.mu.Unlock()
		if busy == nil {
			return
		}
		if time.Now().After(watchdog) {
			all := make([]byte, 1<<20)
			panic(fmt.Sprintf("explore: %s neither reached a call nor ended within 60 s\n%s", busy.name, all[:runtime.Stack(all, true)]))
		}
		timer.Reset(time.Second)
		select {
		case <-w.changed:
		case <-timer.C:
		}
	}
}

// busy is a thread still running, or the main thread of an actor whose
// send is still to start; nil if none; w.mu is held.
func (w *world) busy() *thread {
	for _, a := range w.actors {
		if a.expect > 0 {
			return a.threads[0]
		}
		for _, t := range a.threads {
			if t.state == running {
				return t
			}
		}
	}
	return nil
}

// release lets t's pending call proceed as k decides; w.mu is held.
func (w *world) release(t *thread, k kind) {
	t.state, t.pending, t.slept = running, nil, false
	t.steps++
	t.resume <- k
}

// kill ends an actor: each of its parked threads gets a crash; w.mu is
// held.
func (w *world) kill(a *actor) {
	a.dead = true
	for _, t := range a.threads {
		if t.state == parked {
			w.release(t, kindCrash)
		}
	}
}

// abort kills every actor and waits for their goroutines to end, so that
// nothing of this execution runs into the next.
func (w *world) abort() {
	for {
		w.mu.Lock()
		live := false
		for _, a := range w.actors {
			w.kill(a)
			for _, t := range a.threads {
				live = live || t.state != finished
			}
		}
		w.mu.Unlock()
		if !live {
			return
		}
		w.settle()
	}
}
