package main

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

func localVars(tb testing.TB) map[string]string {
	tb.Helper()
	vars, err := sample.LocalVars("CallbackFunction")
	if err != nil {
		tb.Fatal(err)
	}
	return vars
}

func TestSampleEventsRunThroughTheHandler(t *testing.T) {
	c, err := loadConfig(envconf.Map(localVars(t)))
	if err != nil {
		t.Fatalf("env.json: %v", err)
	}
	h := newHarness(t, Auth{Tokens: tokens(c.Token.Value), Verifier: verifier(c.Key.Value, c.SignatureTolerance)})
	h.handler.now = time.Now // the events' fixed timestamps must pass env.json's window
	// In this order: the duplicate repeats the success.
	tests := []struct {
		file, status string
		code         int
	}{
		{"callback-success.json", "accepted", 200},
		{"callback-duplicate.json", "duplicate", 200},
		{"callback-failure.json", "accepted", 200},
		{"callback-bad-signature.json", "", 401},
	}
	files, _ := fs.Glob(sample.Files, "callback-*.json")
	if len(files) != len(tests) {
		t.Fatalf("%d callback events, %d cases: every event needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file+" is answered "+tt.status, func(t *testing.T) {
			b, err := fs.ReadFile(sample.Files, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			var req events.LambdaFunctionURLRequest
			if err := json.Unmarshal(b, &req); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if status, a := h.call(t, req); status != tt.code || a.Status != tt.status {
				t.Errorf("got %d %+v, want %d %s", status, a, tt.code, tt.status)
			}
		})
	}
	if rec := h.record(t, "fluxk_7f3a9c2e"); rec.Status != task.StatusQueued || rec.Deliveries != 2 {
		t.Errorf("success record %+v", rec)
	}
	if rec := h.record(t, "fluxk_5e77f0c1"); rec.Status != task.StatusFailed {
		t.Errorf("failure record %+v", rec)
	}
}

func TestLoadConfig(t *testing.T) {
	base := func() map[string]string {
		return map[string]string{"TABLE_NAME": "tasks", "QUEUE_URL": "https://sqs/q"}
	}
	t.Run("defaults follow the contract", func(t *testing.T) {
		c, err := loadConfig(envconf.Map(base()))
		if err != nil {
			t.Fatal(err)
		}
		if c.SignatureTolerance != 5*time.Minute || c.RecordTTL != 720*time.Hour || c.AllowUnauthenticated || c.SecretRefresh != 5*time.Minute {
			t.Errorf("config %+v", c)
		}
	})
	tests := []struct {
		name, variable, value, want string
	}{
		{"a missing table is named", "TABLE_NAME", "", "TABLE_NAME: required"},
		{"a missing queue is named", "QUEUE_URL", "", "QUEUE_URL: required"},
		{"an unparsable tolerance is named", "SIGNATURE_TOLERANCE", "five", "SIGNATURE_TOLERANCE"},
		{"an unparsable TTL is named", "RECORD_TTL", "30d", "RECORD_TTL"},
		{"an unparsable opt-out is named", "ALLOW_UNAUTHENTICATED", "maybe", "ALLOW_UNAUTHENTICATED"},
		{"an unparsable secret refresh is named", "SECRET_REFRESH", "often", "SECRET_REFRESH"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := base()
			vars[tt.variable] = tt.value
			if _, err := loadConfig(envconf.Map(vars)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want it to name %s", err, tt.want)
			}
		})
	}
	t.Run("a token and a token secret together are refused", func(t *testing.T) {
		vars := base()
		vars["CALLBACK_TOKEN"], vars["CALLBACK_TOKEN_SECRET"] = "t", "arn:secret"
		if _, err := loadConfig(envconf.Map(vars)); err == nil {
			t.Error("want an error")
		}
	})
	t.Run("a key and a key secret together are refused", func(t *testing.T) {
		vars := base()
		vars["WEBHOOK_HMAC_KEY"], vars["WEBHOOK_HMAC_KEY_SECRET"] = "k", "arn:secret"
		if _, err := loadConfig(envconf.Map(vars)); err == nil {
			t.Error("want an error")
		}
	})
}

