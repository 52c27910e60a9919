package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/secret"
)

// keySecret is the webhook key secret as Secrets Manager holds it, with
// the reads a sandbox made of it counted. A reload may read it while a
// background refresh does.
type keySecret struct {
	mu    sync.Mutex
	value string
	err   error
	reads int
}

func (s *keySecret) read(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	return s.value, s.err
}

// rotatingHarness is a warm sandbox that read the secret holding "old-key"
// at its cold start; clock is the sandbox's time.
type rotatingHarness struct {
	*harness
	secret *keySecret
	clock  time.Time
}

func newRotatingHarness(tb testing.TB) *rotatingHarness {
	tb.Helper()
	return newSecretHarness(tb, &keySecret{value: "old-key"})
}

// newSecretHarness is a sandbox that started with the key secret s.
func newSecretHarness(tb testing.TB, s *keySecret) *rotatingHarness {
	tb.Helper()
	r := &rotatingHarness{secret: s, clock: testNow}
	v := kie.NewVerifier(5 * time.Minute)
	keys := secret.Watch(context.Background(), r.secret.read, v.SetKeys, 5*time.Minute, func() time.Time { return r.clock }, slog.New(slog.DiscardHandler))
	r.harness = newHarness(tb, Auth{Tokens: tokens(testToken), Verifier: v, Keys: keys})
	return r
}

// signedWith is a callback for body signed with key.
func signedWith(tb testing.TB, key, body string) events.LambdaFunctionURLRequest {
	tb.Helper()
	req := callback(tb, body)
	cb, _ := kie.Parse([]byte(body))
	req.Headers["x-webhook-signature"] = kie.Sign([]byte(key), cb.TaskID, req.Headers["x-webhook-timestamp"])
	return req
}

func TestKeyRotation(t *testing.T) {
	const url = "https://tempfile.aiquickdraw.com/a.png"
	t.Run("a callback signed with the new key is accepted at once by a warm sandbox once the secret holds both", func(t *testing.T) {
		r := newRotatingHarness(t)
		r.secret.value = "old-key, new-key"
		if status, a := r.call(t, signedWith(t, "new-key", success("rot_new", url))); status != 200 || a.Status != "accepted" {
			t.Fatalf("got %d %+v", status, a)
		}
		if status, _ := r.call(t, signedWith(t, "old-key", success("rot_old", url))); status != 200 {
			t.Errorf("the old key was dropped while the secret still holds it: %d", status)
		}
	})
	t.Run("the keys are read again after SECRET_REFRESH, in the background, without any refusal", func(t *testing.T) {
		r := newRotatingHarness(t)
		r.secret.value = "new-key"
		r.clock = r.clock.Add(5 * time.Minute)
		// The call that finds the keys old goes on with them while they are
		// read again: it waits for no Secrets Manager.
		if status, _ := r.call(t, signedWith(t, "new-key", success("rot_refresh", url))); status != 200 && status != 401 {
			t.Fatalf("got %d", status)
		}
		deadline := time.Now().Add(2 * time.Second)
		for i := 0; ; i++ {
			status, _ := r.call(t, signedWith(t, "old-key", success(fmt.Sprint("rot_old_", i), url)))
			if status == 401 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the old key, removed from the secret, still passes after the refresh: %d", status)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if status, a := r.call(t, signedWith(t, "new-key", success("rot_new_after", url))); status != 200 || a.Status != "accepted" {
			t.Errorf("the new key: %d %+v", status, a)
		}
	})
	t.Run("a flood of forged calls reads the secret at most once per 30 s", func(t *testing.T) {
		r := newRotatingHarness(t)
		for i := range 50 {
			r.clock = r.clock.Add(100 * time.Millisecond)
			if status, _ := r.call(t, signedWith(t, "forged-key", success(fmt.Sprint("rot_forged_", i), url))); status != 401 {
				t.Fatalf("forged call %d answered %d", i, status)
			}
		}
		if r.secret.reads != 2 {
			t.Errorf("%d reads of the secret for 50 forged calls in 5 s, want 2", r.secret.reads)
		}
	})
	t.Run("a failed refresh never fails a request that the held keys verify", func(t *testing.T) {
		r := newRotatingHarness(t)
		r.secret.err = errors.New("secretsmanager: ServiceUnavailable")
		r.clock = r.clock.Add(time.Hour)
		if status, a := r.call(t, signedWith(t, "old-key", success("rot_down", url))); status != 200 || a.Status != "accepted" {
			t.Errorf("got %d %+v", status, a)
		}
		if status, _ := r.call(t, signedWith(t, "new-key", success("rot_down_new", url))); status != 401 {
			t.Errorf("a key the sandbox could not read passed: %d", status)
		}
	})
}

func TestAColdStartWithoutSecretsManagerAnswersUnavailableUntilItCan(t *testing.T) {
	const url = "https://tempfile.aiquickdraw.com/a.png"
	// Secrets Manager throttles or cannot be reached while the sandbox
	// starts: it must not crash (every new sandbox would answer 502), but
	// answer 503, which the platform retries, until the key can be read.
	r := newSecretHarness(t, &keySecret{err: errors.New("secretsmanager: ThrottlingException")})
	if status, a := r.call(t, signedWith(t, "old-key", success("cold_down", url))); status != 503 {
		t.Fatalf("got %d %+v, want 503 while the key cannot be read", status, a)
	}
	if got := r.metrics.String(); !strings.Contains(got, `"Outcome":"unavailable"`) {
		t.Errorf("metrics %s: the 503 must count as unavailable, which the 5xx alarm watches", got)
	}
	r.secret.err, r.secret.value = nil, "old-key"
	r.clock = r.clock.Add(secret.MinRetry)
	if status, a := r.call(t, signedWith(t, "old-key", success("cold_down", url))); status != 200 || a.Status != "accepted" {
		t.Errorf("got %d %+v once the secret could be read", status, a)
	}
}

func TestSeveralTokensAreEachAccepted(t *testing.T) {
	h := newHarness(t, Auth{Tokens: tokens(" old-token , new-token")})
	for _, tt := range []struct {
		token  string
		status int
	}{{"old-token", 200}, {"new-token", 200}, {"old-token , new-token", 401}, {"", 401}, {"other", 401}} {
		t.Run(fmt.Sprintf("token %q is answered %d", tt.token, tt.status), func(t *testing.T) {
			req := callback(t, success("tok_"+fmt.Sprint(len(tt.token)), "https://tempfile.aiquickdraw.com/a.png"))
			req.QueryStringParameters = map[string]string{"token": tt.token}
			if status, a := h.call(t, req); status != tt.status {
				t.Errorf("got %d %+v", status, a)
			}
		})
	}
}
