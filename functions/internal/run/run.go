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
