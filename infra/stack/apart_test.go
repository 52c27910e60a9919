package stack_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/infra/stack"
)

// apartProbeEnv marks the process in which
// TestApartFailsATestItsChildDidNotRun calls Apart.
const apartProbeEnv = "KIEHOOK_APART_PROBE"

// TestApartFailsATestItsChildDidNotRun calls Apart, in a process of its
// own, from a subtest named after that process: the child Apart starts,
// another process, names its subtest otherwise, so that it runs nothing
// of what it was asked, and exits 0 all the same. Apart must fail the
// subtest, not pass it.
func TestApartFailsATestItsChildDidNotRun(t *testing.T) {
	if os.Getenv(apartProbeEnv) != "" {
		t.Run(fmt.Sprintf("process_%d", os.Getpid()), func(t *testing.T) { stack.Apart(t, binaries) })
		return
	}
	built, err := json.Marshal(binaries)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	// The functions as this process built them (or none with -short), so
	// that the probe and its child build nothing (see stack.RunTests).
	cmd.Env = append(os.Environ(), apartProbeEnv+"=1", "KIEHOOK_APART_BINARIES="+string(built))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "did not run") {
		t.Errorf("Apart passed a test its child never ran (%v):\n%s", err, out)
	}
}
