// Command reader is the Lambda behind its own Function URL that lets an
// application anywhere ask for a task: GET /tasks/<taskId> with a bearer
// token answers the task as an event's detail, and for a stored task,
// download links that need no AWS credentials.
package main

import (
	"context"
	"github.com/kiehook/kiehook/functions/internal/bearer"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
)

func main() {
	lambdamain.Run("reader", build, func(h *Handler) any { return h.Handle })
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*Handler, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.AnsweringRetry)
	if err != nil {
		return nil, err
	}
	h := &Handler{
		// The reader only reads: the store's Get is one GetItem.
		Tasks:   dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.WithoutEvents),
		Links:   s3.NewPresignClient(s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = c.PathStyle })),
		Bucket:  c.Bucket,
		LinkTTL: c.LinkTTL,
		Logger:  logger,
		Metrics: metrics.New(os.Stdout, c.Namespace, time.Now),
		Now:     time.Now,
	}
	h.Auth, err = bearer.Setup(ctx, secretsmanager.NewFromConfig(awsCfg), c.Token, c.IAM, errNoToken, c.SecretRefresh, logger)
	return h, err
}
