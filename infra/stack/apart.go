package stack

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The child of Apart learns from these which test it runs, and where the
// functions its parent built are.
const (
	apartTestEnv     = "KIEHOOK_APART_TEST"
	apartBinariesEnv = "KIEHOOK_APART_BINARIES"
)

// Apart lets a test that starts a stack run beside the others: it marks
// t parallel, runs it in a child process of the test binary, on the
// functions already built, and fails t with the child's output should it
// fail, or should it not report t passed. It reports whether the caller
// is that child, which then runs the test's body itself. With -short it
// skips t: no stack starts.
//
// Stacks side by side in one process race: goaws (v0.5.4) keeps every
// queue in one package-level map that its handlers read without its lock,
// while another stack's queues are made or removed. In processes of their
// own they cannot meet.
func Apart(t *testing.T, bins *Binaries) (child bool) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the functions")
	}
	if os.Getenv(apartTestEnv) == t.Name() {
		return true
	}
	t.Parallel()
	built, err := json.Marshal(bins)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(t.Name()), "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), apartTestEnv+"="+t.Name(), apartBinariesEnv+"="+string(built))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a process of its own: %v\n%s", err, out)
	}
	// A test binary that runs no test exits 0 too: only the child's own
	// verdict on t says that t ran.
	if !passed(out, t.Name()) {
		t.Fatalf("in a process of its own, %s did not run: its child exited 0 without a --- PASS line for it\n%s", t.Name(), out)
	}
	t.Log(string(out))
	return false
}

// passed reports whether the -test.v output out says the test named name
// passed.
func passed(out []byte, name string) bool {
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "--- PASS: "+name+" (") {
			return true
		}
	}
	return false
}

// runPattern is the -test.run pattern that matches the test named name
// and no other.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

// builtByParent is the Binaries an Apart child was handed, if it is one.
func builtByParent() (*Binaries, bool) {
	raw := os.Getenv(apartBinariesEnv)
	if raw == "" {
		return nil, false
	}
	var b Binaries
	return &b, json.Unmarshal([]byte(raw), &b) == nil
}
