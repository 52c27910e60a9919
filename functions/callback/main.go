// Command callback is the Lambda behind the Function URL that the platform
// calls back: it authenticates each call, records the task in DynamoDB with
// one conditional write, queues it for the copier, and answers at once.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func main() {
	logger := lambdacontext.NewLogger()
	h, err := build(context.Background(), logger)
	if err != nil {
		logger.Error("callback function cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*Handler, error) {
	c, err := loadConfig(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	// Three attempts with short back-off keep a throttled dependency inside
	// the request budget; the platform's own retry covers the rest.
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryer(func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 3
			o.MaxBackoff = time.Second
		})
	}))
	if err != nil {
		return nil, err
	}
	key, err := secret.Resolve(ctx, awsCfg, "WEBHOOK_HMAC_KEY_SECRET", c.HMACKey, c.HMACKeySecret)
	if err != nil {
		return nil, err
	}
	auth := Auth{Token: c.Token, AllowUnauthenticated: c.AllowUnauthenticated}
	if key != "" {
		auth.Verifier = kie.NewVerifier([]byte(key), c.SignatureTolerance)
	}
	if !auth.configured() {
		logger.Error(errUnconfigured.Error())
	}
	r := &task.Receiver{
		Store: dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table),
		Queue: queue.New(sqs.NewFromConfig(awsCfg), c.QueueURL),
		TTL:   c.RecordTTL,
		Now:   time.Now,
	}
	return NewHandler(r, auth, logger, metrics.New(os.Stdout, c.MetricsNamespace, time.Now), time.Now), nil
}
