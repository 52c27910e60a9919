package awsenv_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// TestRetriesGoOnWhileADependencyKeepsFailing makes 120 calls in a row to
// a service that answers 500 to all: each call of a function's policy
// makes all its attempts, where the SDK's default retry quota, empty after
// a few dozen, leaves the later calls a single attempt.
func TestRetriesGoOnWhileADependencyKeepsFailing(t *testing.T) {
	// Back-off only slows the test: the attempts and the quota are what it checks.
	quick := func(r awsenv.Retry) func() aws.Retryer {
		r.MaxBackoff = time.Microsecond
		return r.Retryer
	}
	tests := []struct {
		name        string
		retryer     func() aws.Retryer
		first, last int // attempts of the first and of the 120th call
	}{
		{"the SDK's default quota runs dry", func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxBackoff = time.Microsecond })
		}, 3, 1},
		{"AnsweringRetry", quick(awsenv.AnsweringRetry), awsenv.AnsweringRetry.Attempts, awsenv.AnsweringRetry.Attempts},
		{"BackgroundRetry", quick(awsenv.BackgroundRetry), awsenv.BackgroundRetry.Attempts, awsenv.BackgroundRetry.Attempts},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var attempts atomic.Int64
			failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				attempts.Add(1)
				w.WriteHeader(http.StatusInternalServerError)
			}))
			defer failing.Close()
			cfg, err := awsenv.Config(envconf.Map(map[string]string{
				"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_ENDPOINT_URL": failing.URL,
			}))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Retryer = tt.retryer
			client := dynamodb.NewFromConfig(cfg)
			var made []int64
			for range 120 {
				before := attempts.Load()
				if _, err := client.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String("t")}); err == nil {
					t.Fatal("a call to a service answering 500 succeeded")
				}
				made = append(made, attempts.Load()-before)
			}
			if made[0] != int64(tt.first) || made[len(made)-1] != int64(tt.last) {
				t.Errorf("attempts per call %v, want %d first and %d last", made, tt.first, tt.last)
			}
		})
	}
}
