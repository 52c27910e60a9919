package load_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/load"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

func TestALoadRunWithoutFaultsStoresEverySuccessAtOnce(t *testing.T) {
	run(t, load.Scenario{
		Visibility: 3 * time.Second,
		Options:    load.Small(60),
		Check: func(rep *load.Report, _ *stack.Stack, _ *platform.Files) (string, error) {
			if rep.Stored != rep.Planned.Success+rep.Planned.FailThenWin || rep.GaveUp != 0 || rep.DLQ != 0 || rep.DuplicatesAbsorbed == 0 {
				return "", errors.New("a success was not stored, or a duplicate not absorbed")
			}
			return fmt.Sprintf("%d stored, %d duplicates absorbed", rep.Stored, rep.DuplicatesAbsorbed), nil
		},
	})
}

func TestTheFaultScenarios(t *testing.T) {
	for _, scenario := range load.Scenarios() {
		sc := scenario()
		t.Run(sc.Name, func(t *testing.T) { run(t, sc) })
	}
}

// run runs a scenario on a stack of its own, in a process of its own
// (stack.Apart), and fails the test with the report when the run, the
// audit or the scenario's check fails.
func run(t *testing.T, sc load.Scenario) {
	t.Helper()
	if !stack.Apart(t, binaries) {
		return
	}
	rep, line, err := sc.Run(context.Background(), stack.Options{Addr: "127.0.0.1:0", Dir: t.TempDir(), Binaries: binaries, CallbackInstances: 4})
	if rep != nil {
		t.Log("\n" + rep.String())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(line)
}
