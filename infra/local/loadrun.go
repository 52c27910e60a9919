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
	"github.com/kiehook/kiehook/infra/stack"
)

// runLoad starts the stack built for a load run, drives and audits it, and
// writes report.txt and latency.svg to dir. It fails when the audit does.
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
	fmt.Fprintf(out, "building the functions, starting the emulators, and driving %d tasks, %d at a time…\n", lo.Tasks, lo.Concurrency)
	rep, _, err := run.Run(ctx, opts)
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
	fmt.Fprintf(out, "report and latency chart in %s\n", dir)
	return err // the run's, or the audit's
}

func write(dir string, rep *load.Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.txt"), []byte(rep.String()), 0o644); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "latency.svg"))
	if err != nil {
		return err
	}
	defer f.Close()
	return rep.WriteSVG(f)
}

// runScenarios runs each fault scenario on a stack of its own, prints a line
// for each, and writes them to dir as scenarios.txt. It fails when one does.
func runScenarios(ctx context.Context, out io.Writer, opts stack.Options, scenarios []load.Scenario, dir string) error {
	// Each scenario's stack takes fresh ports: the fixed ones would outlive
	// one stack into the next.
	opts.Addr = "127.0.0.1:0"
	opts.Emulators = emulators.Options{}
	opts.CallbackInstances = 4
	var report strings.Builder
	report.WriteString("kiehook fault scenarios\n")
	var failed []error
	for _, sc := range scenarios {
		fmt.Fprintf(out, "running: %s…\n", sc.Name)
		_, line, err := sc.Run(ctx, opts)
		if err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", sc.Name, err))
			fmt.Fprintf(&report, "  FAIL  %s\n        %v\n", sc.Name, err)
			continue
		}
		fmt.Fprintf(&report, "  PASS  %s\n        %s\n", sc.Name, line)
	}
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
