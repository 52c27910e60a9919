package main

import (
	"testing"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/envconf"
)

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig(envconf.Map(map[string]string{"TABLE_NAME": "t", "SUBMIT_QUEUE_URL": "q", "SUBMIT_TOKEN_SECRET": "arn:s"}))
	if err != nil || c.Token.SecretID != "arn:s" || c.RecordTTL.Hours() != 720 {
		t.Errorf("%+v %v", c, err)
	}
	for name, bad := range map[string]map[string]string{
		"no table":              {"SUBMIT_QUEUE_URL": "q"},
		"no queue":              {"TABLE_NAME": "t"},
		"a token in both forms": {"TABLE_NAME": "t", "SUBMIT_QUEUE_URL": "q", "SUBMIT_TOKEN": "x", "SUBMIT_TOKEN_SECRET": "arn:s"},
	} {
		t.Run(name+" is refused", func(t *testing.T) {
			if _, err := loadConfig(envconf.Map(bad)); err == nil {
				t.Error("want an error")
			}
		})
	}
}

func TestEnvJSONStartsTheFunctionLocally(t *testing.T) {
	vars, err := sample.LocalVars("SubmitFunction")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(envconf.Map(vars)); err != nil {
		t.Errorf("env.json: %v", err)
	}
}
