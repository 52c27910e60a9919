// Package bearer checks the Authorization: Bearer token of a Function URL
// that an application calls (the reader, the submit function) against the
// tokens a secret holds, in constant time.
package bearer

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// Auth is how callers prove they may call.
type Auth struct {
	Tokens *secret.Tokens  // the accepted bearer tokens; nil for none
	Source *secret.Watched // where the Tokens are read again; nil for tokens that never change
	// IAM: the Function URL's AWS_IAM auth has checked the caller already,
	// so a token is asked for only when one is configured.
	IAM bool
	// Unset is the cause logged when no token is configured: then nobody
	// may call, unless IAM stands guard.
	Unset error
}

// Check checks an Authorization header against every token held; with
// none configured it refuses every caller, naming Unset as the cause.
func (a Auth) Check(ctx context.Context, authorization string) error {
	tokens := a.Tokens
	if tokens == nil {
		if a.IAM {
			return nil
		}
		return task.Wrap(task.EUNAUTHORIZED, "no token is configured", a.Unset)
	}
	scheme, token, _ := strings.Cut(authorization, " ")
	return a.Source.Check(ctx, func() error {
		if strings.EqualFold(scheme, "Bearer") && tokens.Match(strings.TrimSpace(token)) {
			return nil
		}
		return task.Wrap(task.EUNAUTHORIZED, "missing or invalid bearer token", task.ErrNoMatch)
	})
}

// Setup is the Auth of a function whose tokens the credential gives (its
// secret watched, refreshed every refresh); with none set, and no IAM,
// it logs unset, the reason every caller is refused.
func Setup(ctx context.Context, client secret.Getter, cred envconf.Credential, iam bool, unset error, refresh time.Duration, logger *slog.Logger) (Auth, error) {
	a := Auth{IAM: iam, Unset: unset}
	if !cred.Set() {
		if !iam {
			logger.Error(unset.Error())
		}
		return a, nil
	}
	a.Tokens = &secret.Tokens{}
	var err error
	a.Source, err = secret.Install(ctx, client, cred, a.Tokens.Set, refresh, logger)
	return a, err
}
