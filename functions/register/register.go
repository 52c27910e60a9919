// Package register lets your own code record a generation task with
// kiehook right after submitting it to the platform, so that if its
// callback never comes the reconciler polls the platform for it:
//
//	resp := submitVeoTask(...) // your call to the platform
//	_, _, err := register.Pending(ctx, dynamodb.NewFromConfig(cfg), "kiehook-tasks", resp.TaskID, "veo")
//
// It writes the same record as POST /tasks on the callback URL: status
// pending, the API, submittedAt. A task kiehook already knows is left as it
// is. It and taskevent are the packages of kiehook meant to be imported.
package register

import (
	"context"
	"fmt"
	"time"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// DynamoDB is the part of the DynamoDB API used; *dynamodb.Client has it.
type DynamoDB = dynamo.Client

// TTL is how long a registered record lives, as RECORD_TTL's default.
const TTL = 720 * time.Hour

// Pending records taskID of api (flux-kontext, 4o-image, midjourney, veo,
// runway, runway-aleph, suno or market) as pending in table. It returns the task's
// status and whether this call created its record.
func Pending(ctx context.Context, db DynamoDB, table, taskID, api string) (status string, created bool, err error) {
	if !kie.ValidTaskID(taskID) {
		return "", false, fmt.Errorf("register: invalid task id %q", taskID)
	}
	if !kie.KnownAPI(api) {
		return "", false, fmt.Errorf("register: unknown api %q", api)
	}
	r := &task.Receiver{Store: dynamo.New(db, table, false), TTL: TTL, Now: time.Now}
	t, created, err := r.Register(ctx, taskID, api)
	if err != nil {
		return "", false, fmt.Errorf("register %s: %w", taskID, err)
	}
	return string(t.Status), created, nil
}
