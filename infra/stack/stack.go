// Package stack runs kiehook locally on real wire protocols: the in-process
// DynamoDB, SQS, S3, Secrets Manager and EventBridge emulators with the
// template's resources, the four functions built as bootstrap binaries and
// run under the Runtime Interface Emulator (as `sam local invoke` does), an
// HTTP front that plays the Function URL, a poller that plays the SQS event
// source mapping, and a clock that plays the reconciler's schedule.
//
// It never imports functions/: it builds and runs them as Lambda would.
package stack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/esm"
	"github.com/kiehook/kiehook/infra/faults"
	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/platform"
)

// Options configure a Stack. Zero values take the defaults.
type Options struct {
	// Addr is the HTTP front; default 127.0.0.1:3000.
	Addr string
	// ReaderAddr is the reader's own Function URL; default the front's
	// port plus one (a free port when the front's is 0).
	ReaderAddr string
	// Dir holds the functions' logs, and the binaries when the stack
	// builds them; default .kiehook/ at the module root (or the folder of
	// the Binaries given).
	Dir string
	// Binaries, when set, are the functions already built (Build): the
	// stack starts without building.
	Binaries *Binaries
	// Emulators names the resources and fixes the emulators' addresses.
	Emulators emulators.Options
	// CallbackInstances is how many callback emulators serve the front at
	// once (each serves one invocation at a time, as a Lambda sandbox does).
	CallbackInstances int
	// CopierTimeout is the copier's Lambda timeout; default 60 s. The queue's
	// visibility timeout is six times it unless Emulators sets one.
	CopierTimeout time.Duration
	// CopierBatchSize is the event source mapping's batch size; default 4.
	CopierBatchSize int32
	// ReconcileEvery is how often the reconciler runs; default 1 s (a
	// minute when deployed). Its event sweep takes tasks ended 2 s ago.
	ReconcileEvery time.Duration
	// Callback, Copier and Reconciler are extra environment variables of
	// each function, over the ones the stack sets (the emulators' endpoints
	// and resources) and events/env.json's key, token and signature
	// tolerance.
	Callback, Copier, Reconciler map[string]string
	// Log hears the stack's own problems; default os.Stderr.
	Log io.Writer
	// Faults, when set, puts a faulty proxy before each emulator; the
	// functions reach DynamoDB, SQS, S3 and EventBridge through them.
	Faults *faults.Rates
	// Secrets are Secrets Manager's secrets, by name, from before the
	// functions start (a webhook key read through WEBHOOK_HMAC_KEY_SECRET).
	Secrets map[string]string
	// FilesAddr, when set, is where the stack serves generated-looking
	// result files (platform.Files), as the platform's CDN would.
	FilesAddr string
	// Notify, when set, receives every task event's detail, as the
	// template's NotifyUrl does when deployed.
	Notify *forward.Target
	// Baseline also runs the hello-world handler behind a Function URL of
	// its own (BaselineURL), for benchmarks to divide by.
	Baseline bool
	// Poll, when set, makes the queues' pollers look every Poll rather than
	// long-poll, so that a message reaches its function at once, as AWS's
	// long poll hands it over (esm.Poller.Poll).
	Poll time.Duration
	// Submissions also runs submit behind a Function URL of its own
	// (SubmitURL), the submitters fed by the submit queue, and the
	// platform's task API they call (Platform), whose tasks finish after
	// PlatformDelay (default 100 ms) and call back through the front with
	// results from the file server.
	Submissions bool
	// SubmitAddr is submit's Function URL; default the front's port plus
	// two (a free port when the front's is 0).
	SubmitAddr string
	// PlatformAddr is where the platform's task API listens; default a
	// free port.
	PlatformAddr  string
	PlatformDelay time.Duration
	// Submit and Submitter are extra environment variables of each, as
	// Callback's are (SUBMIT_RATE, SUBMIT_WINDOW, …).
	Submit, Submitter map[string]string
}

