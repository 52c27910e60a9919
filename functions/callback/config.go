package main

import (
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// config is the callback function's environment, as the contract names it.
type config struct {
	Table                string
	QueueURL             string
	Key                  envconf.Credential // WEBHOOK_HMAC_KEY
	Token                envconf.Credential // CALLBACK_TOKEN
	SecretRefresh        time.Duration
	AllowUnauthenticated bool
	SignatureTolerance   time.Duration
	RecordTTL            time.Duration
	MetricsNamespace     string
	EventBus             string
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:                env.Required("TABLE_NAME"),
		QueueURL:             env.Required("QUEUE_URL"),
		Key:                  env.Credential("WEBHOOK_HMAC_KEY"),
		Token:                env.Credential("CALLBACK_TOKEN"),
		SecretRefresh:        env.Duration("SECRET_REFRESH", 5*time.Minute),
		AllowUnauthenticated: env.Bool("ALLOW_UNAUTHENTICATED", false),
		SignatureTolerance:   env.Duration("SIGNATURE_TOLERANCE", 5*time.Minute),
		RecordTTL:            env.Duration("RECORD_TTL", task.DefaultTTL),
		MetricsNamespace:     env.String("METRICS_NAMESPACE", "kiehook"),
		EventBus:             env.String("EVENT_BUS_NAME", ""),
	}
	return c, env.Err()
}
