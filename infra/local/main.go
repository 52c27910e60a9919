// Command local runs kiehook on this machine, on real wire protocols:
//
//	go run ./infra/local          # the stack, until Ctrl-C
//	go run ./infra/local -demo    # and play the platform once through it
//
// DynamoDB, SQS, S3, EventBridge and Secrets Manager run in-process
// (127.0.0.1:4569, :4576, :4572, :4583) beside a result file server
// (:4590) and the platform's task API (:4591); the six functions are built
// and run under the Runtime Interface Emulator; the callback URL is an
// HTTP front on 127.0.0.1:3000, the reader's on :3001, submit's on :3002.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:3000", "address of the HTTP front (the Function URL)")
	dir := flag.String("dir", "", "folder for the built binaries and the functions' logs (default .kiehook/ at the module root)")
	demo := flag.Bool("demo", false, "play the platform: send every API's callbacks, signed, with a duplicate and a failure, then submit a task of every API through kiehook, and print the tasks")
	loadRun := flag.Bool("load", false, "drive the stack like a busy platform, audit the outcome, write a report and a latency chart, and exit")
	var lo load.Options
	flag.IntVar(&lo.Tasks, "n", 2000, "with -load: tasks")
	flag.IntVar(&lo.Concurrency, "concurrency", 32, "with -load: deliveries in flight")
	flag.Float64Var(&lo.Duplicates, "dup", 0.1, "with -load: share of tasks delivered twice (half at once, half late)")
	flag.Float64Var(&lo.Failures, "fail", 0.05, "with -load: share of tasks that fail (400, 500, 501)")
	flag.Float64Var(&lo.FailThenWin, "fail-then-win", 0.02, "with -load: share of tasks that fail, then succeed")
	flag.IntVar(&lo.BigVideos, "big-videos", -1, "with -load: videos of 100 MiB or more (default n/500)")
	flag.Int64Var(&lo.MaxFile, "max-file", 0, "with -load: cap on the other files' size in bytes (0: realistic sizes up to 20 MiB)")
	var so load.SubmitOptions
	flag.IntVar(&so.Submissions, "submissions", 0, "submit this many keys, each twice, from 20 clients through kiehook while the platform makes 20 tasks a second and loses 5% of its answers, audit the outcome from the platform's log, print the report, and exit")
	flag.IntVar(&so.Direct, "direct", 0, "with -submissions: creates a window the application makes itself with the same API key, sharing the platform's limit")
	flag.DurationVar(&so.Window, "submit-window", time.Second, "with -submissions: the platform's window of 20 creates, scaled from its 10s so that a run takes minutes; SUBMIT_WINDOW follows it")
	faultRate := flag.Float64("faults", 0, "with -load: share of requests to DynamoDB, SQS, S3, EventBridge and the file source (503, reset, stall, cut off halfway) that meet each fault, and of copy batches that deliver a message twice")
	scenarios := flag.Bool("scenarios", false, "run each fault scenario (a key rotation, killed copiers, a backlog, 5% faults everywhere, SQS down, DynamoDB throttling, and over 2,000 tasks SQS refusing sends and the reconciler racing the copies) on a stack of its own, write scenarios.txt, and exit")
	reportDir := flag.String("report", "", "with -load or -scenarios: folder for the report (default .kiehook/load)")
	notify := flag.String("notify", "", "POST each task event's detail to this URL, as the template's NotifyUrl does (retried until taken)")
	notifyHeader := flag.String("notify-header", forward.DefaultHeader+": kiehook-local-notify", "with -notify: the header, name: value, that authenticates the calls")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The names and ports of events/env.json, so that `sam local invoke`
	// can reach this stack too.
	opts := stack.SamLocal()
	opts.Addr, opts.Dir = *addr, *dir
	if *notify != "" {
		name, value, ok := strings.Cut(*notifyHeader, ":")
		if !ok {
			fmt.Fprintln(os.Stderr, "kiehook local: -notify-header must be name: value")
			os.Exit(2)
		}
		opts.Notify = &forward.Target{URL: *notify, Header: strings.TrimSpace(name), Value: strings.TrimSpace(value)}
	}
	if *scenarios {
		if err := runScenarios(ctx, os.Stdout, opts, load.Scenarios(), *reportDir); err != nil {
			fmt.Fprintln(os.Stderr, "kiehook scenarios:", err)
			os.Exit(1)
		}
		return
	}
	if so.Submissions > 0 {
		if err := runSubmissions(ctx, os.Stdout, opts, so); err != nil {
			fmt.Fprintln(os.Stderr, "kiehook submissions:", err)
			os.Exit(1)
		}
		return
	}
	if *loadRun {
		if lo.BigVideos < 0 {
			lo.BigVideos = lo.Tasks / 500
		}
		if err := runLoad(ctx, os.Stdout, opts, lo, *faultRate, *reportDir); err != nil {
			fmt.Fprintln(os.Stderr, "kiehook load:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(ctx, os.Stdout, opts, *demo); err != nil {
		fmt.Fprintln(os.Stderr, "kiehook local:", err)
		os.Exit(1)
	}
}

// run starts the stack, plays the demo if asked, and waits for ctx to end.
func run(ctx context.Context, out io.Writer, opts stack.Options, demo bool) error {
	p := progress.New(out, 0)
	p.Phase("building the functions and starting the emulators", nil)
	s, err := stack.Start(ctx, opts)
	p.Stop()
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, `
kiehook is running locally.

  callback URL   %s
  webhook key    %s   (sign X-Webhook-Signature with it)
  tasks          %s/_local/tasks
  objects        %s/_local/objects/<key>
  task events    %s/_local/events   (bus %s)
  DynamoDB       %s   table %s
  SQS            %s   queue %s, dead letters %s
  S3             %s   bucket %s (path-style)
  EventBridge    %s   and Secrets Manager, PutEvents and GetSecretValue only
  reader         %s/tasks/<taskId>   (Authorization: Bearer %s)
%s%s%s
Press Ctrl-C to stop.
`, s.CallbackURL, s.Key, s.URL, s.URL, s.URL, s.Env.Bus, s.Env.DynamoDBURL, s.Env.Table, s.Env.SQSURL, s.Env.QueueName, s.Env.DLQName, s.Env.S3URL, s.Env.Bucket, s.Env.JSONURL, s.ReaderURL, s.ReadToken, submitLines(s), filesLine(s), notifyLine(opts))
	if demo {
		if err := runDemo(ctx, s, out); err != nil {
			return err
		}
	}
	<-ctx.Done()
	fmt.Fprintln(out, "stopping…")
	return nil
}

