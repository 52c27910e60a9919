// Command copier is the SQS-triggered Lambda that downloads every result of
// a task, safely and streaming, copies it into S3, and marks the task stored.
// The copy itself is functions/internal/copier's; this is its wiring: the
// configuration, the memory plan and the clients.
package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/copier"
	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/objects"
)

func main() {
	lambdamain.Run("copier", build, func(h *copier.Handler) any { return h.Handle })
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*copier.Handler, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.BackgroundRetry)
	if err != nil {
		return nil, err
	}
	parts, heapLimit := memoryPlan(c.MemoryMB)
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(heapLimit)
	}
	s3Client := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = c.PathStyle })
	bucket := objects.New(s3Client, c.Bucket, objects.NewBudget(parts))
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.Events(c.EventBus != ""))
	cp := &copier.Copier{
		Store:   store,
		Sources: download.New(download.Options{Hosts: c.Hosts, AllowPrivate: c.AllowPrivate, MaxBytes: c.MaxBytes}),
		Objects: bucket,
		Prefix:  c.Prefix,
		Metrics: metrics.New(os.Stdout, c.Namespace, time.Now),
		Logger:  logger,
		Now:     time.Now,
	}
	if c.EventBus != "" {
		bus := eventbus.New(eventbridge.NewFromConfig(awsCfg), c.EventBus, c.Bucket, store, time.Now)
		bus.Metrics = cp.Metrics
		cp.Notifier = bus
	}
	if c.Verify {
		// loadConfig made sure a key is configured.
		if cp.Verifier, err = kieapi.Connect(ctx, awsCfg, c.API, logger); err != nil {
			return nil, err
		}
	}
	return copier.NewHandler(cp.Copy, logger), nil
}
