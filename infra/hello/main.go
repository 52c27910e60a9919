// Command hello is the smallest Function URL handler a user would write:
// it answers every request 200 with a fixed JSON body. The benchmarks run
// it under the Runtime Interface Emulator beside the callback function, as
// the baseline that the callback's latency is divided by.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(context.Context, events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	return events.LambdaFunctionURLResponse{
		StatusCode: 200,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       `{"status":"accepted"}`,
	}, nil
}

func main() { lambda.Start(handle) }
