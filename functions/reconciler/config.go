package main

import (
	"errors"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// config is the reconciler's environment.
type config struct {
	Table, QueueURL          string
	API                      kieapi.Settings
	PendingAfter, StuckAfter time.Duration
	QueuedAlert, Retention   time.Duration
	RecordTTL                time.Duration
	Limit                    int64
	Namespace                string
	EventBus, Bucket         string
	NotifyAfter              time.Duration
	DeadLetterQueueURL       string
	PathStyle                bool
	Prefix                   string
	SubmitQueueURL           string
	SubmitUnknownAfter       time.Duration
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:              env.Required("TABLE_NAME"),
		QueueURL:           env.Required("QUEUE_URL"),
		API:                kieapi.ReadSettings(env),
		PendingAfter:       env.Duration("PENDING_POLL_AFTER", 2*time.Minute),
		StuckAfter:         env.Duration("STUCK_RECEIVED_AFTER", 5*time.Minute),
		QueuedAlert:        env.Duration("QUEUED_ALERT_AFTER", 30*time.Minute),
		Retention:          env.Duration("PLATFORM_RETENTION", 14*24*time.Hour),
		RecordTTL:          env.Duration("RECORD_TTL", task.DefaultTTL),
		Limit:              env.Int64("RECONCILE_LIMIT", 50),
		Namespace:          env.String("METRICS_NAMESPACE", "kiehook"),
		EventBus:           env.String("EVENT_BUS_NAME", ""),
		Bucket:             env.String("BUCKET_NAME", ""),
		NotifyAfter:        env.Duration("NOTIFY_SWEEP_AFTER", 2*time.Minute),
		DeadLetterQueueURL: env.String("DEAD_LETTER_QUEUE_URL", ""),
		PathStyle:          env.Bool("S3_USE_PATH_STYLE", false),
		Prefix:             env.String("OBJECT_PREFIX", "tasks/"),
		SubmitQueueURL:     env.String("SUBMIT_QUEUE_URL", ""),
		SubmitUnknownAfter: env.Duration("SUBMIT_UNKNOWN_AFTER", 2*time.Hour),
	}
	err := env.Err()
	if c.EventBus != "" && c.Bucket == "" {
		err = errors.Join(err, errors.New("BUCKET_NAME: required with EVENT_BUS_NAME, for the objects of the events the sweep puts"))
	}
	if c.DeadLetterQueueURL != "" && c.Bucket == "" {
		err = errors.Join(err, errors.New("BUCKET_NAME: required with DEAD_LETTER_QUEUE_URL, to clear what the copies of a task given up left"))
	}
	if c.Limit > 1000 {
		err = errors.Join(err, errors.New("RECONCILE_LIMIT: at most 1000 tasks of each kind per run"))
	}
	return c, err
}
