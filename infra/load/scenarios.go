package load

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiehook/kiehook/infra/faults"
	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// A Scenario is one fault kiehook must come through: the faults its stack
// starts with, what is done to the stack while the load runs, and what must
// hold afterwards besides a clean audit.
type Scenario struct {
	Name         string        // the outcome it proves, as a sentence
	Faults       *faults.Rates // proxies before every emulator, at these rates; nil for none
	SourceFaults float64       // the file source's rate of each fault
	Visibility   time.Duration // of the copy queue: a copy that outlasts it is delivered again
	Options      Options
	// Configure, when set, adjusts the stack's options before it starts.
	Configure func(*stack.Options)
	// Setup runs once the stack has started, before the load.
	Setup func(s *stack.Stack)
	// During runs from the first delivery until the copies have settled;
	// client is the platform delivering the load.
	During func(ctx context.Context, s *stack.Stack, client *platform.Client)
	// Check returns what the run showed, or why the outcome does not hold;
	// nil when a clean audit is all the scenario asks.
	Check func(rep *Report, s *stack.Stack, files *platform.Files) (string, error)
}

// Small is a short load of every kind of task, its files small and its
// retries quick, so that a scenario runs in seconds.
func Small(tasks int) Options {
	return Options{Tasks: tasks, Concurrency: 8, Duplicates: 0.2, Failures: 0.1, FailThenWin: 0.1, MaxFile: 256 << 10,
		Backoff: 300 * time.Millisecond, Pace: 0.005, Wait: 90 * time.Second, Seed: 7}
}

// Scenarios are the fault outcomes kiehook promises, those under load
// over FullLoad tasks. Each is a constructor: a Scenario keeps the state
// of its one run (what it killed, what it counted), so a run again takes
// a new one.
func Scenarios() []func() Scenario { return append(Short(), UnderLoad(FullLoad, FullLoad)...) }

// Short are the scenarios of small loads, up to 300 tasks.
func Short() []func() Scenario {
	return []func() Scenario{keyRotation, killedBeforeTheEvent, backlog, everyFault, killedMidUpload, sqsDown, dynamoThrottled}
}

// FullLoad is the load a fault under load is proved over: issue 34's
// 2,000 tasks.
const FullLoad = 2000

// UnderLoad are the scenarios of a fault under a load: the queue refusing
// sends over tasks tasks, the reconciler racing the copies over raceTasks
// (its copies go about 5 a second, the source's stalls holding them).
func UnderLoad(tasks, raceTasks int) []func() Scenario {
	return []func() Scenario{func() Scenario { return queueRefused(tasks) }, func() Scenario { return reconcilerRace(raceTasks) }}
}

// everyFault injects 5 % of every fault on every dependency and source.
func everyFault() Scenario {
	faultRates := faults.Uniform(0.05)
	return Scenario{
		Name:         "five percent of every fault on every dependency loses nothing",
		Faults:       &faultRates,
		SourceFaults: 0.05,
		Visibility:   3 * time.Second,
		Options:      Small(60),
		Check: func(rep *Report, s *stack.Stack, files *platform.Files) (string, error) {
			counts := []int64{s.Proxies.DynamoDB.Injected.Load(), s.Proxies.SQS.Injected.Load(), s.Proxies.S3.Injected.Load(), s.Proxies.EventBridge.Injected.Load(), files.Injected.Load()}
			injected := fmt.Sprintf("faults injected: DynamoDB %d, SQS %d, S3 %d, EventBridge %d, source %d", counts[0], counts[1], counts[2], counts[3], counts[4])
			if slices.Contains(counts, 0) {
				return "", errors.New("some dependency met no fault: " + injected)
			}
			accepted := rep.Planned.Success + rep.Planned.FailThenWin - rep.NeverAccepted
			if rep.Stored+rep.InDLQ+rep.CopyFailed != accepted {
				return "", fmt.Errorf("%d accepted successes, but %d stored, %d in the DLQ and %d copy_failed", accepted, rep.Stored, rep.InDLQ, rep.CopyFailed)
			}
			return fmt.Sprintf("%s; %d accepted successes: %d stored, %d in the DLQ, %d copy_failed; lost %d",
				injected, accepted, rep.Stored, rep.InDLQ, rep.CopyFailed, rep.Lost), nil
		},
	}
}

