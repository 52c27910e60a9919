package run_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/run"
)

func TestWorkers(t *testing.T) {
	workers := run.NewWorkers(1)
	t.Run("a group waits for every function it was given", func(t *testing.T) {
		var ran atomic.Int64
		g := workers.Group()
		for range 5 {
			g.Go(func() {
				time.Sleep(time.Millisecond)
				ran.Add(1)
			})
		}
		g.Wait()
		if ran.Load() != 5 {
			t.Errorf("%d of 5 ran before Wait returned", ran.Load())
		}
	})
	t.Run("functions that wait for each other run at once, though one worker is busy", func(t *testing.T) {
		done := make(chan struct{})
		g := workers.Group()
		a, b := make(chan struct{}), make(chan struct{})
		g.Go(func() { close(a); <-b })
		g.Go(func() { close(b); <-a })
		go func() { g.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the second function waited for the busy worker")
		}
	})
	t.Run("the workers serve one group after another", func(t *testing.T) {
		for i := range 100 {
			var ran atomic.Bool
			g := workers.Group()
			g.Go(func() { ran.Store(true) })
			g.Wait()
			if !ran.Load() {
				t.Fatalf("group %d: its function did not run", i)
			}
		}
	})
}

// BenchmarkADeepCall runs, on a group of each kind, a call as deep as an
// SDK request's middleware (some 30 KiB of stack): a fresh goroutine grows
// its stack, copying it, every time; a worker grew it once. Nothing here
// allocates, so no collection shrinks the worker's stack between calls,
// as one now and then does in the callback.
func BenchmarkADeepCall(b *testing.B) {
	for _, k := range []struct {
		name  string
		group run.NewGroup
	}{{"goroutines", run.Goroutines}, {"workers", run.NewWorkers(1).Group}} {
		b.Run(k.name, func(b *testing.B) {
			for b.Loop() {
				g := k.group()
				g.Go(func() { deep(60) })
				g.Wait()
			}
		})
	}
}

//go:noinline
func deep(n int) byte {
	var frame [512]byte
	frame[n%len(frame)] = byte(n)
	if n == 0 {
		return frame[0]
	}
	return deep(n-1) + frame[n%len(frame)]
}
