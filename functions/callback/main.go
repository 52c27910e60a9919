// Command callback is the Lambda behind the Function URL that the platform
// calls back: it authenticates each call, records the task in DynamoDB with
// one conditional write, queues it for the copier, and answers at once.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func main() {
	lambdamain.Run("callback", build, func(h *Handler) any { return h.Handle })
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*Handler, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.AnsweringRetry)
	if err != nil {
		return nil, err
	}
	auth, err := authFrom(ctx, c, awsCfg, logger)
	if err != nil {
		return nil, err
	}
	if !auth.configured() {
		logger.Error(errUnconfigured.Error())
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.Events(c.EventBus != ""))
	r := &task.Receiver{
		Store:  store,
		Queue:  queue.New(sqs.NewFromConfig(awsCfg), c.QueueURL),
		TTL:    c.RecordTTL,
		Now:    time.Now,
		Logger: logger,
		// The message is sent on a goroutine that outlives the invocation,
		// its stack grown already (run.Workers): 0.02-0.04x hello world.
		Group:       run.NewWorkers(1).Group,
		Submissions: dynamo.Submissions{Store: store}, // they share the table
	}
	m := metrics.New(os.Stdout, c.MetricsNamespace, time.Now)
	if c.EventBus != "" {
		// Only failures end here; they have no objects, so no bucket.
		bus := eventbus.New(eventbridge.NewFromConfig(awsCfg), c.EventBus, "", store, time.Now)
		bus.Metrics = m
		r.Notifier = bus
	}
	return NewHandler(r, auth, logger, m, time.Now), nil
}

// authFrom builds the authentication the configuration asks for. Keys and
// tokens from a secret are watched, so that a rotation reaches warm
// sandboxes.
func authFrom(ctx context.Context, c config, awsCfg aws.Config, logger *slog.Logger) (Auth, error) {
	auth := Auth{AllowUnauthenticated: c.AllowUnauthenticated}
	sm := secretsmanager.NewFromConfig(awsCfg)
	var err error
	if c.Key.Set() {
		auth.Verifier = kie.NewVerifier(c.SignatureTolerance)
		if auth.Keys, err = secret.Install(ctx, sm, c.Key, auth.Verifier.SetKeys, c.SecretRefresh, logger); err != nil {
			return Auth{}, err
		}
	}
	if c.Token.Set() {
		auth.Tokens = &secret.Tokens{}
		if auth.TokenSource, err = secret.Install(ctx, sm, c.Token, auth.Tokens.Set, c.SecretRefresh, logger); err != nil {
			return Auth{}, err
		}
	}
	return auth, nil
}
