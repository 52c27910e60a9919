package stack

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Functions are the folders under functions/ that a stack runs.
var Functions = []string{"callback", "copier", "reconciler", "reader", "submit", "submitter"}

// Baseline is the hello-world Function URL handler the benchmarks measure
// the callback against (infra/hello), built and run the same way.
const Baseline = "hello"

// Binaries are the functions' bootstraps, by folder name, and the Runtime
// Interface Emulator that runs them.
type Binaries struct {
	RIE       string
	Bootstrap map[string]string
}

// Build builds every function, and the Baseline, into
// dir/<name>/bootstrap with the flags `sam build` uses (functions/Makefile)
// for this machine's architecture, and finds the emulator that go.mod's
// tool line pins. Tests build once, before any clock starts (RunTests).
func Build(ctx context.Context, dir string) (*Binaries, error) {
	// The emulator panics at start-up when its working directory, the
	// binaries' folder, holds a percent sign.
	if strings.Contains(dir, "%") {
		return nil, fmt.Errorf("stack folder %q: the Runtime Interface Emulator cannot run in a path that holds %%", dir)
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	b := &Binaries{Bootstrap: map[string]string{}}
	if b.RIE, err = emulatorPath(ctx, root); err != nil {
		return nil, err
	}
	packages := map[string]string{Baseline: "./infra/hello"}
	for _, name := range Functions {
		packages[name] = "./functions/" + name
	}
	for name, pkg := range packages {
		out := filepath.Join(dir, name, "bootstrap")
		cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-f", "functions/Makefile", "bootstrap", "PKG="+pkg, "OUT="+out, "GOARCH="+runtime.GOARCH)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
		b.Bootstrap[name] = out
	}
	return b, nil
}

// RunTests is the TestMain of a package whose tests start stacks: it
// builds the functions once, into a folder of its own, before any test's
// clock starts, sets *bins to them for the tests' Options, and removes the
// folder after. With -short, when no stack starts, it builds nothing; in
// the child of Apart, it takes what its parent built.
func RunTests(m *testing.M, bins **Binaries) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	if b, ok := builtByParent(); ok {
		*bins = b
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "kiehook-functions-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bins, err = Build(context.Background(), dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// emulatorPath is the Runtime Interface Emulator that go.mod's tool line
// pins, built (or found in the build cache) by `go tool -n`.
func emulatorPath(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "aws-lambda-rie")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n aws-lambda-rie: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// moduleRoot is the folder of the go.mod that holds this project.
func moduleRoot(ctx context.Context) (string, error) {
	b, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(b)) == "" || strings.TrimSpace(string(b)) == os.DevNull {
		return "", fmt.Errorf("run from inside the kiehook module: go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(b))), nil
}

// function is one bootstrap running under the Runtime Interface Emulator,
// as `sam local invoke` runs it. It serves one invocation at a time.
type function struct {
	name string
	url  string
	cmd  *exec.Cmd
	slot chan struct{}
	done chan struct{}
}

// MemoryMB is each function's MemorySize in template.yaml, which Lambda and
// `sam local invoke` give it as AWS_LAMBDA_FUNCTION_MEMORY_SIZE (the
// emulator on its own says 3008); HelloFunction has SAM's default.
var MemoryMB = map[string]int{
	"CallbackFunction": 256, "CopierFunction": 512, "ReconcilerFunction": 256,
	"ReaderFunction": 128, "SubmitFunction": 128, "SubmitterFunction": 128,
	"HelloFunction": 128,
}

// startFunction runs bootstrap under the emulator with env, its output
// appended to log. An emulator that exits at start-up is started again on
// other ports: freeAddr's port is free when it answers, and another test
// process may take it before the emulator binds it.
func startFunction(ctx context.Context, rie, bootstrap, name string, env map[string]string, timeout time.Duration, log io.Writer) (*function, error) {
	for attempt := 1; ; attempt++ {
		f, err := launchFunction(ctx, rie, bootstrap, name, env, timeout, log)
		if !errors.Is(err, errExitedAtStart) || attempt == 3 {
			return f, err
		}
	}
}

// errExitedAtStart is an emulator that stopped before it listened.
var errExitedAtStart = errors.New("the emulator exited at start-up")

// launchFunction is one attempt of startFunction.
func launchFunction(ctx context.Context, rie, bootstrap, name string, env map[string]string, timeout time.Duration, log io.Writer) (*function, error) {
	apiAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	rieAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(rie, "--runtime-interface-emulator-address", rieAddr, "--runtime-api-address", apiAddr, "--log-level", "error", bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so that Close ends the bootstrap too
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + fmt.Sprint(int(timeout.Seconds())),
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + fmt.Sprint(MemoryMB[name]),
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	f := &function{name: name, url: "http://" + rieAddr + "/2015-03-31/functions/function/invocations", cmd: cmd, slot: make(chan struct{}, 1), done: make(chan struct{})}
	go func() { cmd.Wait(); close(f.done) }()
	if err := waitListening(ctx, rieAddr, f.done); err != nil {
		f.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return f, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitListening(ctx context.Context, addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errExitedAtStart
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond): // fine enough for ColdStart's clock
		}
	}
	return fmt.Errorf("the emulator is not listening on %s", addr)
}

// errFunction is a function that failed or crashed rather than answered.
var errFunction = errors.New("function error")

// invoke runs the function on payload and returns its response.
func (f *function) invoke(ctx context.Context, requestID string, payload []byte) ([]byte, error) {
	select {
	case f.slot <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-f.slot }()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Amzn-RequestId", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("invoke %s: %w", f.name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || bytes.Contains(body, []byte(`"errorType"`)) {
		return nil, fmt.Errorf("%w: %s answered %d: %.300s", errFunction, f.name, resp.StatusCode, body)
	}
	return body, nil
}

// stop ends the emulator and the bootstrap it started.
func (f *function) stop() {
	if f.cmd.Process != nil {
		syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-f.done
}
