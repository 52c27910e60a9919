// Package events holds the sample events of kiehook, embedded so that tests
// and the local stack use exactly the files that `sam local invoke -e` reads:
//
//   - kie-callbacks/: callback bodies as the platform sends them, one per API
//     and outcome (copied from the platform's published examples).
//   - callback-*.json: Lambda Function URL events (payload format 2.0) for
//     CallbackFunction.
//   - copier-*.json: SQS events for CopierFunction.
package events

import "embed"

// Files is every sample event, by its path below events/.
//
//go:embed kie-callbacks/*.json *.json
var Files embed.FS
