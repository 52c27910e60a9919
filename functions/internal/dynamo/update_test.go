package dynamo

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/kiehook/kiehook/functions/internal/task"
)

func TestOrStatusKeepsTheClausesBeforeIt(t *testing.T) {
	e, err := (&Store{}).expressionOf(task.ReleaseLease("t1", "copier-1"))
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
