package kieapi_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/kiehook/kiehook/functions/internal/awsenv"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/retry"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
)

func TestRecordReadsEveryAPIsShapes(t *testing.T) {
	p := platform.ServeAPI("api-key")
	defer p.Close()
	c := kieapi.New(p.URL, "api-key")
	for _, api := range platform.APIs {
		urls := []string{"https://tempfile.aiquickdraw.com/" + api + "/0.png", "https://tempfile.aiquickdraw.com/" + api + "/1.png"}
		if api == "flux-kontext" {
			urls = urls[:1] // one result per task
		}
		for _, tt := range []struct {
			state string
			want  kie.State
		}{{platform.Generating, kie.Running}, {platform.Success, kie.Succeeded}, {platform.Failure, kie.Failed}} {
			t.Run(api+" "+tt.state, func(t *testing.T) {
				id := api + "_" + tt.state
				p.Set(api, id, tt.state, urls...)
				rec, err := c.Record(context.Background(), api, id)
				if err != nil {
					t.Fatal(err)
				}
				if rec.State != tt.want {
					t.Errorf("state %v, want %v", rec.State, tt.want)
				}
				if tt.want == kie.Succeeded && !slices.Equal(rec.Sources, urls) {
					t.Errorf("sources %v, want %v", rec.Sources, urls)
				}
				if tt.want == kie.Failed && (rec.Code != 501 || rec.Msg == "") {
					t.Errorf("failure %d %q", rec.Code, rec.Msg)
				}
			})
		}
	}
}

func TestRecordFailures(t *testing.T) {
	p := platform.ServeAPI("api-key")
	defer p.Close()
	p.Set("veo", "v1", platform.Success, "https://x/a.mp4")
	t.Run("a 429 is ErrRateLimited", func(t *testing.T) {
		p.RateLimit(true)
		defer p.RateLimit(false)
		if _, err := kieapi.New(p.URL, "api-key").Record(context.Background(), "veo", "v1"); !errors.Is(err, kieapi.ErrRateLimited) {
			t.Errorf("error %v", err)
		}
	})
	for _, tt := range []struct {
		name, body  string
		rateLimited bool
	}{
		{"a 429 in the body's code is ErrRateLimited too", `{"code":429,"msg":"Too many requests, please slow down"}`, true},
		{"a message that merely mentions code 429 is not a rate limit", `{"code":500,"msg":"upstream answered code 429"}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(tt.body)) }))
			defer srv.Close()
			_, err := kieapi.New(srv.URL, "api-key").Record(context.Background(), "veo", "v1")
			if err == nil || errors.Is(err, kieapi.ErrRateLimited) != tt.rateLimited {
				t.Errorf("error %v, want rate limited %v", err, tt.rateLimited)
			}
		})
	}
	t.Run("a wrong key is an error", func(t *testing.T) {
		if _, err := kieapi.New(p.URL, "wrong").Record(context.Background(), "veo", "v1"); err == nil {
			t.Error("want an error")
		}
	})
	t.Run("an unknown task is an error", func(t *testing.T) {
		if _, err := kieapi.New(p.URL, "api-key").Record(context.Background(), "veo", "nope"); err == nil {
			t.Error("want an error")
		}
	})
	t.Run("an API with no endpoint is an error", func(t *testing.T) {
		if _, err := kieapi.New(p.URL, "api-key").Record(context.Background(), "unknown", "v1"); err == nil {
			t.Error("want an error")
		}
	})
	t.Run("a success without results is a failure", func(t *testing.T) {
		p.Set("veo", "v2", platform.Success)
		rec, err := kieapi.New(p.URL, "api-key").Record(context.Background(), "veo", "v2")
		if err != nil || rec.State != kie.Failed {
			t.Errorf("%+v %v", rec, err)
		}
	})
}

func TestConnect(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	t.Run("no key is ErrNoKey, never a nil client without an error", func(t *testing.T) {
		c, err := kieapi.Connect(context.Background(), aws.Config{}, kieapi.Settings{BaseURL: kieapi.DefaultBaseURL}, logger)
		if c != nil || !errors.Is(err, kieapi.ErrNoKey) {
			t.Errorf("%v %v", c, err)
		}
	})
	t.Run("a plain key makes a client that uses it", func(t *testing.T) {
		p := platform.ServeAPI("api-key")
		defer p.Close()
		p.Set("veo", "v1", platform.Generating)
		c, err := kieapi.Connect(context.Background(), aws.Config{}, kieapi.Settings{Key: envconf.Credential{Name: "KIE_API_KEY", Value: "api-key"}, BaseURL: p.URL}, logger)
		if err != nil || c == nil {
			t.Fatalf("%v %v", c, err)
		}
		if _, err := c.Record(context.Background(), "veo", "v1"); err != nil {
			t.Error(err)
		}
	})
	t.Run("a key from its secret is read again when the platform refuses it", func(t *testing.T) {
		env := emulators.New(t, emulators.Options{})
		cfg, err := awsenv.Config(envconf.Map(env.Vars()))
		if err != nil {
			t.Fatal(err)
		}
		env.SetSecret("kiehook/api-key", "old-key")
		p := platform.ServeAPI("old-key")
		defer p.Close()
		p.Set("veo", "v1", platform.Generating)
		key := envconf.Credential{Name: "KIE_API_KEY", SecretID: "kiehook/api-key"}
		c, err := kieapi.Connect(context.Background(), cfg, kieapi.Settings{Key: key, BaseURL: p.URL, Refresh: time.Hour}, logger)
		if err != nil {
			t.Fatal(err)
		}
		// The owner rotates the account's key, and the secret with it.
		p.RotateKey("new-key")
		env.SetSecret("kiehook/api-key", "new-key")
		if _, err := c.Record(context.Background(), "veo", "v1"); err != nil {
			t.Errorf("after the rotation: %v", err)
		}
	})
	t.Run("a key secret that cannot be read yet fails the call, not the start", func(t *testing.T) {
		env := emulators.New(t, emulators.Options{})
		cfg, _ := awsenv.Config(envconf.Map(env.Vars()))
		key := envconf.Credential{Name: "KIE_API_KEY", SecretID: "kiehook/missing"}
		c, err := kieapi.Connect(context.Background(), cfg, kieapi.Settings{Key: key, BaseURL: "http://127.0.0.1:1", Refresh: time.Hour}, logger)
		if err != nil || c == nil {
			t.Fatalf("%v %v: a sandbox that cannot start copies nothing", c, err)
		}
		if _, err := c.Record(context.Background(), "veo", "v1"); err == nil || retry.IsPermanent(err) {
			t.Errorf("error %v, want a transient one", err)
		}
	})
}

func TestThePlatformsWordThatItKnowsNothingIsErrNoRecord(t *testing.T) {
	p := platform.ServeAPI("api-key")
	defer p.Close()
	c := kieapi.New(p.URL, "api-key")
	for name, api := range map[string]string{"an unknown task": "veo", "an API without record-info": "dall-e"} {
		t.Run(name, func(t *testing.T) {
			if _, err := c.Record(context.Background(), api, "nobody"); !errors.Is(err, kie.ErrNoRecord) {
				t.Errorf("error %v", err)
			}
		})
	}
	p.RateLimit(true)
	if _, err := c.Record(context.Background(), "veo", "nobody"); errors.Is(err, kie.ErrNoRecord) {
		t.Error("a rate limit is not the platform's word on the task")
	}
}
