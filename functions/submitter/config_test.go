package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/envconf"
)

func TestLoadConfig(t *testing.T) {
	good := map[string]string{"TABLE_NAME": "t", "SUBMIT_QUEUE_URL": "q", "KIE_API_KEY": "k", "CALLBACK_URL": "https://cb.example/?token=x"}
	c, err := loadConfig(envconf.Map(good))
	if err != nil || c.Rate != 18 || c.Window != 10*time.Second || c.MaxWait != 24*time.Hour {
		t.Errorf("%+v %v", c, err)
	}
	for _, tt := range []struct{ name, variable, value, says string }{
		{"no API key is refused", "KIE_API_KEY", "", "KIE_API_KEY"},
		{"a callback URL that is not absolute is refused", "CALLBACK_URL", "/relative", "CALLBACK_URL"},
		{"a rate of none is refused", "SUBMIT_RATE", "0", "SUBMIT_RATE"},
		{"a window that is no duration is refused", "SUBMIT_WINDOW", "10", "SUBMIT_WINDOW"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range good {
				env[k] = v
			}
			env[tt.variable] = tt.value
			if _, err := loadConfig(envconf.Map(env)); err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v, want one naming %s", err, tt.says)
			}
		})
	}
}

func TestTheCallbackURLCarriesTheFirstToken(t *testing.T) {
	c, err := loadConfig(envconf.Map(map[string]string{"TABLE_NAME": "t", "SUBMIT_QUEUE_URL": "q", "KIE_API_KEY": "k",
		"CALLBACK_URL": "https://abc.lambda-url.eu-west-1.on.aws/", "CALLBACK_TOKEN": "new, old"}))
	if err != nil {
		t.Fatal(err)
	}
	url, err := callbackURL(context.Background(), c, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := url(context.Background()); err != nil || got != "https://abc.lambda-url.eu-west-1.on.aws/?token=new" {
		t.Errorf("%q %v: the token the callback takes first, while a rotation holds two", got, err)
	}
}

func TestEnvJSONStartsTheFunctionLocally(t *testing.T) {
	vars, err := sample.LocalVars("SubmitterFunction")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(envconf.Map(vars)); err != nil {
		t.Errorf("env.json: %v", err)
	}
}
