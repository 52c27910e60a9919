// Package events holds the sample events of kiehook, embedded so that tests
// and the local stack use exactly the files that `sam local invoke -e` reads:
//
//   - kie-callbacks/: callback bodies as the platform sends them, one per API
//     and outcome (copied from the platform's published examples).
//   - callback-*.json: Lambda Function URL events (payload format 2.0) for
//     CallbackFunction.
//   - copier-*.json: SQS events for CopierFunction.
//   - reconciler-schedule.json: the EventBridge schedule event of
//     ReconcilerFunction.
//   - reader-get.json: a Function URL GET for ReaderFunction.
//   - submit-post.json: a Function URL POST /submissions for SubmitFunction.
//   - submitter-batch.json: the SQS event of SubmitterFunction that sends
//     submit-post.json's submission.
//   - task-*.json: the task events kiehook puts on the bus, as an
//     application's rule receives them.
//   - env.json: every function's variables for the local stack, the file
//     `sam local invoke --env-vars` reads.
package events

import (
	"embed"
	"encoding/json"
	"fmt"
)

// Files is every sample event, by its path below events/.
//
//go:embed kie-callbacks/*.json *.json
var Files embed.FS

// LocalVars are one function's variables in env.json, the file that
// `sam local invoke --env-vars events/env.json` reads.
func LocalVars(function string) (map[string]string, error) {
	b, err := Files.ReadFile("env.json")
	if err != nil {
		return nil, err
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("env.json: %w", err)
	}
	vars, ok := all[function]
	if !ok {
		return nil, fmt.Errorf("env.json has no %s", function)
	}
	return vars, nil
}
