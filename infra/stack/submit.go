package stack

import (
	"context"
	"fmt"
	"net"
	"time"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/esm"
	"github.com/kiehook/kiehook/infra/platform"
)

// Submitters is how many submitters the submit queue feeds at once: the
// template's MaximumConcurrency.
const Submitters = 2

// startSubmissions runs what Options.Submissions asks for: the platform's
// task API, whose created tasks call back through the front; submit,
// whose sandbox pool the submit Function URL already serves; and the
// submitters, each fed the submit queue by a poller of its own, as the
// event source mapping feeds at most MaximumConcurrency of them.
func (s *Stack) startSubmissions(ctx context.Context, pollCtx context.Context, opts Options) error {
	submitVars, err := sample.LocalVars("SubmitFunction")
	if err != nil {
		return err
	}
	submitterVars, err := sample.LocalVars("SubmitterFunction")
	if err != nil {
		return err
	}
	s.SubmitToken, s.APIKey = submitVars["SUBMIT_TOKEN"], submitterVars["KIE_API_KEY"]
	if s.Platform, err = platform.ServeAPIAt(opts.PlatformAddr, s.APIKey); err != nil {
		return err
	}
	if opts.PlatformDelay == 0 {
		opts.PlatformDelay = 100 * time.Millisecond
	}
	s.Platform.Deliver(&platform.Client{Key: s.Key}, s.Files, opts.PlatformDelay)

	common := s.vars
	log, err := logFile(s.dir, "submit.log")
	if err != nil {
		return err
	}
	submit, err := startFunction(ctx, s.bins.RIE, s.bins.Bootstrap["submit"], "SubmitFunction", merge(common, map[string]string{"SUBMIT_TOKEN": s.SubmitToken}, opts.Submit), 10*time.Second, log)
	if err != nil {
		return err
	}
	s.functions = append(s.functions, submit)
	s.submits <- submit

	submitterEnv := merge(common, map[string]string{
		"KIE_API_KEY":      s.APIKey,
		"KIE_API_BASE_URL": s.Platform.URL,
		"CALLBACK_URL":     s.URL + "/",
		"CALLBACK_TOKEN":   s.Token,
	}, opts.Submitter)
	for i := range Submitters {
		log, err := logFile(s.dir, fmt.Sprintf("submitter-%d.log", i))
		if err != nil {
			return err
		}
		f, err := startFunction(ctx, s.bins.RIE, s.bins.Bootstrap["submitter"], "SubmitterFunction", submitterEnv, time.Minute, log)
		if err != nil {
			return err
		}
		s.functions, s.submitters = append(s.functions, f), append(s.submitters, f)
		p := &esm.Poller{
			SQS: s.Env.SQS, QueueURL: s.Env.SubmitQueueURL, Region: emulators.Region, BatchSize: 10,
			QueueARN: "arn:aws:sqs:" + emulators.Region + ":000000000000:" + s.Env.SubmitQueueName,
			Invoke:   invokeSQS(f), Poll: opts.Poll,
			OnError: func(err error) { fmt.Fprintf(s.log, "submitter poller: %v\n", err) },
		}
		if opts.Faults != nil {
			p.Duplicates = opts.Faults.Duplicate
		}
		s.submitPollers = append(s.submitPollers, p)
		s.wg.Go(func() { p.Run(pollCtx) })
	}
	return nil
}

// submitAddr is submit's Function URL address: the one asked for, or the
// front's port plus two when the front's port was given.
func submitAddr(opts Options, front string) string {
	if opts.SubmitAddr != "" {
		return opts.SubmitAddr
	}
	return nextPort(opts.Addr, front, 2)
}

// nextPort is the front's host with its port plus n, or a free port when
// the front's was picked free.
func nextPort(asked, front string, n int) string {
	host, port, _ := net.SplitHostPort(front)
	_, askedPort, _ := net.SplitHostPort(asked)
	if askedPort == "0" || askedPort == "" {
		return net.JoinHostPort(host, "0")
	}
	var p int
	fmt.Sscan(port, &p)
	return net.JoinHostPort(host, fmt.Sprint(p+n))
}

// PauseSubmitters holds the submit queue's messages back from the
// submitters, for benchmarks of submit's answer alone.
func (s *Stack) PauseSubmitters() {
	for _, p := range s.submitPollers {
		p.Pause()
	}
}
