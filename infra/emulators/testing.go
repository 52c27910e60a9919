package emulators

import (
	"context"
	"testing"
)

// New starts an Env for one test and closes it when the test ends.
func New(tb testing.TB, opts Options) *Env {
	tb.Helper()
	env, err := Start(context.Background(), opts)
	if err != nil {
		tb.Fatalf("start emulators: %v", err)
	}
	tb.Cleanup(env.Close)
	return env
}
