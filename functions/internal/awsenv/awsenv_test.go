package awsenv_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestConfigReachesEachServiceAtItsOwnEndpoint(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	cfg, err := awsenv.Config(envconf.Map(env.Vars()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true }).DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: &env.Table}); err != nil {
		t.Errorf("DynamoDB at AWS_ENDPOINT_URL_DYNAMODB: %v", err)
	}
	env.SetSecret("s", "v")
	if _, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: new("s")}); err != nil {
		t.Errorf("Secrets Manager at AWS_ENDPOINT_URL_SECRETS_MANAGER: %v", err)
	}
}

func TestConfigNamesWhatIsMissing(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"no region and no credentials", map[string]string{}, []string{"AWS_REGION", "AWS_ACCESS_KEY_ID"}},
		{"no secret key", map[string]string{"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k"}, []string{"AWS_SECRET_ACCESS_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := awsenv.Config(envconf.Map(tt.vars))
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not name %s", err, w)
				}
			}
		})
	}
	t.Run("AWS_DEFAULT_REGION stands in for AWS_REGION", func(t *testing.T) {
		cfg, err := awsenv.Config(envconf.Map(map[string]string{"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}))
		if err != nil || cfg.Region != "eu-west-1" {
			t.Errorf("%q %v", cfg.Region, err)
		}
	})
}
