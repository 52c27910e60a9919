package dynamo

import (
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestOrStatusKeepsTheClausesBeforeIt(t *testing.T) {
	b := (&Store{}).newUpdate(task.StatusQueued, time.Time{})
	b.heldBy("copier-1", time.Time{})
	b.orStatus(task.StatusReceived)
	if !strings.Contains(b.condition, " IN (:from, :from2)") || !strings.Contains(b.condition, "= :owner") {
		t.Errorf("condition %q: the status widens and the lease clause stays", b.condition)
	}
}
