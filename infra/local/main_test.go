package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

func TestDemoPlaysThePlatformAndStopsOnCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the functions")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out capture.Buffer
	done := make(chan error, 1)
	receiver := forward.NewReceiver(0.3) // refuses some calls: they are retried
	defer receiver.Close()
	opts := stack.Options{Addr: "127.0.0.1:0", Dir: t.TempDir(), Binaries: binaries, Notify: &receiver.Target, Submissions: true}
	go func() { done <- run(ctx, &out, opts, true) }()

	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(out.String(), "see them at") {
		if time.Now().After(deadline) {
			t.Fatalf("the demo did not finish:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	// Forwarding is at least once: every event the bus took reaches the
	// application's endpoint, some after a refusal and a backoff.
	deadline = time.Now().Add(20 * time.Second)
	for len(receiver.Details()) < len(platform.APIs)+1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := len(receiver.Details()); got < len(platform.APIs)+1 {
		t.Errorf("%d details forwarded in 20 s, want one per ended task", got)
	}
	cancel() // as Ctrl-C does
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop")
	}

	report := out.String()
	for _, want := range []string{"callback URL", "/_local/tasks", `"status":"duplicate"`, "stopping…"} {
		if !strings.Contains(report, want) {
			t.Errorf("the output lacks %q:\n%s", want, report)
		}
	}
	if n := strings.Count(report, "Task Stored "); n != len(platform.APIs) {
		t.Errorf("%d Task Stored events, want one per API:\n%s", n, report)
	}
	if n := len(regexp.MustCompile(`(?m)^\s+demo-\S+\s+\S+\s+stored\s`).FindAllString(report, -1)); n != len(platform.APIs) {
		t.Errorf("%d tasks stored, want one per API:\n%s", n, report)
	}
	// Suno calls back three times; its final callback brings both tracks.
	for _, want := range []string{"suno text ", "suno first ", "suno complete ", "tasks/demo-suno-", "/3.jpg", "events on the bus:", "Task Failed",
		"labels map[job:demo-", "the reader: GET ", "download links", "forwarded to " + receiver.Target.URL,
		"building the functions and starting the emulators…", "waiting for the copies: sent "} {
		if !strings.Contains(report, want) {
			t.Errorf("the output lacks %q:\n%s", want, report)
		}
	}
	if !strings.Contains(report, " failed ") {
		t.Errorf("the failure is not in the table:\n%s", report)
	}
	// Then it submits a task of every API through kiehook, one key twice.
	for _, want := range []string{"/submissions):", "(the same submission: no second task)", fmt.Sprintf("the platform was asked to create %d tasks for %d submissions", len(platform.APIs), len(platform.APIs))} {
		if !strings.Contains(report, want) {
			t.Errorf("the output lacks %q:\n%s", want, report)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^\s+sub_\S+\s+\S+\s+submitted\s+\S+\s+stored\s`).FindAllString(report, -1)); n != len(platform.APIs) {
		t.Errorf("%d submissions submitted and stored, want one per API:\n%s", n, report)
	}
}

func TestScenariosReportALineForEachAndFailWhenOneFails(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs both functions")
	}
	quick := load.Small(5)
	passes := load.Scenario{Name: "a quiet run stores its tasks", Visibility: 3 * time.Second, Options: quick,
		Check: func(rep *load.Report, _ *stack.Stack, _ *platform.Files) (string, error) {
			return fmt.Sprintf("%d stored", rep.Stored), nil
		}}
	fails := passes
	fails.Name = "a run whose outcome does not hold"
	fails.Check = func(*load.Report, *stack.Stack, *platform.Files) (string, error) {
		return "", errors.New("the outcome did not hold")
	}
	var out capture.Buffer
	dir := t.TempDir()
	err := runScenarios(context.Background(), &out, stack.Options{Dir: filepath.Join(dir, "stack"), Binaries: binaries}, []func() load.Scenario{func() load.Scenario { return passes }, func() load.Scenario { return fails }}, dir)
	if err == nil || !strings.Contains(err.Error(), "the outcome did not hold") {
		t.Errorf("error %v, want the failed scenario's", err)
	}
	report, rerr := os.ReadFile(filepath.Join(dir, "scenarios.txt"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	// Outside a terminal, progress comes as plain lines: each phase as it
	// starts, with where the run is.
	for _, want := range []string{"scenario 1/2, a quiet run stores its tasks: building the functions and starting the emulators…",
		"scenario 2/2, a run whose outcome does not hold: driving: sent 0/5, accepted 0, stored 0, ended 0/5",
		"a quiet run stores its tasks: draining the queue: sent 5/5", "a quiet run stores its tasks: auditing…"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	for _, want := range []string{"PASS  a quiet run stores its tasks", " stored\n", "FAIL  a run whose outcome does not hold", "the outcome did not hold"} {
		if !strings.Contains(string(report), want) || !strings.Contains(out.String(), want) {
			t.Errorf("report and output must both say %q:\n%s", want, report)
		}
	}
}

func TestALoadSaysWhereItIsAndWritesItsReportAndCharts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the functions")
	}
	var out capture.Buffer
	dir := t.TempDir()
	lo := load.Small(6)
	err := runLoad(context.Background(), &out, stack.Options{Addr: "127.0.0.1:0", Dir: filepath.Join(dir, "stack"), Binaries: binaries}, lo, 0, dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"driving 6 tasks", "building the functions and starting the emulators…", "driving: sent 0/6", "draining the queue: sent 6/6", "auditing…", "lost             0"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
	for _, name := range []string{"report.txt", "latency.svg", "stored-latency.svg"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "stored-latency.svg")); !strings.Contains(string(b), "Callback to stored, ") {
		t.Error("stored-latency.svg is not the callback to stored chart")
	}
}
