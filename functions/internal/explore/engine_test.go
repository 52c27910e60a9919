package explore

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiehook/kiehook/functions/internal/submission"
)

// scenario is one setting the explorer runs the real code in: a prelude
// run in one fixed order (how the system got there), then the actors
// whose steps it interleaves, then what must hold at the end.
type scenario struct {
	name    string // a sentence, for t.Run
	prelude func(w *world)
	actors  func(w *world)
	// expect is what must hold once the system has settled, beyond the
	// invariants every scenario keeps; nil: nothing more.
	expect func(w *world) error
	// faults narrows the faults explored to the calls where the scenario
	// needs them; nil: every call a fault applies to.
	faults func(t *thread, p *pending, k kind) bool
	// submissions runs the reconciler's submission passes and its polls
	// of pending tasks; platform is what the platform's create calls
	// answer, one code a call, the last for good (default 200); silent,
	// that it never calls a task back, even in the drain.
	submissions bool
	platform    []int
	silent      bool
	// ci and full bound the search: preemptions, crashes, wrong answers.
	ci, full budget
	drained  sync.Map // data hashes of end states whose drain passed
}

func (sc *scenario) faultOK(t *thread, p *pending, k kind) bool {
	return sc.faults == nil || sc.faults(t, p, k)
}

// runToEnd runs whatever can run, the thread that ran last first, with
// no fault and no clock advance, checking the invariants at every step;
// then it ends the actors left waiting for a message. The prelude and
// the drain are made of it.
func (w *world) runToEnd() error {
	for {
		if err := w.checked(); err != nil {
			return err
		}
		w.mu.Lock()
		var next *thread
		if w.last != nil && w.enabled(w.last) {
			next = w.last
		}
		for _, a := range w.actors {
			for _, t := range a.threads {
				if next == nil && w.enabled(t) {
					next = t
				}
			}
		}
		w.mu.Unlock()
		if next == nil {
			break
		}
		w.apply(option{kind: kindRun, t: next})
	}
	w.dismiss()
	return w.checked()
}

// dismiss ends the actors that wait for what will not come (a copier
// polling an empty queue).
func (w *world) dismiss() {
	w.mu.Lock()
	for _, a := range w.actors {
		if !a.dead && slices.ContainsFunc(a.threads, func(t *thread) bool { return t.state == parked }) {
			w.kill(a)
		}
	}
	w.mu.Unlock()
	w.settle()
}

// advance moves the clock to the next timer, if any, for a prelude.
func (w *world) advance() {
	w.mu.Lock()
	if at, ok := w.nextTimer(); ok {
		w.trace = append(w.trace, entry{who: "clock", label: fmt.Sprintf("+%v", at.Sub(w.now)), kind: kindAdvance, phase: w.phase})
		killed := w.advanceTo(at, false)
		w.trace[len(w.trace)-1].result = strings.Join(append(killed, "now "+w.now.Sub(start).String()), ", ")
	}
	w.mu.Unlock()
	w.settle()
}

func (w *world) checked() error {
	w.mu.Lock()
	v := w.violation
	w.mu.Unlock()
	if v != nil {
		return v
	}
	return w.check()
}

// drainStride is how far the drain moves the clock when no timer is
// sooner: past every reconciler threshold.
const drainStride = queuedAlert + time.Second

// finish drives the system to quiescence with no fault: copiers take
// every message as it shows, a reconciler runs after each round, and the
// clock moves on until a round changes nothing and nothing is in flight.
// Then the end state must hold.
func (w *world) finish() error {
	w.phase, w.draining = "drain", true
	w.dismiss()
	copiers, strode := 0, false
	for round := 0; ; round++ {
		if round == 40 {
			return fmt.Errorf("the system never settles: %v", w.quiescent())
		}
		before := w.progress()
		for w.visible(copyURL) {
			copiers++
			w.esm(fmt.Sprintf("drain-copier-%d", copiers), 1)
			if err := w.runToEnd(); err != nil {
				return err
			}
		}
		for w.visible(submitURL) {
			copiers++
			w.submitter(fmt.Sprintf("drain-submitter-%d", copiers), 1)
			if err := w.runToEnd(); err != nil {
				return err
			}
		}
		// One more callback of each task whose callback was never
		// answered, a round: one that fails for good shows as a system
		// that never settles.
		if !w.sc.silent && w.platform.due(round+2) != nil {
			w.platformCalls(fmt.Sprintf("drain-platform-%d", round+1), round+2)
			if err := w.runToEnd(); err != nil {
				return err
			}
		}
		w.reconcile(fmt.Sprintf("drain-reconciler-%d", round+1))
		if err := w.runToEnd(); err != nil {
			return err
		}
		// Settled: a round changed nothing, nothing waits on the clock,
		// and the round ran a full stride after the one before, past
		// every threshold of the reconciler's passes.
		settled := w.progress() == before && w.idle()
		if settled && strode {
			break
		}
		w.mu.Lock()
		at, ok := w.nextTimer()
		if settled || !ok || at.After(w.now.Add(drainStride)) {
			at = w.now.Add(drainStride)
		}
		strode = at.Sub(w.now) >= drainStride
		w.trace = append(w.trace, entry{who: "clock", label: fmt.Sprintf("+%v", at.Sub(w.now)), kind: kindAdvance, phase: w.phase})
		w.advanceTo(at, false)
		w.trace[len(w.trace)-1].result = "now " + w.now.Sub(start).String()
		w.mu.Unlock()
	}
	if err := w.quiescent(); err != nil {
		return err
	}
	if w.sc.expect != nil {
		return w.sc.expect(w)
	}
	return nil
}

