package secret_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/secret"
)

type secretFunc func(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)

func (f secretFunc) GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	return f(ctx, in, opts...)
}

func TestReadKeyFromSecretsManager(t *testing.T) {
	value := func(s *string, err error) secretFunc {
		return func(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
			if *in.SecretId != "kiehook/webhook-key" {
				t.Errorf("asked for %s", *in.SecretId)
			}
			return &secretsmanager.GetSecretValueOutput{SecretString: s}, err
		}
	}
	str := func(s string) *string { return &s }
	t.Run("the key is read and trimmed of a trailing newline", func(t *testing.T) {
		key, err := secret.Read(context.Background(), value(str("test-key\n"), nil), "WEBHOOK_HMAC_KEY_SECRET", "kiehook/webhook-key")
		if err != nil || key != "test-key" {
			t.Errorf("got %q %v", key, err)
		}
	})
	t.Run("a failed read names the variable", func(t *testing.T) {
		_, err := secret.Read(context.Background(), value(nil, context.DeadlineExceeded), "WEBHOOK_HMAC_KEY_SECRET", "kiehook/webhook-key")
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_HMAC_KEY_SECRET") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("a binary or empty secret is refused", func(t *testing.T) {
		if _, err := secret.Read(context.Background(), value(nil, nil), "WEBHOOK_HMAC_KEY_SECRET", "kiehook/webhook-key"); err == nil {
			t.Error("want an error")
		}
	})
}

func TestInstall(t *testing.T) {
	var got []string
	apply := func(v string) error {
		if v == "" {
			return errors.New("no key")
		}
		got = append(got, v)
		return nil
	}
	t.Run("a plain value is installed for good", func(t *testing.T) {
		w, err := secret.Install(context.Background(), nil, envconf.Credential{Name: "WEBHOOK_HMAC_KEY", Value: "plain-key"}, apply, time.Minute, slog.New(slog.DiscardHandler))
		if err != nil || got[len(got)-1] != "plain-key" || !w.Ready() || w.Reload(context.Background()) {
			t.Errorf("%v %v: want the value held, ready, never read again", got, err)
		}
		w.Refresh(context.Background()) // a nil Watched does nothing
	})
	t.Run("a plain value refused names its variable", func(t *testing.T) {
		_, err := secret.Install(context.Background(), nil, envconf.Credential{Name: "WEBHOOK_HMAC_KEY", Value: ""}, apply, time.Minute, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_HMAC_KEY") {
			t.Errorf("error %v", err)
		}
	})
}
