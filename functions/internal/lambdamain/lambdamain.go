// Package lambdamain is every function's main: the configuration read and
// the SDK clients made once per cold start, then the handler served.
package lambdamain

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"

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
	if n, ok := Procs(os.LookupEnv, runtime.NumCPU()); ok {
		runtime.GOMAXPROCS(n)
	}
	f, err := build(context.Background(), logger)
	if err != nil {
		logger.Error(name+" function cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler(f))
}

// mbPerVCPU is the memory at which Lambda gives a function one whole vCPU:
// it shares CPU out in proportion to memory
// (docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
const mbPerVCPU = 1769

// Procs is the GOMAXPROCS a function of AWS_LAMBDA_FUNCTION_MEMORY_SIZE
// should run with on a host of cpus cores: one per vCPU its memory buys,
// at least one; ok is false when GOMAXPROCS is set (to a number the
// runtime takes: it ignores any other), or the memory is not
// known, or the host has no more cores than that. Go counts the host's
// cores, and a 256 MB function on two of them ran its two SDK calls on two
// threads that woke each other for a sixth of a vCPU: at one, the
// callback's warm median fell by a tenth (docs/benchmarks.md).
func Procs(lookup func(string) (string, bool), cpus int) (n int, ok bool) {
	if _, set := positive(lookup, "GOMAXPROCS"); set {
		return 0, false // the runtime took it
	}
	mb, known := positive(lookup, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
	if !known {
		return 0, false
	}
	n = (mb + mbPerVCPU - 1) / mbPerVCPU
	return n, n < cpus
}

// positive is the variable name as a whole number, and whether it is one
// above zero.
func positive(lookup func(string) (string, bool), name string) (int, bool) {
	v, _ := lookup(name)
	n, err := strconv.Atoi(v)
	return n, err == nil && n > 0
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