// visible reports whether the queue at url has a message to deliver now.
func (w *world) visible(url string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sqs.queues[url].visible(w.now)
}

// idle reports that nothing waits on the clock: no message of the copy
// or submission queue in flight, no live lease, no submission short of
// its end.
func (w *world) idle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sqs.queues[copyURL].msgs) > 0 || len(w.sqs.queues[submitURL].msgs) > 0 {
		return false
	}
	for _, sub := range w.subs.recs {
		if !submission.Final(sub.Status) {
			return false
		}
	}
	for _, t := range w.store.recs {
		if t.Lease.Live(w.now) {
			return false
		}
	}
	return true
}

// strategy chooses at each decision point.
type strategy interface {
	// fresh reports whether the point at depth is new in this search (not
	// replayed), where the state hash may prune.
	fresh(depth int) bool
	choose(depth int, opts []option) int
}

// outcome is one execution's.
type outcome struct {
	err    error
	trace  []entry
	pruned bool
}

// execute runs one execution of sc from scratch: the prelude, then the
// actors as st chooses within limit, then the drain. visited, when set,
// prunes a state reached before with at least the budget left now.
func execute(sc *scenario, st strategy, limit budget, visited map[uint64][]seen) (out outcome) {
	w := newWorld(sc)
	defer func() {
		w.abort()
		out.trace = w.trace
	}()
	if sc.prelude != nil {
		w.thaw(preluded(sc))
		if out.err = w.checked(); out.err != nil {
			return out
		}
	}
	w.phase, w.last = "", nil
	sc.actors(w)
	left := limit
	for depth := 0; ; depth++ {
		if out.err = w.checked(); out.err != nil {
			return out
		}
		opts := w.options(left)
		if visited != nil && st.fresh(depth) {
			h := w.hash()
			if slices.ContainsFunc(visited[h], func(v seen) bool { return v.covers(left) }) {
				out.pruned = true
				return out
			}
			visited[h] = append(visited[h], seen(left))
		}
		if len(opts) == 0 {
			break
		}
		o := opts[st.choose(depth, opts)]
		if o.preempt {
			left.preemptions--
		}
		left.crashes -= o.kills
		switch o.kind {
		case kindCrash:
			left.crashes--
		case kindLose, kindRefuse:
			left.errors--
		}
		w.apply(o)
	}
	// Once every actor has ended, the drain depends on the data alone:
	// an end state drained before without a violation need not be again.
	h := w.dataHash()
	if passed, ok := sc.drained.Load(h); ok && passed.(bool) {
		return out
	}
	out.err = w.finish()
	sc.drained.Store(h, out.err == nil)
	return out
}

// seen is a visit of a state, with the budget left then. A later visit
// with no more budget left is covered: everything it could explore from
// there was explored.
type seen budget

func (v seen) covers(left budget) bool {
	return v.preemptions >= left.preemptions && v.crashes >= left.crashes && v.errors >= left.errors
}

// dfs is a depth-first search over choice sequences, each execution
// replayed from scratch: the choices of the last one up to the deepest
// point with an alternative left, then that alternative, then the first
// option at every new point.
type dfs struct {
	prefix, prevCounts []int
	picks, counts      []int
	nondet             error
}

func (d *dfs) fresh(depth int) bool { return depth >= len(d.prefix) }

func (d *dfs) choose(depth int, opts []option) int {
	i := 0
	if depth < len(d.prefix) {
		i = d.prefix[depth]
		if d.prevCounts[depth] != len(opts) || i >= len(opts) {
			if d.nondet == nil {
				d.nondet = fmt.Errorf("replay diverged at decision %d: %d options, %d before", depth+1, len(opts), d.prevCounts[depth])
			}
			i = 0
		}
	}
	d.picks, d.counts = append(d.picks, i), append(d.counts, len(opts))
	return i
}

