package load_test

import (
	"context"
	"strings"
	"sync/atomic"
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
	return startWith(tb, rates, 3*time.Second)
}

// startWith sets the queue's visibility timeout: a copy that outlasts it is
// delivered again while it runs, so big files need a longer one.
func startWith(tb testing.TB, rates *faults.Rates, visibility time.Duration) (*stack.Stack, *platform.Files) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs the functions")
	}
	s, err := stack.Start(context.Background(), stack.Options{
		Addr: "127.0.0.1:0", Dir: tb.TempDir(), CallbackInstances: 4,
		CopierTimeout: 20 * time.Second,
		Emulators:     emulators.Options{VisibilityTimeout: visibility, MaxReceiveCount: 5},
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

func TestFivePercentFaultsEverywhereLoseNothing(t *testing.T) {
	rates := faults.Uniform(0.05)
	s, files := start(t, &rates)
	files.SetFaults(0.05)
	rep, err := load.Run(context.Background(), s, files, small(60))
	check(t, rep, err)
	if s.Proxies.DynamoDB.Injected.Load() == 0 || s.Proxies.SQS.Injected.Load() == 0 || s.Proxies.S3.Injected.Load() == 0 || files.Injected.Load() == 0 {
		t.Error("some dependency met no fault")
	}
	if rep.Stored+rep.InDLQ+rep.CopyFailed != rep.Planned.Success+rep.Planned.FailThenWin-rep.NeverAccepted {
		t.Errorf("every accepted success must end stored, or in the DLQ or copy_failed with a reason: %+v", rep)
	}
}

func TestACopierKilledMidUploadIsRetriedAndStoresIntactObjects(t *testing.T) {
	s, files := startWith(t, nil, 20*time.Second)
	opts := small(8)
	opts.Duplicates, opts.Failures, opts.FailThenWin = 0, 0, 0
	opts.BigVideos, opts.MaxFile = 2, 0 // two 100+ MiB videos keep the copier busy
	var killed atomic.Int32
	opts.During = func(ctx context.Context) {
		// Kill the copier once it has been at work for a moment: its first
		// batch holds 100+ MiB videos, so it is mid-upload.
		for busy := 0; killed.Load() == 0 && ctx.Err() == nil; {
			time.Sleep(100 * time.Millisecond)
			if s.PeakRSS()["CopierFunction"] > 0 {
				busy++
			}
			if busy == 5 {
				killed.Store(int32(s.KillCopier()))
			}
		}
	}
	rep, err := load.Run(context.Background(), s, files, opts)
	check(t, rep, err)
	if killed.Load() == 0 {
		t.Fatal("the copier was never killed")
	}
	if rep.Stored != 8 || rep.Objects == 0 {
		t.Errorf("stored %d of 8", rep.Stored)
	}
}

func TestSQSUnavailableForAWhileAnswers503AndTheRetriesCompleteTheTasks(t *testing.T) {
	s, files := start(t, &faults.Rates{})
	opts := small(30)
	opts.During = func(ctx context.Context) {
		s.Proxies.SQS.SetDown(true)
		select {
		case <-time.After(700 * time.Millisecond):
		case <-ctx.Done():
		}
		s.Proxies.SQS.SetDown(false)
	}
	rep, err := load.Run(context.Background(), s, files, opts)
	check(t, rep, err)
	if rep.Retries == 0 || rep.GaveUp != 0 {
		t.Errorf("want 503s retried to completion: retries %d, given up %d", rep.Retries, rep.GaveUp)
	}
}

func TestDynamoDBThrottlingStaysInsideThePlatformsBudget(t *testing.T) {
	s, files := start(t, &faults.Rates{})
	s.Proxies.DynamoDB.SetRates(faults.Rates{Throttle: 0.3})
	rep, err := load.Run(context.Background(), s, files, small(30))
	check(t, rep, err)
	if rep.MaxLatency() >= 15*time.Second {
		t.Errorf("slowest answer %v: the platform waits 15 s", rep.MaxLatency())
	}
	if s.Proxies.DynamoDB.Injected.Load() == 0 {
		t.Error("nothing was throttled")
	}
}