// SamLocal are the options of the stack that events/env.json names: its
// resources and its ports, so that `sam local invoke` reaches it.
func SamLocal() Options {
	return Options{
		Emulators: emulators.Options{
			Table: "kiehook-tasks", Queue: "kiehook-copy", DLQ: "kiehook-copy-dlq", Bucket: "kiehook-objects",
			SubmitQueue: "kiehook-submit", SubmitDLQ: "kiehook-submit-dlq",
			DynamoDBAddr: "127.0.0.1:4569", SQSAddr: "127.0.0.1:4576", S3Addr: "127.0.0.1:4572", JSONAddr: "127.0.0.1:4583",
		},
		FilesAddr:    "127.0.0.1:4590",
		Submissions:  true,
		PlatformAddr: "127.0.0.1:4591",
	}
}

// Stack is the running system.
type Stack struct {
	Env         *emulators.Env
	URL         string // the HTTP front
	CallbackURL string // the URL to give the platform, with the token
	Token, Key  string // what the platform must send
	ReaderURL   string // the reader's Function URL
	ReadToken   string // the reader's bearer token
	BaselineURL string // the hello-world handler's Function URL, with Options.Baseline
	// With Options.Submissions: submit's Function URL and bearer token,
	// and the platform's task API with the key it accepts.
	SubmitURL, SubmitToken string
	Platform               *platform.API
	APIKey                 string
	// Files serves result files at Options.FilesAddr; nil without one.
	Files *platform.Files

	// Forwarder forwards the task events to Options.Notify; nil without.
	Forwarder *forward.Forwarder

	// Proxies are the faulty proxies before DynamoDB, SQS, S3 and
	// EventBridge, when Options.Faults is set.
	Proxies struct{ DynamoDB, SQS, S3, EventBridge *faults.Proxy }

	callbacks chan *function
	readers   chan *function
	baseline  chan *function
	submits   chan *function
	// urlEnvs are the environments of the Function URL handlers ColdStart
	// starts afresh, by function name.
	urlEnvs    map[string]map[string]string
	submitters []*function
	// handedAt is when each task's copy message was first handed to the
	// copier.
	handedMu sync.Mutex
	handedAt map[string]time.Time
	// submitPollers feed the submitters.
	submitPollers []*esm.Poller
	vars          map[string]string // every function's: the emulators' (or their proxies') endpoints and resources
	poller        *esm.Poller
	copier        *function
	reconciler    *function
	functions     []*function
	servers       []*http.Server
	cancel        context.CancelFunc
	dir           string
	bins          *Binaries
	wg            sync.WaitGroup
	log           io.Writer
}

