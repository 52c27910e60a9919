// Package secret reads string secrets from Secrets Manager (the webhook
// HMAC key, the callback token, the platform's API key) and keeps them
// fresh: read again every refresh, and on demand after a rotation.
package secret

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// Getter is the part of the Secrets Manager API that is used.
type Getter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// Read returns the string value of the secret id, named in errors by the
// variable that configured it. Surrounding white space is dropped: secrets
// written from files often end in a newline.
func Read(ctx context.Context, client Getter, variable, id string) (string, error) {
	out, err := client.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("%s: read %s: %w", variable, id, err)
	}
	value := strings.TrimSpace(aws.ToString(out.SecretString))
	if value == "" {
		return "", fmt.Errorf("%s: secret %s has no string value", variable, id)
	}
	return value, nil
}

// Install gives apply the credential's value: a plain value at once, for
// good (the Watched is nil, which never changes), or its secret's, watched
// (see Watch). A plain value that apply refuses is an error naming its
// variable; a secret that cannot be read yet is not (see Watch).
func Install(ctx context.Context, client Getter, c envconf.Credential, apply func(string) error, refresh time.Duration, logger *slog.Logger) (*Watched, error) {
	if c.SecretID == "" {
		if err := apply(c.Value); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		return nil, nil
	}
	read := func(ctx context.Context) (string, error) { return Read(ctx, client, c.SecretVariable(), c.SecretID) }
	return Watch(ctx, read, apply, refresh, time.Now, logger), nil
}
