package kieapi

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/secret"
)

// Settings are the variables that reach the platform's API, shared by the
// copier and the reconciler.
type Settings struct {
	Key     envconf.Credential // KIE_API_KEY, or the secret KIE_API_KEY_SECRET names
	BaseURL string             // KIE_API_BASE_URL
	Refresh time.Duration      // SECRET_REFRESH: how long a key from a secret is trusted
}

// ReadSettings reads the platform API's variables from env.
func ReadSettings(env *envconf.Env) Settings {
	return Settings{
		Key:     env.Credential("KIE_API_KEY"),
		BaseURL: env.String("KIE_API_BASE_URL", DefaultBaseURL),
		Refresh: env.Duration("SECRET_REFRESH", 5*time.Minute),
	}
}

// ErrNoKey is Connect's answer when no key is configured: a deliberate
// setting (nothing is polled, nothing verified), not a failure.
var ErrNoKey = errors.New("no KIE_API_KEY or KIE_API_KEY_SECRET is set")

// Connect returns a Client with the configured key, or ErrNoKey. A key from
// Secrets Manager is read again every Refresh, and at once when the
// platform refuses it (a rotated key).
func Connect(ctx context.Context, cfg aws.Config, s Settings, logger *slog.Logger) (*Client, error) {
	if !s.Key.Set() {
		return nil, ErrNoKey
	}
	c := New(s.BaseURL, s.Key.Value)
	keys, err := secret.Install(ctx, secretsmanager.NewFromConfig(cfg), s.Key, c.setKey, s.Refresh, logger)
	if err != nil {
		return nil, err
	}
	c.keys = keys
	return c, nil
}
