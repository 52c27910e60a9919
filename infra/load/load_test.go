package load_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/faults"
	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// start runs a stack whose copies are retried quickly, with rates of
// faults before every emulator when given.
func start(tb testing.TB, rates *faults.Rates) (*stack.Stack, *platform.Files) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs the functions")
	}
	s, err := stack.Start(context.Background(), stack.Options{
		Addr: "127.0.0.1:0", Dir: tb.TempDir(), CallbackInstances: 4,
		CopierTimeout: 20 * time.Second,
		Emulators:     emulators.Options{VisibilityTimeout: 3 * time.Second, MaxReceiveCount: 5},
		Faults:        rates,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	files := platform.ServeFiles()
	tb.Cleanup(files.Close)
	return s, files
}

func small(n int) load.Options {
	return load.Options{Tasks: n, Concurrency: 8, Duplicates: 0.2, Failures: 0.1, FailThenWin: 0.1, MaxFile: 256 << 10,
		Backoff: 300 * time.Millisecond, Wait: 90 * time.Second, Seed: 7}
}

func check(tb testing.TB, rep *load.Report, err error) {
	tb.Helper()
	tb.Log("\n" + rep.String())
	if err != nil {
		tb.Fatal(err)
	}
	if p := rep.Problems(); len(p) > 0 {
		tb.Fatalf("audit: %s", strings.Join(p, "; "))
	}
}

func TestALoadRunLosesNothing(t *testing.T) {
	s, files := start(t, nil)
	rep, err := load.Run(context.Background(), s, files, small(60))
	check(t, rep, err)
	if rep.Stored != rep.Planned.Success+rep.Planned.FailThenWin || rep.GaveUp != 0 || rep.DLQ != 0 || rep.DuplicatesAbsorbed == 0 {
		t.Errorf("without faults every success is stored at once: %+v", rep)
	}
}
