// Package lambdamain is every function's main: the configuration read and
// the SDK clients made once per cold start, then the handler served.
package lambdamain

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
)

// Run builds the function once, with slog logging each line with its
// request id, and serves handler(built) with lambda.Start. A build that
// fails ends the process, its reason logged under the function's name:
// Lambda reports the init failure and tries again.
func Run[F any](name string, build func(ctx context.Context, logger *slog.Logger) (F, error), handler func(F) any) {
	logger := lambdacontext.NewLogger()
	f, err := build(context.Background(), logger)
	if err != nil {
		logger.Error(name+" function cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler(f))
}

// Config reads a function's configuration with load and the SDK's from
// Lambda's environment, its clients retrying as retry says; the first
// error stops the build.
func Config[C any](load func(lookup func(string) (string, bool)) (C, error), retry awsenv.Retry) (C, aws.Config, error) {
	c, err := load(os.LookupEnv)
	if err != nil {
		return c, aws.Config{}, err
	}
	awsCfg, err := awsenv.Config(os.LookupEnv)
	awsCfg.Retryer = retry.Retryer
	return c, awsCfg, err
}