func TestBuildRefusesToStartWithoutItsVariables(t *testing.T) {
	t.Setenv("TABLE_NAME", "")
	t.Setenv("QUEUE_URL", "")
	_, err := build(context.Background(), captureLogs(t).logger)
	if err == nil || !strings.Contains(err.Error(), "TABLE_NAME") || !strings.Contains(err.Error(), "QUEUE_URL") {
		t.Errorf("error %v, want both variables named", err)
	}
}

// emulatedEnv starts the emulators and points the function's environment
// at them, as the local stack does.
func emulatedEnv(t *testing.T) *emulators.Env {
	t.Helper()
	env := emulators.New(t, emulators.Options{})
	for k, v := range env.Vars() {
		t.Setenv(k, v)
	}
	return env
}

func TestBuildRefusesAKeyListWithoutAKey(t *testing.T) {
	emulatedEnv(t)
	t.Setenv("WEBHOOK_HMAC_KEY", " , ")
	if _, err := build(context.Background(), captureLogs(t).logger); err == nil || !strings.Contains(err.Error(), "WEBHOOK_HMAC_KEY") {
		t.Errorf("error %v, want the variable named", err)
	}
}

func TestBuildReadsTheKeysFromTheirSecret(t *testing.T) {
	env := emulatedEnv(t)
	env.SetSecret("kiehook/webhook-key", "old-key,"+testKey+"\n")
	t.Setenv("WEBHOOK_HMAC_KEY_SECRET", "kiehook/webhook-key")
	h, err := build(context.Background(), captureLogs(t).logger)
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return testNow }
	req := callback(t, success("built_secret", "https://tempfile.aiquickdraw.com/a.png"))
	if resp, _ := h.Handle(context.Background(), req); resp.StatusCode != 200 {
		t.Errorf("got %d %s", resp.StatusCode, resp.Body)
	}
	t.Run("a secret that cannot be read starts all the same, answers 503 and logs its variable", func(t *testing.T) {
		t.Setenv("WEBHOOK_HMAC_KEY_SECRET", "kiehook/missing")
		logs := captureLogs(t)
		h, err := build(context.Background(), logs.logger)
		if err != nil {
			t.Fatalf("build: %v: a sandbox that cannot start answers 502 to every callback", err)
		}
		h.now = func() time.Time { return testNow }
		if resp, _ := h.Handle(context.Background(), req); resp.StatusCode != 503 {
			t.Errorf("got %d %s", resp.StatusCode, resp.Body)
		}
		if !strings.Contains(logs.String(), "WEBHOOK_HMAC_KEY_SECRET") {
			t.Errorf("log %s does not name the variable", logs.String())
		}
	})
}

func TestBuildReadsTheTokensFromTheirSecret(t *testing.T) {
	env := emulatedEnv(t)
	env.SetSecret("kiehook/callback-token", "old-token")
	t.Setenv("CALLBACK_TOKEN_SECRET", "kiehook/callback-token")
	h, err := build(context.Background(), captureLogs(t).logger)
	if err != nil {
		t.Fatal(err)
	}
	send := func(id, token string) int {
		req := callback(t, success(id, "https://tempfile.aiquickdraw.com/a.png"))
		delete(req.Headers, "x-webhook-signature")
		req.QueryStringParameters = map[string]string{"token": token}
		resp, _ := h.Handle(context.Background(), req)
		return resp.StatusCode
	}
	if got := send("tok_old", "old-token"); got != 200 {
		t.Errorf("the secret's token: %d", got)
	}
	env.SetSecret("kiehook/callback-token", "old-token,new-token")
	if got := send("tok_new", "new-token"); got != 200 {
		t.Errorf("a token added to the secret is refused by a warm sandbox: %d", got)
	}
	if got := send("tok_wrong", "wrong"); got != 401 {
		t.Errorf("a wrong token: %d", got)
	}
}

func TestBuildWiresAFunctionFromItsEnvironment(t *testing.T) {
	emulatedEnv(t)
	t.Setenv("CALLBACK_TOKEN", testToken)
	h, err := build(context.Background(), captureLogs(t).logger)
	if err != nil {
		t.Fatal(err)
	}
	req := callback(t, success("built_1", "https://tempfile.aiquickdraw.com/a.png"))
	delete(req.Headers, "x-webhook-signature")
	resp, _ := h.Handle(context.Background(), req)
	if resp.StatusCode != 200 {
		t.Errorf("got %d %s", resp.StatusCode, resp.Body)
	}
}