// Start builds and starts everything; Close stops it.
func Start(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:3000"
	}
	if opts.CallbackInstances == 0 {
		opts.CallbackInstances = 2
	}
	if opts.CopierTimeout == 0 {
		opts.CopierTimeout = 60 * time.Second
	}
	if opts.Emulators.VisibilityTimeout == 0 {
		opts.Emulators.VisibilityTimeout = 6 * opts.CopierTimeout
	}
	if opts.CopierBatchSize == 0 {
		opts.CopierBatchSize = 4
	}
	if opts.ReconcileEvery == 0 {
		opts.ReconcileEvery = time.Second
	}
	if opts.Log == nil {
		opts.Log = os.Stderr
	}
	local, err := sample.LocalVars("CallbackFunction")
	if err != nil {
		return nil, err
	}

	// Build while the emulators start, unless the caller built already.
	bins, buildErr := opts.Binaries, error(nil)
	var builds sync.WaitGroup
	if bins == nil {
		if opts.Dir == "" {
			root, err := moduleRoot(ctx)
			if err != nil {
				return nil, err
			}
			opts.Dir = filepath.Join(root, ".kiehook")
		}
		builds.Go(func() { bins, buildErr = Build(ctx, opts.Dir) })
	} else if opts.Dir == "" {
		opts.Dir = filepath.Dir(filepath.Dir(bins.Bootstrap["callback"]))
	}
	env, err := emulators.Start(ctx, opts.Emulators)
	builds.Wait()
	if err != nil {
		return nil, err
	}
	for name, value := range opts.Secrets {
		env.SetSecret(name, value)
	}
	s := &Stack{Env: env, log: opts.Log, Token: local["CALLBACK_TOKEN"], Key: local["WEBHOOK_HMAC_KEY"], dir: opts.Dir, bins: bins}
	if buildErr != nil {
		s.Close()
		return nil, buildErr
	}
	if opts.FilesAddr != "" || opts.Submissions {
		if s.Files, err = platform.ServeFilesAt(opts.FilesAddr); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.startFunctions(ctx, opts, local); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.serve(opts); err != nil {
		s.Close()
		return nil, err
	}
	pollCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	if opts.Submissions {
		if err := s.startSubmissions(ctx, pollCtx, opts); err != nil {
			s.Close()
			return nil, err
		}
	}
	s.poller = &esm.Poller{
		SQS: env.SQS, QueueURL: env.QueueURL, Region: emulators.Region, BatchSize: opts.CopierBatchSize,
		QueueARN: "arn:aws:sqs:" + emulators.Region + ":000000000000:" + env.QueueName,
		Invoke:   invokeSQS(s.copier),
		OnError:  func(err error) { fmt.Fprintf(s.log, "copier poller: %v\n", err) },
	}
	if opts.Faults != nil {
		s.poller.Duplicates = opts.Faults.Duplicate
	}
	s.poller.Poll, s.poller.Handed = opts.Poll, s.handed
	s.wg.Go(func() { s.poller.Run(pollCtx) })
	if opts.Notify != nil {
		s.Forwarder = &forward.Forwarder{Target: *opts.Notify}
		s.wg.Go(func() { s.Forwarder.Run(pollCtx, s.busEvents) })
	}
	s.wg.Go(func() { s.schedule(pollCtx, opts.ReconcileEvery) })
	return s, nil
}

// busEvents are the events the bus took, for the forwarder.
func (s *Stack) busEvents() []forward.Event {
	var out []forward.Event
	for _, ev := range s.Env.Events() {
		out = append(out, forward.Event{DetailType: ev.DetailType, Detail: ev.Detail})
	}
	return out
}

// PauseCopies holds the copy queue's messages back from the copier, as a
// throttled event source mapping or a backlog does, until ResumeCopies.
func (s *Stack) PauseCopies() { s.poller.Pause() }

// ResumeCopies delivers the copy queue's messages again.
func (s *Stack) ResumeCopies() { s.poller.Resume() }

// schedule runs the reconciler every period, as its one-minute schedule
// does when deployed.
func (s *Stack) schedule(ctx context.Context, period time.Duration) {
	event, err := sample.Files.ReadFile("reconciler-schedule.json")
	if err != nil {
		fmt.Fprintf(s.log, "reconciler: %v\n", err)
		return
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, err := s.reconciler.invoke(ctx, newID(), event); err != nil && ctx.Err() == nil {
			fmt.Fprintf(s.log, "reconciler: %v\n", err)
		}
	}
}

