package secret_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

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

func TestResolveKeepsAPlainValueWithoutASecret(t *testing.T) {
	v, err := secret.Resolve(context.Background(), aws.Config{}, "WEBHOOK_HMAC_KEY_SECRET", "plain-key", "")
	if v != "plain-key" || err != nil {
		t.Errorf("%q %v", v, err)
	}
}
