package progress

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/capture"
)

func TestOutsideATerminalAPlainLineComesEveryInterval(t *testing.T) {
	var out capture.Buffer // not a terminal
	p := New(&out, 20*time.Millisecond)
	clock := time.Unix(1764300000, 0)
	var mu sync.Mutex
	p.mu.Lock()
	p.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	p.mu.Unlock()
	p.Label("a backlog")
	p.Phase("building the functions", nil)
	counts := Counts{Total: 600}
	p.Phase("driving", func() Counts { mu.Lock(); defer mu.Unlock(); return counts })
	mu.Lock()
	clock = clock.Add(10 * time.Second)
	counts = Counts{Total: 600, Sent: 412, Accepted: 398, Stored: 250, Ended: 300, Bytes: 120e6}
	mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	p.Stop()
	got := out.String()
	for _, want := range []string{
		"a backlog: building the functions…",
		"a backlog: driving: sent 412/600, accepted 398, stored 250, ended 300/600, 12.0 MB/s copied, about 10s left (10s in this phase)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\r") || strings.Contains(got, "\x1b") {
		t.Errorf("a redrawn line outside a terminal:\n%q", got)
	}
	if n := strings.Count(got, "driving"); n < 2 {
		t.Errorf("%d driving lines in 300 ms at one per 20 ms", n)
	}
}

func TestANilProgressReportsNothing(t *testing.T) {
	var p *Progress
	p.Label("x")
	p.Phase("driving", nil)
	p.Stop()
}
