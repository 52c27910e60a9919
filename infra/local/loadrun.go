package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/faults"
	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

// runLoad starts the stack built for a load run, drives and audits it, and
// writes report.txt, latency.svg and stored-latency.svg to dir. It fails when the audit does.
func runLoad(ctx context.Context, out io.Writer, opts stack.Options, lo load.Options, faultRate float64, dir string) error {
	// Many callback sandboxes, as a busy Function URL has; copies retried
	// within seconds rather than the deployed 30 minutes.
	opts.CallbackInstances = 16
	opts.CopierTimeout = 60 * time.Second
	run := load.Scenario{Visibility: 20 * time.Second, Options: lo}
	if faultRate > 0 {
		rates := faults.Uniform(faultRate)
		run.Faults, run.SourceFaults = &rates, faultRate
	}
	fmt.Fprintf(out, "driving %d tasks, %d at a time\n", lo.Tasks, lo.Concurrency)
	p := progress.New(out, 0)
	p.Phase("building the functions and starting the emulators", nil)
	run.Options.Progress = p
	rep, _, err := run.Run(ctx, opts)
	p.Stop()
	if rep == nil {
		return err
	}
	if faultRate > 0 {
		rep.Faults = fmt.Sprintf("%.0f%% of requests to DynamoDB, SQS, S3 and EventBridge meet each of error, throttling, drop and latency; %.0f%% of copy batches deliver a message twice at once; %.0f%% of downloads each of 503, reset, stall, and cut off halfway (with Content-Length, and chunked)", 100*faultRate, 100*faultRate, 100*faultRate)
	}
	fmt.Fprint(out, rep.String())
	dir = reportFolder(dir, opts.Dir)
	if werr := write(dir, rep); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(out, "report and latency charts (callback, callback to stored) in %s\n", dir)
	return err // the run's, or the audit's
}

// runSubmissions starts a stack paced for a submissions run, drives and
// audits it, and prints the report. It fails when the audit does.
func runSubmissions(ctx context.Context, out io.Writer, opts stack.Options, so load.SubmitOptions) error {
	opts.CallbackInstances = 4
	p := progress.New(out, 0)
	p.Phase("building the functions and starting the emulators", nil)
	so.Progress = p
	s, err := stack.Start(ctx, so.Stack(opts))
	if err != nil {
		p.Stop()
		return err
	}
	defer s.Close()
	rep, err := load.RunSubmissions(ctx, s, so)
	p.Stop()
	if rep != nil {
		fmt.Fprint(out, rep.String())
	}
	return err
}

func write(dir string, rep *load.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(rep.String()), 0o644); err != nil {
		return err
	}
	for name, draw := range map[string]func(io.Writer) error{"latency.svg": rep.WriteSVG, "stored-latency.svg": rep.WriteStoredSVG} {
		if err := writeChart(filepath.Join(dir, name), draw); err != nil {
			return err
		}
	}
	return nil
}

func writeChart(path string, draw func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := draw(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runScenarios runs each fault scenario on a stack of its own, prints a line
// for each, and writes them to dir as scenarios.txt. It fails when one does.
func runScenarios(ctx context.Context, out io.Writer, opts stack.Options, scenarios []func() load.Scenario, dir string) error {
	// Each scenario's stack takes fresh ports: the fixed ones would outlive
	// one stack into the next.
	opts.Addr = "127.0.0.1:0"
	opts.Emulators = emulators.Options{}
	opts.CallbackInstances = 4
	var report strings.Builder
	report.WriteString("kiehook fault scenarios\n")
	var failed []error
	p := progress.New(out, 0)
	for i, scenario := range scenarios {
		sc := scenario()
		p.Label(fmt.Sprintf("scenario %d/%d, %s", i+1, len(scenarios), sc.Name))
		p.Phase("building the functions and starting the emulators", nil)
		sc.Options.Progress = p
		_, line, err := sc.Run(ctx, opts)
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", sc.Name, err))
			fmt.Fprintf(&report, "  FAIL  %s\n        %v\n", sc.Name, err)
			continue
		}
		fmt.Fprintf(&report, "  PASS  %s\n        %s\n", sc.Name, line)
	}
	p.Stop()
	fmt.Fprint(out, report.String())
	dir = reportFolder(dir, opts.Dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "scenarios.txt"), []byte(report.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(out, "report in %s\n", filepath.Join(dir, "scenarios.txt"))
	return errors.Join(failed...)
}

// reportFolder is dir, or by default .kiehook/load beside the stack's folder.
func reportFolder(dir, stackDir string) string {
	switch {
	case dir != "":
		return dir
	case stackDir == "":
		return filepath.Join(".kiehook", "load")
	default:
		return filepath.Join(filepath.Dir(stackDir), ".kiehook", "load")
	}
}
