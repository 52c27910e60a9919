package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/infra/emulators"
)

func TestLoadConfig(t *testing.T) {
	base := func() map[string]string { return map[string]string{"TABLE_NAME": "tasks", "BUCKET_NAME": "objects"} }
	t.Run("defaults follow the contract", func(t *testing.T) {
		c, err := loadConfig(envconf.Map(base()))
		if err != nil || c.LinkTTL != 15*time.Minute || c.Token.Set() || c.IAM {
			t.Errorf("config %+v, error %v", c, err)
		}
	})
	for _, tt := range []struct{ name, variable, value string }{
		{"a missing table is named", "TABLE_NAME", ""},
		{"a missing bucket is named", "BUCKET_NAME", ""},
		{"a link TTL over 12 h is named", "LINK_TTL", "13h"},
		{"an unparsable link TTL is named", "LINK_TTL", "soon"},
		{"a token and a token secret together are named", "READ_TOKEN_SECRET", "arn:secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			vars := base()
			vars["READ_TOKEN"] = "t"
			vars[tt.variable] = tt.value
			if _, err := loadConfig(envconf.Map(vars)); err == nil || !strings.Contains(err.Error(), strings.TrimSuffix(tt.variable, "_SECRET")) {
				t.Errorf("error %v", err)
			}
		})
	}
}

func TestBuildReadsTheTokensFromTheirSecret(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	for k, v := range env.Vars() {
		t.Setenv(k, v)
	}
	env.SetSecret("kiehook/read-token", "old-token")
	t.Setenv("READ_TOKEN_SECRET", "kiehook/read-token")
	t.Setenv("SECRET_REFRESH", "1h")
	h, err := build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	read := func(token string) int {
		resp, _ := h.Handle(context.Background(), get("/tasks/nobody", "Bearer "+token))
		return resp.StatusCode
	}
	if got := read("old-token"); got != 404 {
		t.Errorf("the secret's token: %d", got)
	}
	// Rotation: a token added to the secret reaches a warm sandbox at its
	// first use, well before SECRET_REFRESH.
	env.SetSecret("kiehook/read-token", "old-token,new-token")
	if got := read("new-token"); got != 404 {
		t.Errorf("the new token: %d", got)
	}
	if got := read("wrong"); got != 401 {
		t.Errorf("a wrong token: %d", got)
	}
}