func (s *Stack) startFunctions(ctx context.Context, opts Options, local map[string]string) error {
	rie, bins := s.bins.RIE, s.bins.Bootstrap
	if err := os.MkdirAll(filepath.Join(opts.Dir, "logs"), 0o755); err != nil {
		return err
	}
	common := s.Env.Vars()
	if opts.Faults != nil {
		if err := s.startProxies(*opts.Faults, common); err != nil {
			return err
		}
	}
	s.vars = common
	if opts.Submissions {
		s.submits = make(chan *function, 1)
	}
	callbackEnv := merge(common, map[string]string{
		"WEBHOOK_HMAC_KEY":    local["WEBHOOK_HMAC_KEY"],
		"CALLBACK_TOKEN":      local["CALLBACK_TOKEN"],
		"SIGNATURE_TOLERANCE": local["SIGNATURE_TOLERANCE"],
	}, opts.Callback)
	copierEnv := merge(common, map[string]string{
		"ALLOW_PRIVATE_SOURCES": "true",
		"SOURCE_HOSTS":          "127.0.0.1,localhost",
	}, opts.Copier)
	s.urlEnvs = map[string]map[string]string{"CallbackFunction": callbackEnv, "HelloFunction": common}
	s.callbacks = make(chan *function, opts.CallbackInstances)
	for i := range opts.CallbackInstances {
		log, err := logFile(opts.Dir, fmt.Sprintf("callback-%d.log", i))
		if err != nil {
			return err
		}
		f, err := startFunction(ctx, rie, bins["callback"], "CallbackFunction", callbackEnv, 12*time.Second, log)
		if err != nil {
			return err
		}
		s.functions = append(s.functions, f)
		s.callbacks <- f
	}
	log, err := logFile(opts.Dir, "copier.log")
	if err != nil {
		return err
	}
	s.copier, err = startFunction(ctx, rie, bins["copier"], "CopierFunction", copierEnv, opts.CopierTimeout, log)
	if err != nil {
		return err
	}
	s.functions = append(s.functions, s.copier)
	if log, err = logFile(opts.Dir, "reconciler.log"); err != nil {
		return err
	}
	// No API key: nothing is polled. The sweep puts, within seconds, the
	// events of tasks whose function died before putting them.
	reconcilerEnv := merge(common, map[string]string{
		"NOTIFY_SWEEP_AFTER":    "2s",
		"DEAD_LETTER_QUEUE_URL": s.Env.DLQURL,
	}, opts.Reconciler)
	s.reconciler, err = startFunction(ctx, rie, bins["reconciler"], "ReconcilerFunction", reconcilerEnv, 60*time.Second, log)
	if err != nil {
		return err
	}
	s.functions = append(s.functions, s.reconciler)
	readerVars, err := sample.LocalVars("ReaderFunction")
	if err != nil {
		return err
	}
	s.ReadToken = readerVars["READ_TOKEN"]
	if log, err = logFile(opts.Dir, "reader.log"); err != nil {
		return err
	}
	reader, err := startFunction(ctx, rie, bins["reader"], "ReaderFunction", merge(common, map[string]string{"READ_TOKEN": s.ReadToken}), 10*time.Second, log)
	if err != nil {
		return err
	}
	s.functions = append(s.functions, reader)
	s.readers = make(chan *function, 1)
	s.readers <- reader
	if !opts.Baseline {
		return nil
	}
	if log, err = logFile(opts.Dir, "hello.log"); err != nil {
		return err
	}
	hello, err := startFunction(ctx, rie, bins[Baseline], "HelloFunction", common, 10*time.Second, log)
	if err != nil {
		return err
	}
	s.functions = append(s.functions, hello)
	s.baseline = make(chan *function, 1)
	s.baseline <- hello
	return nil
}

// startProxies puts a faulty proxy before each emulator and points vars
// at them.
func (s *Stack) startProxies(rates faults.Rates, vars map[string]string) error {
	for _, p := range []struct {
		proxy   **faults.Proxy
		service faults.Service
		target  string
		env     string
	}{
		{&s.Proxies.DynamoDB, faults.DynamoDB, s.Env.DynamoDBURL, "AWS_ENDPOINT_URL_DYNAMODB"},
		{&s.Proxies.SQS, faults.SQS, s.Env.SQSURL, "AWS_ENDPOINT_URL_SQS"},
		{&s.Proxies.S3, faults.S3, s.Env.S3URL, "AWS_ENDPOINT_URL_S3"},
		{&s.Proxies.EventBridge, faults.EventBridge, s.Env.JSONURL, "AWS_ENDPOINT_URL_EVENTBRIDGE"},
	} {
		proxy, err := faults.New(p.service, p.target, rates)
		if err != nil {
			return err
		}
		*p.proxy = proxy
		vars[p.env] = proxy.URL
	}
	return nil
}

