// Package register lets your own code record a generation task with
// kiehook right after submitting it to the platform, so that if its
// callback never comes the reconciler polls the platform for it:
//
//	resp := submitVeoTask(...) // your call to the platform
//	labels := map[string]string{"uid": user.ID} // yours, back in the task's events
//	_, _, err := register.Pending(ctx, dynamodb.NewFromConfig(cfg), "kiehook-tasks", resp.TaskID, "veo", labels)
//
// It writes the same record as POST /tasks on the callback URL: status
// pending, the API, the labels, submittedAt. A task kiehook already knows
// is left as it is. It and taskevent are the packages of kiehook meant to be imported.
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
const TTL = task.DefaultTTL

// Pending records taskID of api (flux-kontext, 4o-image, midjourney, veo,
// runway, runway-aleph, suno or market) as pending in table, with labels
// (nil for none: at most 10, names of 1-64 characters of A-Z a-z 0-9 _ . -,
// values of at most 256 bytes). It returns the task's status and whether
// this call created its record.
func Pending(ctx context.Context, db DynamoDB, table, taskID, api string, labels map[string]string) (status string, created bool, err error) {
	if !kie.ValidTaskID(taskID) {
		return "", false, fmt.Errorf("register: invalid task id %q", taskID)
	}
	if !kie.KnownAPI(api) {
		return "", false, fmt.Errorf("register: unknown api %q", api)
	}
	if err := kie.CheckLabels(labels); err != nil {
		return "", false, fmt.Errorf("register: %w", err)
	}
	r := &task.Receiver{Store: dynamo.New(db, table, dynamo.WithoutEvents), TTL: TTL, Now: time.Now}
	t, created, err := r.Register(ctx, taskID, api, labels)
	if err != nil {
		return "", false, fmt.Errorf("register %s: %w", taskID, err)
	}
	return string(t.Status), created, nil
}