// killedMidUpload kills the copier while a multipart upload is open.
func killedMidUpload() Scenario {
	var killed, openWhenKilled atomic.Int32
	// One 100+ MiB video keeps the copier busy; every other file fits in one
	// part, so the video's is the one multipart upload the kill interrupts.
	noBackground := Small(8)
	noBackground.Duplicates, noBackground.Failures, noBackground.FailThenWin = 0, 0, 0
	noBackground.BigVideos, noBackground.MaxFile = 1, 4<<20
	return Scenario{
		Name:       "a copier killed mid-upload is retried and stores intact objects",
		Visibility: 20 * time.Second,
		Options:    noBackground,
		During: func(ctx context.Context, s *stack.Stack, _ *platform.Client) {
			// Kill the copier mid-upload of a 100+ MiB video: once one of its
			// multipart uploads is open in the bucket, and recorded in its
			// task. (Between the upload's start and its record, a
			// millisecond, only the bucket's lifecycle rule would end it.)
			for killed.Load() == 0 && ctx.Err() == nil {
				if open, err := s.Env.OpenUploads(ctx); err == nil && open > 0 && recordedUpload(ctx, s) {
					killed.Store(int32(s.KillCopier()))
					openWhenKilled.Store(int32(open))
				}
				time.Sleep(10 * time.Millisecond)
			}
		},
		Check: func(rep *Report, s *stack.Stack, _ *platform.Files) (string, error) {
			if killed.Load() == 0 {
				return "", errors.New("the copier was never killed")
			}
			if rep.Stored != rep.Tasks || rep.Objects == 0 {
				return "", fmt.Errorf("%d of %d tasks stored", rep.Stored, rep.Tasks)
			}
			// The retry aborts what the killed copier left open; the
			// bucket's lifecycle rule is only the backstop.
			if open, err := s.Env.OpenUploads(context.Background()); open != 0 || err != nil {
				return "", fmt.Errorf("%d multipart uploads left open (%v)", open, err)
			}
			return fmt.Sprintf("copier killed mid-upload (open multipart uploads: %d, all aborted by the retry); %d of %d tasks stored, %d objects intact, %.0f MiB", openWhenKilled.Load(), rep.Stored, rep.Tasks, rep.Objects, float64(rep.BytesCopied)/(1<<20)), nil
		},
	}
}

// proxied is a short load of 30 tasks named name, with a proxy before
// every emulator that injects nothing until the scenario says so.
func proxied(name string) Scenario {
	return Scenario{Name: name, Faults: &faults.Rates{}, Visibility: 3 * time.Second, Options: Small(30)}
}

// sqsDown takes SQS away for 0.7 s in the middle of a load.
func sqsDown() Scenario {
	sc := proxied("SQS unavailable for a while makes callbacks answer 503, and the platform's retries complete them")
	sc.During = func(ctx context.Context, s *stack.Stack, _ *platform.Client) {
		s.Proxies.SQS.SetDown(true)
		select {
		case <-time.After(700 * time.Millisecond):
		case <-ctx.Done():
		}
		s.Proxies.SQS.SetDown(false)
	}
	sc.Check = func(rep *Report, _ *stack.Stack, _ *platform.Files) (string, error) {
		if rep.Retries == 0 || rep.GaveUp != 0 {
			return "", fmt.Errorf("want 503s retried to completion: retries %d, given up %d", rep.Retries, rep.GaveUp)
		}
		return fmt.Sprintf("SQS down 0.7 s: %d answers other than 200 retried, %d given up; lost %d", rep.Retries, rep.GaveUp, rep.Lost), nil
	}
	return sc
}

// dynamoThrottled throttles 30 % of DynamoDB requests.
func dynamoThrottled() Scenario {
	sc := proxied("DynamoDB throttling keeps every answer inside the platform's 15 s")
	sc.Setup = func(s *stack.Stack) { s.Proxies.DynamoDB.SetRates(faults.Rates{Throttle: 0.3}) }
	sc.Check = func(rep *Report, s *stack.Stack, _ *platform.Files) (string, error) {
		throttled := s.Proxies.DynamoDB.Injected.Load()
		if throttled == 0 {
			return "", errors.New("nothing was throttled")
		}
		if rep.MaxLatency() >= 15*time.Second {
			return "", fmt.Errorf("slowest answer %v: the platform waits 15 s", rep.MaxLatency())
		}
		return fmt.Sprintf("30%% of DynamoDB requests throttled (%d); slowest answer %v of the platform's 15 s; lost %d", throttled, ms(rep.MaxLatency()), rep.Lost), nil
	}
	return sc
}

