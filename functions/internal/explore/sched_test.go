package explore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/run"
)

// A thread is one goroutine of an actor: its main one, or one its Group
// started (a callback's send). It runs only between a release by the scheduler and
// its next call to a fake service, so that one thread runs at a time.
type thread struct {
	name    string
	actor   *actor
	state   threadState
	pending *pending   // the call it is parked at
	resume  chan kind  // the scheduler's decision on that call
	starter *thread    // the thread whose Go waits for this one to reach its first call
	group   *sendGroup // the Group that started it, whose Wait its end may let go on
	fp      uint64     // what it has been answered so far: its local state
	steps   int        // calls made: its program counter
	entry   int        // its current entry in the trace, -1 for none
	slept   bool       // its last call was a sleep: it yields
	scratch strings.Builder
}

type threadState uint8

const (
	running  threadState = iota // between a release and its next call
	parked                      // at a call, waiting for the scheduler
	finished                    // returned, or unwound by a crash
	starting                    // in Go, until the thread it started parks or ends
	waiting                     // in Wait, until the threads it waits for have ended
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
	mayRetry                     // it takes effect, and the SDK, its answer lost, sends it again
)

// kind is what the scheduler decides at a decision point.
type kind uint8

const (
	kindRun     kind = iota // the call proceeds
	kindCrash               // the actor dies at this call: none of it happens
	kindLose                // the call takes effect, its answer is lost
	kindRefuse              // the call fails, with no effect
	kindAdvance             // the clock moves to the next timer
	kindRetry               // the call takes effect, its answer is lost, and it is sent again
)

func (k kind) String() string {
	return [...]string{"run", "crash", "lost answer", "refused", "advance clock", "sent again"}[k]
}

// An actor is one process of the system: a callback invocation, an event
// source mapping with its copier, a reconciler run, an operator.
type actor struct {
	name     string
	threads  []*thread
	dead     bool // crashed, killed at its deadline, or ended by the explorer
	deadline time.Time
	attempts int    // attempts named (the copier's Owner, the submitter's)
	claiming string // the submitter's attempt in this invocation, once it claims
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

// retried reports whether the call is sent again once it took effect, as
// the SDK does when its answer is lost: the caller gets the second's.
func (c *call) retried() bool { return c.kind == kindRetry }

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
		case c.kind == kindRetry:
			e.result = short + " (the second send's answer)"
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
	t.state, t.pending = parked, &p
	w.handBack(t)
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
func (w *world) spawn(name string, deadline time.Duration, body func(ctx context.Context, a *actor)) *actor {
	w.mu.Lock()
	a := &actor{name: name}
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
		w.handBack(t)
		if g := t.group; g != nil && g.waiter != nil && g.waiter.state == waiting && g.ended() {
			// The caller's Wait returns within this step: it has nothing
			// of its own to decide. (A caller killed in it is already let
			// go, with a crash.)
			g.waiter.state = running
			g.waiter.resume <- kindRun
		}
		w.signal()
	}()
	body()
}

// handBack lets the thread that started t go on, once t has parked or
// ended: one thread runs at a time; w.mu is held.
func (w *world) handBack(t *thread) {
	if s := t.starter; s != nil {
		t.starter, s.state = nil, running
		s.resume <- kindRun
	}
}

// sendGroup is the callback's Group. Go starts f as a thread of the
// caller's actor, named after its send, and returns once that thread has
// reached its first call, so that its steps, faults and crash are the
// scheduler's to choose. Wait blocks the caller until every thread it
// started has ended, and the end of the last lets it go on in the same
// step. The answer to the platform thus waits for the send, as in
// production.
type sendGroup struct {
	w       *world
	threads []*thread
	waiter  *thread // the caller, in Wait
}

func (w *world) sendGroup() run.Group { return &sendGroup{w: w} }

func (g *sendGroup) Go(f func()) {
	w := g.w
	w.mu.Lock()
	caller := w.sole()
	t := w.thread(caller.actor, caller.actor.name+"/send", running)
	t.starter, t.group, caller.state = caller, g, starting
	g.threads = append(g.threads, t)
	w.mu.Unlock()
	go w.run(t, f)
	<-caller.resume
}

func (g *sendGroup) Wait() {
	w := g.w
	w.mu.Lock()
	if g.ended() {
		w.mu.Unlock()
		return
	}
	t := w.sole()
	t.state, g.waiter = waiting, t
	w.signal()
	w.mu.Unlock()
	if <-t.resume == kindCrash {
		panic(crashed{})
	}
}

// ended reports whether every thread g started has ended; w.mu is held.
func (g *sendGroup) ended() bool {
	return !slices.ContainsFunc(g.threads, func(t *thread) bool { return t.state != finished })
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

// busy is a thread still running, or starting one; nil if none; w.mu is
// held.
func (w *world) busy() *thread {
	for _, a := range w.actors {
		for _, t := range a.threads {
			if t.state == running || t.state == starting {
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

// kill ends an actor: each of its parked or waiting threads gets a
// crash; w.mu is held.
func (w *world) kill(a *actor) {
	a.dead = true
	for _, t := range a.threads {
		if t.state == parked || t.state == waiting {
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
