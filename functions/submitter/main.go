// Command submitter is the SQS-triggered Lambda that creates on the
// platform the tasks applications submit, paced within the account's
// rate, retried, paused on exhausted credits, never twice for one
// submission.
package main

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/lambdamain"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/submitter"
)

func main() {
	lambdamain.Run("submitter", build, func(s *submitter.Submitter) any { return s.Handle })
}

// build reads the configuration and makes the SDK clients, once per cold start.
func build(ctx context.Context, logger *slog.Logger) (*submitter.Submitter, error) {
	c, awsCfg, err := lambdamain.Config(loadConfig, awsenv.BackgroundRetry)
	if err != nil {
		return nil, err
	}
	platform, err := kieapi.Connect(ctx, awsCfg, c.API, logger)
	if err != nil {
		return nil, err
	}
	store := dynamo.New(dynamodb.NewFromConfig(awsCfg), c.Table, dynamo.Events(c.EventBus != ""))
	subs := dynamo.Submissions{Store: store}
	callback, err := callbackURL(ctx, c, secretsmanager.NewFromConfig(awsCfg), logger)
	if err != nil {
		return nil, err
	}
	s := &submitter.Submitter{
		Submissions: subs, Pace: subs, Account: subs, Platform: platform, Tasks: store,
		Queue:       queue.NewSubmissions(sqs.NewFromConfig(awsCfg), c.QueueURL),
		CallbackURL: callback, Rate: int(c.Rate), Window: c.Window, MaxWait: c.MaxWait, TTL: c.RecordTTL,
		Metrics: metrics.New(os.Stdout, c.Namespace, time.Now), Logger: logger, Now: time.Now,
	}
	if c.EventBus != "" {
		// Submission events carry no objects: no bucket.
		bus := eventbus.New(eventbridge.NewFromConfig(awsCfg), c.EventBus, "", store, time.Now)
		bus.Metrics, bus.Submissions = s.Metrics, subs
		s.Events = bus
	}
	return s, nil
}

// callbackURL is CALLBACK_URL with the callback's token, as it is now: a
// token from a secret is read again every SECRET_REFRESH, so that a
// rotation reaches the URLs the platform is given.
func callbackURL(ctx context.Context, c config, sm secret.Getter, logger *slog.Logger) (func(context.Context) (string, error), error) {
	var token atomic.Pointer[string]
	watched, err := secret.Install(ctx, sm, c.CallbackToken, func(list string) error {
		tokens := envconf.Values(list)
		if len(tokens) == 0 {
			return errors.New("no token")
		}
		token.Store(&tokens[0])
		return nil
	}, c.SecretRefresh, logger)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (string, error) {
		watched.Refresh(ctx)
		t := token.Load()
		if t == nil {
			return "", errors.New("the callback token cannot be read yet")
		}
		u, err := url.Parse(c.CallbackURL)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set(kie.TokenParameter, *t)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}, nil
}