func logFile(dir, name string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "logs", name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func (s *Stack) serve(opts Options) error {
	front, err := s.listen(opts.Addr, s.routes())
	if err != nil {
		return fmt.Errorf("HTTP front: %w", err)
	}
	s.URL = "http://" + front
	s.CallbackURL = s.URL + "/?token=" + s.Token
	if opts.ReaderAddr == "" {
		opts.ReaderAddr = nextPort(opts.Addr, front, 1)
	}
	reader, err := s.listen(opts.ReaderAddr, s.functionURL(s.readers))
	if err != nil {
		return fmt.Errorf("reader's Function URL: %w", err)
	}
	s.ReaderURL = "http://" + reader
	if s.submits != nil {
		submit, err := s.listen(submitAddr(opts, front), s.functionURL(s.submits))
		if err != nil {
			return fmt.Errorf("submit's Function URL: %w", err)
		}
		s.SubmitURL = "http://" + submit
	}
	if s.baseline != nil {
		host, _, _ := net.SplitHostPort(front)
		hello, err := s.listen(net.JoinHostPort(host, "0"), s.functionURL(s.baseline))
		if err != nil {
			return fmt.Errorf("baseline's Function URL: %w", err)
		}
		s.BaselineURL = "http://" + hello
	}
	return nil
}

// listen serves h at addr and returns the address it listens at.
func (s *Stack) listen(addr string, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	s.wg.Go(func() { srv.Serve(l) })
	return l.Addr().String(), nil
}

// Close stops the front, the poller, the functions and the emulators.
func (s *Stack) Close() {
	for _, srv := range s.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}
	if s.cancel != nil {
		s.cancel()
	}
	if s.Platform != nil {
		s.Platform.Close()
	}
	s.wg.Wait()
	for _, f := range s.functions {
		f.stop()
	}
	for _, p := range []*faults.Proxy{s.Proxies.DynamoDB, s.Proxies.SQS, s.Proxies.S3, s.Proxies.EventBridge} {
		if p != nil {
			p.Close()
		}
	}
	if s.Files != nil {
		s.Files.Close()
	}
	s.Env.Close()
}

// Run runs function (CallbackFunction, CopierFunction, ReconcilerFunction)
// once on event, in a fresh Runtime Interface Emulator with exactly env
// besides Lambda's own runtime variables, as `sam local invoke` does, and
// returns the function's answer.
func (s *Stack) Run(ctx context.Context, function string, env map[string]string, event []byte) ([]byte, error) {
	bin, ok := s.bins.Bootstrap[strings.ToLower(strings.TrimSuffix(function, "Function"))]
	if !ok {
		return nil, fmt.Errorf("no function %s", function)
	}
	log, err := logFile(s.dir, "sam-local-"+function+".log")
	if err != nil {
		return nil, err
	}
	defer log.Close()
	f, err := startFunction(ctx, s.bins.RIE, bin, function, env, 60*time.Second, log)
	if err != nil {
		return nil, err
	}
	defer f.stop()
	return f.invoke(ctx, newID(), event)
}

// Invoke runs a function of the stack on a raw event, as `sam local invoke
// -e` does: CallbackFunction, CopierFunction, and with Options.Submissions
// SubmitFunction and SubmitterFunction.
func (s *Stack) Invoke(ctx context.Context, function string, event []byte) ([]byte, error) {
	switch function {
	case "CallbackFunction":
		f := <-s.callbacks
		defer func() { s.callbacks <- f }()
		return f.invoke(ctx, newID(), event)
	case "CopierFunction":
		return s.copier.invoke(ctx, newID(), event)
	case "SubmitFunction", "SubmitterFunction":
		if s.submits == nil {
			return nil, fmt.Errorf("%s runs only with Options.Submissions", function)
		}
		if function == "SubmitterFunction" {
			return s.submitters[0].invoke(ctx, newID(), event)
		}
		f := <-s.submits
		defer func() { s.submits <- f }()
		return f.invoke(ctx, newID(), event)
	}
	return nil, fmt.Errorf("no function %s", function)
}
