package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// config is the callback function's environment, as the contract names it.
type config struct {
	Table                string
	QueueURL             string
	HMACKey              string
	HMACKeySecret        string
	Token                string
	AllowUnauthenticated bool
	SignatureTolerance   time.Duration
	RecordTTL            time.Duration
	MetricsNamespace     string
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:                env.Required("TABLE_NAME"),
		QueueURL:             env.Required("QUEUE_URL"),
		HMACKey:              env.String("WEBHOOK_HMAC_KEY", ""),
		HMACKeySecret:        env.String("WEBHOOK_HMAC_KEY_SECRET", ""),
		Token:                env.String("CALLBACK_TOKEN", ""),
		AllowUnauthenticated: env.Bool("ALLOW_UNAUTHENTICATED", false),
		SignatureTolerance:   env.Duration("SIGNATURE_TOLERANCE", 5*time.Minute),
		RecordTTL:            env.Duration("RECORD_TTL", 720*time.Hour),
		MetricsNamespace:     env.String("METRICS_NAMESPACE", "kiehook"),
	}
	err := env.Err()
	if c.HMACKey != "" && c.HMACKeySecret != "" {
		err = errors.Join(err, errors.New("WEBHOOK_HMAC_KEY and WEBHOOK_HMAC_KEY_SECRET: set one, not both"))
	}
	return c, err
}

// secretGetter is the part of the Secrets Manager API the function uses.
type secretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// readKey fetches the webhook key once per cold start. Surrounding white
// space is dropped: secrets written from files often end in a newline.
func readKey(ctx context.Context, client secretGetter, secretID string) (string, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	if err != nil {
		return "", fmt.Errorf("WEBHOOK_HMAC_KEY_SECRET: read %s: %w", secretID, err)
	}
	key := strings.TrimSpace(aws.ToString(out.SecretString))
	if key == "" {
		return "", fmt.Errorf("WEBHOOK_HMAC_KEY_SECRET: secret %s has no string value", secretID)
	}
	return key, nil
}