// Run starts a stack from opts with the scenario's faults, drives and audits
// it, and returns the report and the outcome's line. The error says what
// failed: the run, the audit, or the scenario's own check; the report is
// there whenever the load ran. The copier's timeout is 20 s unless opts sets
// one.
func (sc Scenario) Run(ctx context.Context, opts stack.Options) (*Report, string, error) {
	opts.Faults = sc.Faults
	if opts.CopierTimeout == 0 {
		opts.CopierTimeout = 20 * time.Second
	}
	opts.Emulators.VisibilityTimeout = sc.Visibility
	opts.Emulators.MaxReceiveCount = 5
	o := sc.Options
	if opts.Notify == nil {
		// The application's endpoint, refusing as often as the source fails.
		o.Forwarded = forward.NewReceiver(sc.SourceFaults)
		defer o.Forwarded.Close()
		opts.Notify = &o.Forwarded.Target
	}
	if sc.Configure != nil {
		sc.Configure(&opts)
	}
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return nil, "", err
	}
	defer s.Close()
	files := platform.ServeFiles()
	defer files.Close()
	files.SetFaults(sc.SourceFaults)
	if sc.Setup != nil {
		sc.Setup(s)
	}
	if sc.During != nil {
		o.During = func(ctx context.Context, c *platform.Client) { sc.During(ctx, s, c) }
	}
	rep, err := Run(ctx, s, files, o)
	if err != nil {
		return rep, "", err
	}
	if p := rep.Problems(); len(p) > 0 {
		return rep, "", fmt.Errorf("audit failed: %s", strings.Join(p, "; "))
	}
	if sc.Check == nil {
		return rep, "", nil
	}
	line, err := sc.Check(rep, s, files)
	return rep, line, err
}

// keyRotation rotates the webhook key in the middle of a load, in the
// runbook's order (docs/operations.md, Rotation), with warm callback
// sandboxes that read the key from its secret: no callback may be refused,
// none lost.
func keyRotation() Scenario {
	const (
		secretName = "kiehook/webhook-key"
		oldKey     = "kiehook-old-key"
		newKey     = "kiehook-new-key"
		refresh    = time.Second // SECRET_REFRESH
	)
	var rotated, removed atomic.Bool
	var sentBeforeRemoval atomic.Int64
	var client atomic.Pointer[platform.Client]
	opts := Small(300)
	opts.Concurrency = 4
	return Scenario{
		Name:       "rotating the webhook key mid-load in the runbook's order refuses no callback and loses nothing",
		Visibility: 3 * time.Second,
		Options:    opts,
		Configure: func(o *stack.Options) {
			o.CallbackInstances = 3
			o.Secrets = map[string]string{secretName: oldKey}
			o.Callback = map[string]string{"WEBHOOK_HMAC_KEY": "", "WEBHOOK_HMAC_KEY_SECRET": secretName, "SECRET_REFRESH": refresh.String()}
		},
		Setup: func(s *stack.Stack) { s.Key = oldKey },
		During: func(ctx context.Context, s *stack.Stack, platform *platform.Client) {
			client.Store(platform)
			wait := func(d time.Duration) bool {
				select {
				case <-time.After(d):
					return true
				case <-ctx.Done():
					return false
				}
			}
			// 1. The owner adds the new key next to the old one.
			if !wait(200 * time.Millisecond) {
				return
			}
			s.Env.SetSecret(secretName, oldKey+", "+newKey)
			// 2. Once every sandbox has read it (SECRET_REFRESH), the
			// platform is switched to the new key.
			if !wait(refresh + 300*time.Millisecond) {
				return
			}
			platform.Rotate(newKey)
			rotated.Store(true)
			// 3. After the platform's retry window, the old key goes.
			if !wait(4 * opts.Backoff) {
				return
			}
			sentBeforeRemoval.Store(platform.SentSinceRotation())
			s.Env.SetSecret(secretName, newKey)
			removed.Store(true)
		},
		Check: func(rep *Report, s *stack.Stack, _ *platform.Files) (string, error) {
			sentAfterRemoval := client.Load().SentSinceRotation() - sentBeforeRemoval.Load()
			if !removed.Load() || sentAfterRemoval == 0 {
				return "", fmt.Errorf("the load ended before the runbook did (rotated: %v, old key removed: %v)", rotated.Load(), removed.Load())
			}
			if rep.Retries != 0 || rep.FinalNon200 != 0 || rep.GaveUp != 0 {
				return "", fmt.Errorf("callbacks were refused: %d retries, %d final answers other than 200, %d given up", rep.Retries, rep.FinalNon200, rep.GaveUp)
			}
			return fmt.Sprintf("key rotated mid-load: %d callbacks signed with the new key while both were held, %d after the old one was removed; %d secret reads by 3 warm sandboxes; retries %d, lost %d",
				sentBeforeRemoval.Load(), sentAfterRemoval, s.Env.SecretReads.Load(), rep.Retries, rep.Lost), nil
		},
	}
}

