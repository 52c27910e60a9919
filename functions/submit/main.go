// Command submit is the Lambda behind its own Function URL that takes an
// application's requests to create tasks on the platform (POST
// /submissions) and says what became of them (GET /submissions/<id>).
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/submitapi"
)

func main() {
	lambdamain.Run("submit", build, func(h *submitapi.Handler) any { return h.Handle })
}

var errNoToken = errors.New("no SUBMIT_TOKEN or SUBMIT_TOKEN_SECRET is set: refusing every submission")

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*submitapi.Handler, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.AnsweringRetry)
	if err != nil {
		return nil, err
	}
	h := &submitapi.Handler{
		Submissions: dynamo.Submissions{Store: dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.WithoutEvents)},
		Queue:       queue.NewSubmissions(sqs.NewFromConfig(awsCfg), c.QueueURL),
		TTL:         c.RecordTTL,
		Logger:      logger,
		Metrics:     metrics.New(os.Stdout, c.Namespace, time.Now),
		Now:         time.Now,
	}
	h.Auth, err = bearer.Setup(ctx, secretsmanager.NewFromConfig(awsCfg), c.Token, false, errNoToken, c.SecretRefresh, logger)
	return h, err
}
