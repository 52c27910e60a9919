package stack_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/kiehook/kiehook/infra/stack"
)

func TestATestApartRunsInAChildOfTheTestBinaryOnWhatItBuilt(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	parent, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	if exe, _, _ := bytes.Cut(parent, []byte{0}); string(exe) != os.Args[0] {
		t.Errorf("run by %q, not by the test binary %q", exe, os.Args[0])
	}
	if binaries == nil || binaries.RIE == "" || len(binaries.Bootstrap) != len(stack.Functions)+1 {
		t.Errorf("the child has not the parent's functions: %+v", binaries)
	}
}
