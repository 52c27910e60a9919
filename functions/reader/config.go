package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
)

// MaxLinkTTL is the longest a download link may stay valid.
const MaxLinkTTL = 12 * time.Hour

// config is the reader function's environment, as the contract names it.
type config struct {
	Table         string
	Bucket        string
	Token         envconf.Credential // READ_TOKEN
	IAM           bool               // READ_IAM_AUTH: the Function URL checks callers with AWS_IAM
	LinkTTL       time.Duration
	PathStyle     bool
	SecretRefresh time.Duration
	Namespace     string
}

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:         env.Required("TABLE_NAME"),
		Bucket:        env.Required("BUCKET_NAME"),
		Token:         env.Credential("READ_TOKEN"),
		IAM:           env.Bool("READ_IAM_AUTH", false),
		LinkTTL:       env.Duration("LINK_TTL", 15*time.Minute),
		PathStyle:     env.Bool("S3_USE_PATH_STYLE", false),
		SecretRefresh: env.Duration("SECRET_REFRESH", 5*time.Minute),
		Namespace:     env.String("METRICS_NAMESPACE", "kiehook"),
	}
	err := env.Err()
	if c.LinkTTL <= 0 || c.LinkTTL > MaxLinkTTL {
		err = errors.Join(err, fmt.Errorf("LINK_TTL: between 1s and %v, not %v", MaxLinkTTL, c.LinkTTL))
	}
	return c, err
}
