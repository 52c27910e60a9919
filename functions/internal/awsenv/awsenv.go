// Package awsenv builds the SDK's configuration from the environment Lambda
// gives a function: its region, its role's credentials, and the SDK's own
// endpoint overrides (AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_<SERVICE>) for
// emulators.
//
// It stands in for config.LoadDefaultConfig, which also links every other
// credential source (SSO, STS web identity, IMDS, processes, config files):
// a megabyte of bootstrap that a Lambda function never uses, and a slower
// cold start. The shared config files are therefore not read.
package awsenv

import (
	"context"
	"errors"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Config is the SDK configuration the variables that lookup reads give.
func Config(lookup func(string) (string, bool)) (aws.Config, error) {
	get := func(name string) string {
		v, _ := lookup(name)
		return v
	}
	cfg := aws.Config{
		Region:        get("AWS_REGION"),
		ConfigSources: []any{endpoints(lookup)},
	}
	if cfg.Region == "" {
		cfg.Region = get("AWS_DEFAULT_REGION")
	}
	var errs []error
	if cfg.Region == "" {
		errs = append(errs, errors.New("AWS_REGION: required but not set"))
	}
	key, secret := get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")
	if key == "" || secret == "" {
		errs = append(errs, errors.New("AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY: the function's credentials are not set"))
	}
	// Lambda's credentials last as long as the execution environment.
	cfg.Credentials = credentials.NewStaticCredentialsProvider(key, secret, get("AWS_SESSION_TOKEN"))
	if u := get("AWS_ENDPOINT_URL"); u != "" {
		cfg.BaseEndpoint = aws.String(u)
	}
	return cfg, errors.Join(errs...)
}

// endpoints gives each service client its AWS_ENDPOINT_URL_<SERVICE>, the
// service's SDK id in capitals with spaces as underscores.
type endpoints func(string) (string, bool)

// GetServiceBaseEndpoint is how the SDK's clients ask a configuration
// source for their endpoint.
func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v, ok := e("AWS_ENDPOINT_URL_" + strings.ToUpper(strings.ReplaceAll(sdkID, " ", "_")))
	return v, ok && v != "", nil
}
