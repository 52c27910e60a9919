package explore

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var (
	full    = flag.Bool("explore.full", false, "explore with the larger bounds (minutes, not seconds)")
	seed    = flag.Uint64("explore.seed", 0, "seed of the random runs (0: from the clock); a failure prints the one to replay")
	runs    = flag.Int("explore.runs", 0, "random runs per scenario (0: 100, or 2000 with -explore.full)")
	bounds  = flag.String("explore.bounds", "", "preemptions,crashes,errors: overrides every scenario's bounds")
	verbose = flag.Bool("explore.v", false, "print the search's progress")
	only    = flag.String("explore.run", "", "explore only the scenario whose name contains this")
)

// execCap stops a search that would not end in reasonable time; it is
// reported, never silent.
const execCap = 400_000

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func selected(sc *scenario) bool {
	return *only == "" || strings.Contains(sc.name, *only)
}

// TestExplore searches every interleaving of each scenario's actors
// within its bounds, and fails with the shortest counterexample it finds.
func TestExplore(t *testing.T) {
	total, began := 0, time.Now()
	for _, sc := range scenarios() {
		if !selected(sc) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			b := sc.ci
			if *full {
				b = sc.full
			}
			if *bounds != "" {
				if _, err := fmt.Sscanf(*bounds, "%d,%d,%d", &b.preemptions, &b.crashes, &b.errors); err != nil {
					t.Fatalf("-explore.bounds: %v", err)
				}
			}
			rep := search(sc, b, execCap)
			total += rep.executions
			t.Logf("bounds %+v: %d executions (%d cut short by the state hash) in %v", b, rep.executions, rep.pruned, rep.elapsed.Round(time.Millisecond))
			if rep.nondet != nil {
				t.Fatalf("the execution is not deterministic: %v", rep.nondet)
			}
			if rep.failure != nil {
				t.Fatalf("%v\n\nfound at preemption bound %d; shortest counterexample:\n%s", rep.failure.err, rep.bound, format(rep.failure.trace))
			}
			if rep.capped {
				t.Errorf("stopped at %d executions before exhausting the bounds", execCap)
			}
		})
	}
	t.Logf("%d executions in %v", total, time.Since(began).Round(time.Millisecond))
}

// TestRandomRuns runs each scenario's actors in random orders with random
// faults and no preemption bound: longer schedules than the search
// reaches.
func TestRandomRuns(t *testing.T) {
	n := *runs
	if n == 0 {
		n = 100
		if *full {
			n = 2000
		}
	}
	base := *seed
	if base == 0 {
		base = uint64(time.Now().UnixNano())
	}
	began := time.Now()
	defer func() {
		t.Logf("%d random runs a scenario from -explore.seed=%d in %v", n, base, time.Since(began).Round(time.Millisecond))
	}()
	for _, sc := range scenarios() {
		if !selected(sc) {
			continue
		}
		t.Run(sc.name, func(t *testing.T) {
			b := sc.full
			b.preemptions = 1 << 20
			for i := range n {
				s := base + uint64(i)
				o := execute(sc, &random{rng: rand.New(rand.NewPCG(s, s))}, b, nil)
				if o.err != nil {
					t.Fatalf("%v\n\nrandom run with -explore.seed=%d -explore.runs=1:\n%s", o.err, s, format(o.trace))
				}
			}
		})
	}
}
