package dynamo

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestOrStatusKeepsTheClausesBeforeIt(t *testing.T) {
	b := (&Store{}).newUpdate(task.StatusQueued, time.Time{})
	b.heldBy("copier-1", time.Time{})
	b.orStatus(task.StatusReceived)
	b.remove("leaseOwner")
	e, err := b.build()
	if err != nil {
		t.Fatal(err)
	}
	var values []string
	for _, v := range e.Values() {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			values = append(values, s.Value)
		}
	}
	slices.Sort(values)
	if c := *e.Condition(); !strings.Contains(c, " IN (") || !strings.Contains(c, " AND ") ||
		!slices.Equal(values, []string{"copier-1", "queued", "received"}) {
		t.Errorf("condition %q with values %v: the status widens and the lease clause stays", c, values)
	}
}
