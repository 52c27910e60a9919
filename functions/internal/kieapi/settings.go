package kieapi

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/secret"
)

// Settings are the variables that reach the platform's API, shared by the
// copier and the reconciler.
type Settings struct {
	Key       string // KIE_API_KEY
	KeySecret string // KIE_API_KEY_SECRET: a secret holding the key instead
	BaseURL   string // KIE_API_BASE_URL
}

// ReadSettings reads the platform API's variables from env.
func ReadSettings(env *envconf.Env) Settings {
	return Settings{
		Key:       env.String("KIE_API_KEY", ""),
		KeySecret: env.String("KIE_API_KEY_SECRET", ""),
		BaseURL:   env.String("KIE_API_BASE_URL", DefaultBaseURL),
	}
}

// HasKey reports whether an API key is configured, in either form.
func (s Settings) HasKey() bool { return s.Key != "" || s.KeySecret != "" }

// Connect returns a Client with the configured key, read from Secrets
// Manager when it lives there; nil when no key is configured.
func Connect(ctx context.Context, cfg aws.Config, s Settings) (*Client, error) {
	if !s.HasKey() {
		return nil, nil
	}
	key, err := secret.Resolve(ctx, cfg, "KIE_API_KEY_SECRET", s.Key, s.KeySecret)
	if err != nil {
		return nil, err
	}
	return New(s.BaseURL, key), nil
}
