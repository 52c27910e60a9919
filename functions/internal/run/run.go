// Package run starts the parts of a function's work that run at once. The
// functions run them on goroutines; the explorer (functions/internal/
// explore) runs them one after the other, so that every call they make to
// a service is a step it schedules.
package run

import "sync"

// Group runs functions and waits for them all.
type Group interface {
	Go(f func())
	Wait()
}

// NewGroup makes a Group for one use.
type NewGroup func() Group

// Goroutines runs each function on a goroutine of its own.
func Goroutines() Group { return new(sync.WaitGroup) }

// Or is g, or Goroutines when g is nil.
func (g NewGroup) Or() Group {
	if g == nil {
		return Goroutines()
	}
	return g()
}

// InTurn runs each function to its end when it is given.
func InTurn() Group { return inTurn{} }

type inTurn struct{}

func (inTurn) Go(f func()) { f() }
func (inTurn) Wait()       {}

// Workers are goroutines that outlive the invocations they serve, so that
// the stack a deep call (an SDK request) grew stays grown until a garbage
// collection shrinks it: a fresh goroutine starts small and copies its
// stack at each doubling as it grows, every time.
type Workers struct{ jobs chan func() }

// NewWorkers starts n workers; they run for the life of the process.
func NewWorkers(n int) *Workers {
	w := &Workers{jobs: make(chan func())}
	for range n {
		go func() {
			for job := range w.jobs {
				job()
			}
		}()
	}
	return w
}

// Group is a NewGroup whose functions run on an idle worker, or on a
// goroutine of their own when every worker is busy.
func (w *Workers) Group() Group { return &workersGroup{jobs: w.jobs} }

type workersGroup struct {
	jobs chan func()
	wg   sync.WaitGroup
}

func (g *workersGroup) Go(f func()) {
	g.wg.Add(1)
	job := func() {
		defer g.wg.Done()
		f()
	}
	select {
	case g.jobs <- job:
	default:
		go job()
	}
}

func (g *workersGroup) Wait() { g.wg.Wait() }