// next sets up the next execution; false when the search is done.
func (d *dfs) next() bool {
	for k := len(d.picks) - 1; k >= 0; k-- {
		if d.picks[k]+1 < d.counts[k] {
			d.prefix = append(slices.Clone(d.picks[:k]), d.picks[k]+1)
			d.prevCounts = slices.Clone(d.counts[:k+1])
			d.picks, d.counts = d.picks[:0], d.counts[:0]
			return true
		}
	}
	return false
}

// random chooses at random, running threads far more often than it
// moves the clock or injects a fault.
type random struct{ rng *rand.Rand }

func (r *random) fresh(int) bool { return false }

func (r *random) choose(_ int, opts []option) int {
	weights := make([]int, len(opts))
	total := 0
	for i, o := range opts {
		switch o.kind {
		case kindRun:
			weights[i] = 20
		case kindAdvance:
			weights[i] = 3
		default:
			weights[i] = 1
		}
		total += weights[i]
	}
	n := r.rng.IntN(total)
	for i, wt := range weights {
		if n < wt {
			return i
		}
		n -= wt
	}
	return 0
}

// report is what a search did.
type report struct {
	executions, pruned int
	elapsed            time.Duration
	failure            *outcome // the shortest counterexample found
	bound              int      // the preemption bound it was found at
	capped             bool     // the search stopped at its cap, not exhausted
	nondet             error
}

// search explores sc within b by iterative preemption bounding: every
// execution with no preemption, then with at most one, and so on, so
// that a counterexample comes with the fewest preemptions it needs. Once
// one is found, a few hundred more executions look for a shorter one.
func search(sc *scenario, b budget, cap int) (rep report) {
	began := time.Now()
	defer func() { rep.elapsed = time.Since(began) }()
	for pb := 0; pb <= b.preemptions; pb++ {
		visited := map[uint64][]seen{}
		d := &dfs{}
		extra := -1
		for {
			o := execute(sc, d, budget{preemptions: pb, crashes: b.crashes, errors: b.errors}, visited)
			rep.executions++
			if *verbose && rep.executions%1000 == 0 {
				fmt.Fprintf(os.Stderr, "%s: bound %d, %d executions, %d pruned, %v, depth %d\n", sc.name[:20], pb, rep.executions, rep.pruned, time.Since(began).Round(time.Second), len(d.picks))
			}
			if o.pruned {
				rep.pruned++
			}
			if d.nondet != nil {
				rep.nondet = d.nondet
				return rep
			}
			if o.err != nil && (rep.failure == nil || simpler(o.trace, rep.failure.trace)) {
				rep.failure, rep.bound = &o, pb
				if extra < 0 {
					extra = 300
				}
			}
			if extra == 0 {
				return rep
			}
			if extra > 0 {
				extra--
			}
			if !d.next() {
				break
			}
			if rep.executions >= cap {
				rep.capped = true
				return rep
			}
		}
		if rep.failure != nil {
			return rep
		}
	}
	return rep
}

// simpler orders counterexamples: fewer faults, then fewer steps.
func simpler(a, b []entry) bool {
	if fa, fb := faultsIn(a), faultsIn(b); fa != fb {
		return fa < fb
	}
	return steps(a) < steps(b)
}

func faultsIn(trace []entry) int {
	n := 0
	for _, e := range trace {
		if e.kind == kindCrash || e.kind == kindLose || e.kind == kindRefuse || e.kind == kindRetry || strings.Contains(e.result, "killed") {
			n++
		}
	}
	return n
}

// steps counts a trace's explored and prelude steps: the drain is the
// same for equal states.
func steps(trace []entry) int {
	n := 0
	for _, e := range trace {
		if e.phase != "drain" {
			n++
		}
	}
	return n
}

// format prints a trace: one line a decision, its thread, the call it
// was parked at, what it answered, and what the scheduler made of it.
func format(trace []entry) string {
	var b strings.Builder
	for i, e := range trace {
		mark := ""
		switch e.kind {
		case kindCrash:
			mark = "CRASH at "
		case kindLose:
			mark = "LOST ANSWER of "
		case kindRefuse:
			mark = "REFUSED "
		case kindRetry:
			mark = "SENT AGAIN "
		}
		result := ""
		if e.result != "" {
			result = " → " + e.result
		}
		note := ""
		if e.preempt {
			note = "   [preemption]"
		}
		phase := ""
		if e.phase != "" {
			phase = e.phase + " "
		}
		fmt.Fprintf(&b, "%4d %s%-20s %s%s%s%s\n", i+1, phase, e.who+":", mark, e.label, result, note)
	}
	return b.String()
}
