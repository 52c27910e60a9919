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

	"github.com/kiehook/kiehook/infra/faults"
	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// runLoad starts the stack built for a load run, drives and audits it, and
// writes report.txt and latency.svg to dir. It fails when the audit does.
func runLoad(ctx context.Context, out io.Writer, opts stack.Options, lo load.Options, faultRate float64, dir string) error {
	// Many callback sandboxes, as a busy Function URL has; copies retried
	// within seconds rather than the deployed 30 minutes.
	opts.CallbackInstances = 16
	opts.CopierTimeout = 60 * time.Second
	opts.Emulators.VisibilityTimeout = 20 * time.Second
	opts.Emulators.MaxReceiveCount = 5
	if faultRate > 0 {
		rates := faults.Uniform(faultRate)
		opts.Faults = &rates
	}
	fmt.Fprintln(out, "building the functions and starting the emulators…")
	s, err := stack.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	files := platform.ServeFiles()
	defer files.Close()
	files.SetFaults(faultRate)
	fmt.Fprintf(out, "driving %d tasks, %d at a time…\n", lo.Tasks, lo.Concurrency)
	rep, err := load.Run(ctx, s, files, lo)
	if rep == nil {
		return err
	}
	if faultRate > 0 {
		rep.Faults = fmt.Sprintf("%.0f%% of requests to DynamoDB, SQS and S3 meet each of error, throttling, drop and latency; %.0f%% of downloads each of 503, reset and stall", 100*faultRate, 100*faultRate)
	}
	fmt.Fprint(out, rep.String())
	if dir == "" {
		dir = filepath.Join(filepath.Dir(opts.Dir), ".kiehook", "load")
		if opts.Dir == "" {
			dir = filepath.Join(".kiehook", "load")
		}
	}
	if werr := write(dir, rep); werr != nil {
		return errors.Join(err, werr)
	}
	fmt.Fprintf(out, "report and latency chart in %s\n", dir)
	if p := rep.Problems(); len(p) > 0 {
		return errors.Join(err, fmt.Errorf("audit failed: %s", strings.Join(p, "; ")))
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
	f, err := os.Create(filepath.Join(dir, "latency.svg"))
	if err != nil {
		return err
	}
	defer f.Close()
	return rep.WriteSVG(f)
}
