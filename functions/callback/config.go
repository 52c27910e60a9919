package main

import (
	"errors"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// config is the callback function's environment, as the contract names it.
type config struct {
	Table                string
	QueueURL             string
	HMACKey              string
	HMACKeySecret        string
	SecretRefresh        time.Duration
	Token                string
	TokenSecret          string
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
		HMACKey:              env.String("WEBHOOK_HMAC_KEY", ""),
		HMACKeySecret:        env.String("WEBHOOK_HMAC_KEY_SECRET", ""),
		SecretRefresh:        env.Duration("SECRET_REFRESH", 5*time.Minute),
		Token:                env.String("CALLBACK_TOKEN", ""),
		TokenSecret:          env.String("CALLBACK_TOKEN_SECRET", ""),
		AllowUnauthenticated: env.Bool("ALLOW_UNAUTHENTICATED", false),
		SignatureTolerance:   env.Duration("SIGNATURE_TOLERANCE", 5*time.Minute),
		RecordTTL:            env.Duration("RECORD_TTL", 720*time.Hour),
		MetricsNamespace:     env.String("METRICS_NAMESPACE", "kiehook"),
		EventBus:             env.String("EVENT_BUS_NAME", ""),
	}
	err := env.Err()
	if c.HMACKey != "" && c.HMACKeySecret != "" {
		err = errors.Join(err, errors.New("WEBHOOK_HMAC_KEY and WEBHOOK_HMAC_KEY_SECRET: set one, not both"))
	}
	if c.Token != "" && c.TokenSecret != "" {
		err = errors.Join(err, errors.New("CALLBACK_TOKEN and CALLBACK_TOKEN_SECRET: set one, not both"))
	}
	return c, err
}
