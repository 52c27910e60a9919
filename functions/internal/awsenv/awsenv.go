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
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
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

// Retry is how a function's SDK clients retry a call that failed in a way
// a retry may pass (a 5xx, a throttle, a reset). Each function chooses
// one, from who waits on its answer.
type Retry struct {
	Attempts   int           // in all, the first included
	MaxBackoff time.Duration // the longest wait before one attempt
}

// AnsweringRetry is for the functions a caller waits on: the callback,
// which answers within task.AnswerBudget (10 s) and whose 503 the platform
// retries, and the reader, which Lambda stops after 10 s. Three attempts,
// waiting 2 s at most between them (after throttles; 150 ms otherwise),
// keep a throttled dependency inside that budget.
var AnsweringRetry = Retry{Attempts: 3, MaxBackoff: time.Second}

// BackgroundRetry is for the functions no caller waits on: the copier,
// whose message SQS delivers again, and the reconciler, which runs again
// the next minute. Eight attempts ride out a longer throttle, waiting
// 1+2+4+5×4 = 27 s at most, before a whole delivery or run is spent.
var BackgroundRetry = Retry{Attempts: 8, MaxBackoff: 5 * time.Second}

// Retryer is the SDK's standard retryer with r's attempts and back-off,
// and without its client-side retry quota (aws-sdk-go-v2 issue 3413). The
// quota, 500 tokens less 14 a retry and refilled by 1 a call that
// succeeds, is empty after some 35 retries; the client then refuses every
// retry ("retry quota exceeded") until hundreds of calls have succeeded,
// so through and after an outage a warm sandbox fails at their first
// error the calls one retry would pass. The quota spares a service a
// fleet of clients retrying at once; a sandbox is one short-lived client,
// whose every call r bounds already.
func (r Retry) Retryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = r.Attempts
		o.MaxBackoff = r.MaxBackoff
		o.RateLimiter = ratelimit.None
	})
}