// notifyLine says where the task events are forwarded, if they are.
func notifyLine(opts stack.Options) string {
	if opts.Notify == nil {
		return ""
	}
	return fmt.Sprintf("  forwarding     every task event's detail to %s   (%s: %s)\n", opts.Notify.URL, opts.Notify.Header, opts.Notify.Value)
}

// submitLines say where to submit tasks, and where the platform's task
// API that creates them listens, if the stack takes submissions.
func submitLines(s *stack.Stack) string {
	if s.SubmitURL == "" {
		return ""
	}
	return fmt.Sprintf("  submit         %s/submissions   (Authorization: Bearer %s, Idempotency-Key: <yours>)\n"+
		"  submissions    %s/_local/submissions   (queue %s, dead letters %s)\n"+
		"  platform API   %s   (key %s; the tasks it creates call back here)\n",
		s.SubmitURL, s.SubmitToken, s.URL, s.Env.SubmitQueueName, s.Env.SubmitDLQName, s.Platform.URL, s.APIKey)
}

// filesLine says where the stack serves result files, if it does.
func filesLine(s *stack.Stack) string {
	if s.Files == nil {
		return ""
	}
	return fmt.Sprintf("  result files   %s/<name>.<png|jpg|webp|mp4|mp3>   (the sample events' results)\n", s.Files.Server.URL)
}
