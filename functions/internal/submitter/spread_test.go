package submitter

import (
	"testing"
	"time"
)

func TestAWaitIsSentAsWholeSecondsNeverBeforeItsTurn(t *testing.T) {
	for _, tt := range []struct {
		name            string
		wait, window    time.Duration
		least, lessThan time.Duration
	}{
		{"a wait under half a second still waits a second", 300 * time.Millisecond, 0, time.Second, time.Second + 1},
		{"a wait of whole seconds is kept", 3 * time.Second, 0, 3 * time.Second, 3*time.Second + 1},
		{"a part of a second rounds up", 3100 * time.Millisecond, 0, 4 * time.Second, 4*time.Second + 1},
		{"a window spreads it by less than the window", 2 * time.Second, 10 * time.Second, 2 * time.Second, 12 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for range 100 {
				if got := spread(tt.wait, tt.window, new(Submitter).jitter); got < tt.least || got >= tt.lessThan || got < tt.wait {
					t.Fatalf("spread(%v, %v) = %v, want in [%v, %v)", tt.wait, tt.window, got, tt.least, tt.lessThan)
				}
			}
		})
	}
}
