package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
)

// The passes are tested in functions/internal/reconciler; these tests
// check what main adds: the configuration, and a built function that
// runs them.

var testNow = time.Unix(1764300000, 0).UTC()

func TestLoadConfig(t *testing.T) {
	c, err := loadConfig(envconf.Map(map[string]string{"TABLE_NAME": "t", "QUEUE_URL": "q"}))
	if err != nil || c.API.BaseURL != kieapi.DefaultBaseURL || c.Retention != 336*time.Hour || c.Limit != 50 {
		t.Errorf("%+v %v", c, err)
	}
	for _, bad := range []map[string]string{
		{"QUEUE_URL": "q"},
		{"TABLE_NAME": "t", "QUEUE_URL": "q", "PLATFORM_RETENTION": "14d"},
		{"TABLE_NAME": "t", "QUEUE_URL": "q", "RECONCILE_LIMIT": "5000"},
		{"TABLE_NAME": "t", "QUEUE_URL": "q", "EVENT_BUS_NAME": "kiehook"},    // the sweep's Task Stored events need the bucket
		{"TABLE_NAME": "t", "QUEUE_URL": "q", "DEAD_LETTER_QUEUE_URL": "dlq"}, // every give-up clears the bucket
		{"TABLE_NAME": "t", "QUEUE_URL": "q", "NOTIFY_SWEEP_AFTER": "soon"},
	} {
		if _, err := loadConfig(envconf.Map(bad)); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
	vars, err := sample.LocalVars("ReconcilerFunction")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadConfig(envconf.Map(vars)); err != nil {
		t.Errorf("env.json: %v", err)
	}
}

func TestBuildWiresTheFunctionFromItsEnvironment(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	api := platform.ServeAPI("api-key")
	t.Cleanup(api.Close)
	for k, v := range env.Vars() {
		t.Setenv(k, v)
	}
	t.Setenv("KIE_API_KEY", "api-key")
	t.Setenv("KIE_API_BASE_URL", api.URL)
	r, err := build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil || r.Platform == nil {
		t.Fatalf("%v, platform %v", err, r)
	}
	store := dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)
	if _, _, err := store.Create(context.Background(), task.NewPending("built_pending", "market", nil, testNow.Add(-time.Hour), time.Hour)); err != nil {
		t.Fatal(err)
	}
	api.Set("market", "built_pending", platform.Failure)
	r.Now = func() time.Time { return testNow }
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rec, _, err := store.Get(context.Background(), "built_pending"); err != nil || rec.Status != task.StatusFailed {
		t.Errorf("status %s, %v", rec.Status, err)
	}
	if evs := env.Events(); len(evs) != 1 || evs[0].DetailType != "Task Failed" {
		t.Errorf("with EVENT_BUS_NAME set, the reconciler put %+v", evs)
	}
	t.Setenv("QUEUE_URL", "")
	if _, err := build(context.Background(), slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "QUEUE_URL") {
		t.Errorf("error %v", err)
	}
}
