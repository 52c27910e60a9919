package retry_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/kiehook/kiehook/functions/internal/retry"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestOnlyAPermanentErrorStopsTheRetries(t *testing.T) {
	refused := fmt.Errorf("source 2: %w", retry.Permanentf("source answered %d", 404))
	if !retry.IsPermanent(refused) || retry.PermanentReason(refused) != "source answered 404" {
		t.Errorf("%v: permanent %v, reason %q", refused, retry.IsPermanent(refused), retry.PermanentReason(refused))
	}
	for _, err := range []error{nil, errors.New("connection reset"), task.Errorf(task.EUNAVAILABLE, "queue unavailable")} {
		if retry.IsPermanent(err) || retry.PermanentReason(err) != "" {
			t.Errorf("%v is taken for permanent", err)
		}
	}
}

func TestWhichHTTPAnswersRefuseForGood(t *testing.T) {
	for _, tt := range []struct {
		status int
		good   bool
	}{
		{200, false}, {301, false}, {400, true}, {403, true}, {404, true}, {410, true},
		{408, false}, {429, false}, {500, false}, {503, false},
	} {
		t.Run(fmt.Sprintf("%d is refused for good: %v", tt.status, tt.good), func(t *testing.T) {
			if got := retry.RefusedForGood(tt.status); got != tt.good {
				t.Errorf("RefusedForGood(%d) = %v", tt.status, got)
			}
		})
	}
}
