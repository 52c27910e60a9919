// Command reconciler runs every minute: it polls the platform for pending
// tasks whose callback never came, queues again the records stuck before
// the queue, gives up the copies whose message reached the dead-letter
// queue, and counts the copies that wait too long. The passes are
// functions/internal/reconciler's; this is their wiring: the
// configuration and the clients.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/reconciler"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func main() {
	lambdamain.Run("reconciler", build, func(r *reconciler.Reconciler) any { return r.Handle })
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*reconciler.Reconciler, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.BackgroundRetry)
	if err != nil {
		return nil, err
	}
	platform, keyErr := kieapi.Connect(ctx, awsCfg, c.API, logger)
	if keyErr != nil && !errors.Is(keyErr, kieapi.ErrNoKey) {
		return nil, keyErr
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.Events(c.EventBus != ""))
	sqsClient := sqs.NewFromConfig(awsCfg)
	copies := queue.New(sqsClient, c.QueueURL)
	subs := dynamo.Submissions{Store: store} // they share the table
	receiver := &task.Receiver{Store: store, Queue: copies, TTL: c.RecordTTL, Now: time.Now, Logger: logger}
	r := &reconciler.Reconciler{
		Tasks:        store,
		Receiver:     receiver,
		Queue:        copies,
		Metrics:      metrics.New(os.Stdout, c.Namespace, time.Now),
		Logger:       logger,
		Now:          time.Now,
		PendingAfter: c.PendingAfter,
		StuckAfter:   c.StuckAfter,
		QueuedAlert:  c.QueuedAlert,
		Retention:    c.Retention,
		Limit:        int32(c.Limit),
		NotifyAfter:  c.NotifyAfter,
	}
	if c.DeadLetterQueueURL != "" {
		r.DeadLetters = queue.NewDeadLetters(sqsClient, c.DeadLetterQueueURL)
		r.Leftovers = objects.New(s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = c.PathStyle }), c.Bucket, nil)
		r.Prefix = c.Prefix
	} else {
		logger.Warn("no DEAD_LETTER_QUEUE_URL: copies whose deliveries are used up are not given up")
	}
	if c.SubmitQueueURL != "" {
		r.Submissions = reconciler.Submissions{Store: subs, Queue: queue.NewSubmissions(sqsClient, c.SubmitQueueURL), UnknownAfter: c.SubmitUnknownAfter}
	}
	if c.EventBus != "" {
		bus := eventbus.New(eventbridge.NewFromConfig(awsCfg), c.EventBus, c.Bucket, store, time.Now)
		bus.Metrics = r.Metrics
		r.Notifier, receiver.Notifier = bus, bus
		if r.Submissions.Store != nil {
			r.Submissions.Events, bus.Submissions = bus, subs
		}
	}
	if keyErr == nil {
		r.Platform = platform
	} else {
		logger.Warn(keyErr.Error() + ": pending tasks are not polled")
	}
	return r, nil
}
