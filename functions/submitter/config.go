package main

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// config is the submitter's environment, as the contract names it.
type config struct {
	Table, QueueURL string
	API             kieapi.Settings
	CallbackURL     string
	CallbackToken   envconf.Credential // CALLBACK_TOKEN: the first of its tokens goes into the callback URL
	SecretRefresh   time.Duration
	Rate            int64
	Window, MaxWait time.Duration
	RecordTTL       time.Duration
	EventBus        string
	Namespace       string
}

// The platform takes 20 create calls in any 10 s per account; kiehook
// keeps a little under it by default, for the app's own calls.
const (
	defaultRate   = 18
	defaultWindow = 10 * time.Second
)

func loadConfig(lookup func(string) (string, bool)) (config, error) {
	env := envconf.New(lookup)
	c := config{
		Table:         env.Required("TABLE_NAME"),
		QueueURL:      env.Required("SUBMIT_QUEUE_URL"),
		API:           kieapi.ReadSettings(env),
		CallbackURL:   env.Required("CALLBACK_URL"),
		CallbackToken: env.Credential("CALLBACK_TOKEN"),
		SecretRefresh: env.Duration("SECRET_REFRESH", 5*time.Minute),
		Rate:          env.Int64("SUBMIT_RATE", defaultRate),
		Window:        env.Duration("SUBMIT_WINDOW", defaultWindow),
		MaxWait:       env.Duration("SUBMIT_MAX_WAIT", 24*time.Hour),
		RecordTTL:     env.Duration("RECORD_TTL", task.DefaultTTL),
		EventBus:      env.String("EVENT_BUS_NAME", ""),
		Namespace:     env.String("METRICS_NAMESPACE", "kiehook"),
	}
	err := env.Err()
	if !c.API.Key.Set() {
		err = errors.Join(err, errors.New("KIE_API_KEY: required (or KIE_API_KEY_SECRET): the submitter creates tasks with it"))
	}
	if u, perr := url.Parse(c.CallbackURL); c.CallbackURL != "" && (perr != nil || u.Scheme == "" || u.Host == "") {
		err = errors.Join(err, fmt.Errorf("CALLBACK_URL: %q is not an absolute URL", c.CallbackURL))
	}
	if c.Rate < 1 || c.Window <= 0 {
		err = errors.Join(err, errors.New("SUBMIT_RATE, SUBMIT_WINDOW: at least one call in a window longer than 0"))
	}
	return c, err
}