// killedBeforeTheEvent kills the copier after it marked a task stored and
// before the bus took the task's event: the event must still arrive, by the
// message's redelivery or the reconciler's sweep, and the audit checks that
// every ended task has its event.
func killedBeforeTheEvent() Scenario {
	var killed atomic.Int32
	var victim atomic.Value
	opts := Small(8)
	opts.Duplicates, opts.Failures, opts.FailThenWin = 0, 0, 0
	return Scenario{
		Name:       "a copier killed between marking a task stored and its event still delivers the event",
		Faults:     &faults.Rates{},
		Visibility: 3 * time.Second,
		Options:    opts,
		During: func(ctx context.Context, s *stack.Stack, _ *platform.Client) {
			// Every PutEvents hangs, so a stored task waits for its event.
			s.Proxies.EventBridge.SetRates(faults.Rates{Latency: 1, Delay: 5 * time.Second})
			defer s.Proxies.EventBridge.SetRates(faults.Rates{})
			for killed.Load() == 0 && ctx.Err() == nil {
				tasks, _ := s.Tasks(ctx)
				for _, t := range tasks {
					if t.Status == "stored" && t.NotifiedAt == "" {
						victim.Store(t.TaskID)
						killed.Store(int32(s.KillCopier()))
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		},
		Check: func(rep *Report, _ *stack.Stack, _ *platform.Files) (string, error) {
			if killed.Load() == 0 {
				return "", errors.New("the copier was never killed between a stored task and its event")
			}
			return fmt.Sprintf("copier killed after storing %s, before its event; %d tasks stored, %d events, none missing", victim.Load(), rep.Stored, rep.Events), nil
		},
	}
}

// recordedUpload reports whether a task records a multipart upload in
// progress.
func recordedUpload(ctx context.Context, s *stack.Stack) bool {
	tasks, _ := s.Tasks(ctx)
	for _, t := range tasks {
		if len(t.Uploads) > 0 {
			return true
		}
	}
	return false
}

// backlog holds the copy queue back for longer than every delivery of a
// message would take (maxReceiveCount x the visibility timeout), as a
// throttled copier or a queue that backs up does: a copy that waited is
// not a copy that failed, so none may be given up.
func backlog() Scenario {
	const (
		visibility = 2 * time.Second
		held       = 2 * 5 * visibility // twice what maxReceiveCount (5) deliveries take
	)
	var waited atomic.Int64
	opts := Small(30)
	opts.Failures, opts.FailThenWin = 0, 0
	opts.Wait = held + 60*time.Second
	return Scenario{
		Name:       "a backlog longer than every delivery would take gives no copy up",
		Visibility: visibility,
		Options:    opts,
		Configure: func(o *stack.Options) {
			// The reconciler looks at every queued copy within seconds.
			o.Reconciler = map[string]string{"QUEUED_ALERT_AFTER": "1s"}
		},
		Setup: func(s *stack.Stack) { s.PauseCopies() },
		During: func(ctx context.Context, s *stack.Stack, _ *platform.Client) {
			start := time.Now()
			select {
			case <-time.After(held):
			case <-ctx.Done():
			}
			waited.Store(int64(time.Since(start)))
			s.ResumeCopies()
		},
		Check: func(rep *Report, _ *stack.Stack, _ *platform.Files) (string, error) {
			accepted := rep.Planned.Success + rep.Planned.FailThenWin - rep.NeverAccepted
			if rep.CopyFailed != 0 || rep.InDLQ != 0 || rep.Stored != accepted {
				return "", fmt.Errorf("%d accepted successes: %d stored, %d copy_failed, %d in the DLQ", accepted, rep.Stored, rep.CopyFailed, rep.InDLQ)
			}
			return fmt.Sprintf("copies held back %v (every delivery of a message would take %v): %d of %d stored, none given up; lost %d",
				time.Duration(waited.Load()).Round(time.Second), 5*visibility, rep.Stored, accepted, rep.Lost), nil
		},
	}
}

// queueRefused has SQS refuse every request, every SendMessage among them,
// for longer than the platform retries a callback: the callbacks of that
// stretch write their records queued, with no message, and are never
// answered 200. The reconciler must send those messages itself (its resend
// of a queued task whose copy never started), so that every task ends with
// no operator's command.
func queueRefused(tasks int) Scenario {
	// The load's platform retries a refused callback 3 times, Backoff apart,
	// each attempt refused within some 0.2 s while SQS is down: 8 s outlasts
	// a callback's every attempt several times over.
	const outage = 8 * time.Second
	var refusedFor atomic.Int64
	opts := Small(tasks)
	opts.Wait = 5 * time.Minute
	sc := proxied("the copy queue refusing every send for longer than the platform retries strands no task: the reconciler sends the messages the callbacks could not")
	sc.Options = opts
	sc.Configure = func(o *stack.Options) {
		// A queued task whose copy never started is sent again 2 s after
		// its last callback, and again only after 30 s, so that a task
		// waiting in the copy backlog is not sent every second.
		o.Reconciler = map[string]string{"STUCK_RECEIVED_AFTER": "2s", "QUEUED_ALERT_AFTER": "30s"}
	}
	sc.During = func(ctx context.Context, s *stack.Stack, client *platform.Client) {
		// Mid-load: once a quarter of the tasks' callbacks have gone.
		for client.SentSinceRotation() < int64(tasks/4) {
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return
			}
		}
		start := time.Now()
		s.Proxies.SQS.SetDown(true)
		select {
		case <-time.After(outage):
		case <-ctx.Done():
		}
		s.Proxies.SQS.SetDown(false)
		refusedFor.Store(int64(time.Since(start)))
	}
	sc.Check = func(rep *Report, _ *stack.Stack, _ *platform.Files) (string, error) {
		if rep.GaveUp == 0 || rep.StoredUnanswered == 0 || rep.Resent == 0 {
			return "", fmt.Errorf("want callbacks given up by the platform and their tasks stored by the reconciler's resend: %d given up, %d stored though never answered 200, %d sent again", rep.GaveUp, rep.StoredUnanswered, rep.Resent)
		}
		return fmt.Sprintf("SQS refused every request for %v: %d callbacks given up by the platform, %d tasks stored though never answered 200 (their records written queued, with no message), %d tasks sent again by the reconciler; %s",
			time.Duration(refusedFor.Load()).Round(100*time.Millisecond), rep.GaveUp, rep.StoredUnanswered, rep.Resent, rep.tableCounts()), nil
	}
	return sc
}

// reconcilerRace runs the reconciler every second while copies fail and
// are delivered again: a visibility timeout shorter than a stalled copy,
// source faults that make some messages use up their deliveries, and
// twins (duplicate callbacks, batches that carry a message twice, the
// reconciler's own resends of copies waiting in the backlog) in flight
// while it gives their tasks up.
func reconcilerRace(tasks int) Scenario {
	// Few deliveries a message, so that even a short load gives copies up.
	const deliveries = 2
	faultRates := faults.Rates{Duplicate: 0.05}
	opts := Small(tasks)
	opts.Wait = 15 * time.Minute // the source's stalls hold the one copier: some 5 tasks a second
	opts.StoredDeadLetters = true
	return Scenario{
		Name:         "the reconciler giving copies up every second while their twins are delivered strands nothing and leaves nothing unnamed",
		Faults:       &faultRates,
		SourceFaults: 0.05,
		Visibility:   time.Second, // a copy the source stalls takes over 2 s
		Options:      opts,
		Configure: func(o *stack.Options) {
			o.ReconcileEvery = time.Second
			o.Emulators.MaxReceiveCount = deliveries
			// Copies waiting in the backlog are sent again after 2 s: twins.
			o.Reconciler = map[string]string{"STUCK_RECEIVED_AFTER": "2s", "QUEUED_ALERT_AFTER": "30s"}
		},
		Check: func(rep *Report, _ *stack.Stack, _ *platform.Files) (string, error) {
			if rep.CopiesGivenUp == 0 || rep.Resent == 0 {
				return "", fmt.Errorf("want copies given up and copies sent again: %d given up, %d sent again", rep.CopiesGivenUp, rep.Resent)
			}
			return fmt.Sprintf("%d tasks' messages used up their %d deliveries: %d tasks given up by the reconciler, %d stored all the same; %d tasks sent again by the reconciler; %s",
				rep.DLQ, deliveries, rep.CopiesGivenUp, rep.DeadLettersOfStored, rep.Resent, rep.tableCounts()), nil
		},
	}
}
