package main

import (
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// config is the submit function's environment.
type config struct {
	Table, QueueURL string
	Token           envconf.Credential // SUBMIT_TOKEN
	RecordTTL       time.Duration
	SecretRefresh   time.Duration
	Namespace       string
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:         env.Required("TABLE_NAME"),
		QueueURL:      env.Required("SUBMIT_QUEUE_URL"),
		Token:         env.Credential("SUBMIT_TOKEN"),
		RecordTTL:     env.Duration("RECORD_TTL", task.DefaultTTL),
		SecretRefresh: env.Duration("SECRET_REFRESH", 5*time.Minute),
		Namespace:     env.String("METRICS_NAMESPACE", "kiehook"),
	}
	return c, env.Err()
}
