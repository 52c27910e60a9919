// Package secret reads a string secret from Secrets Manager, once per cold
// start: the webhook HMAC key, the platform's API key.
package secret

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
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

// Resolve is value, or, when id is set, the string value of the secret id
// names (variable names it in errors). A Secrets Manager client is made
// only then.
func Resolve(ctx context.Context, cfg aws.Config, variable, value, id string) (string, error) {
	if id == "" {
		return value, nil
	}
	return Read(ctx, secretsmanager.NewFromConfig(cfg), variable, id)
}
