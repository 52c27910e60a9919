package submitapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/submitapi"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
)

const token = "submit-token"

var testNow = time.Unix(1764300000, 0).UTC()

type harness struct {
	env     *emulators.Env
	handler *submitapi.Handler
	queue   *flakyQueue
}

// flakyQueue refuses sends while down.
type flakyQueue struct {
	*queue.Submissions
	down bool
}

func (q *flakyQueue) Send(ctx context.Context, id string, delay time.Duration) error {
	if q.down {
		return errors.New("sqs: service unavailable")
	}
	return q.Submissions.Send(ctx, id, delay)
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	q := &flakyQueue{Submissions: queue.NewSubmissions(env.SQS, env.QueueURL)}
	tokens := &secret.Tokens{}
	if err := tokens.Set(token); err != nil {
		tb.Fatal(err)
	}
	h := &submitapi.Handler{
		Submissions: dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)},
		Queue:       q,
		Auth:        bearer.Auth{Tokens: tokens},
		TTL:         time.Hour,
		Logger:      slog.New(slog.DiscardHandler),
		Metrics:     metrics.New(&capture.Buffer{}, "kiehook", time.Now),
		Now:         func() time.Time { return testNow },
	}
	return &harness{env: env, handler: h, queue: q}
}

func request(method, path, key, body string) events.LambdaFunctionURLRequest {
	req := events.LambdaFunctionURLRequest{RawPath: path, Body: body, Headers: map[string]string{"authorization": "Bearer " + token, "content-type": "application/json"}}
	if key != "" {
		req.Headers["idempotency-key"] = key
	}
	req.RequestContext.HTTP.Method = method
	return req
}

func (h *harness) call(tb testing.TB, req events.LambdaFunctionURLRequest) (int, submitapi.View, string) {
	tb.Helper()
	resp, err := h.handler.Handle(context.Background(), req)
	if err != nil {
		tb.Fatal(err)
	}
	var v submitapi.View
	json.Unmarshal([]byte(resp.Body), &v)
	return resp.StatusCode, v, resp.Body
}

const veo = `{"api":"veo","input":{"prompt":"a cat on a skateboard","model":"veo3"},"labels":{"user":"7"}}`

func TestASubmissionIsAcceptedOnceAndRepeatsFindIt(t *testing.T) {
	h := newHarness(t)
	status, first, body := h.call(t, request(http.MethodPost, "/submissions", "order-1", veo))
	if status != http.StatusAccepted || first.Status != "accepted" || !strings.HasPrefix(first.SubmissionID, "sub_") || first.Labels["user"] != "7" {
		t.Fatalf("%d %s", status, body)
	}
	if n := emulators.QueueDepth(h.env.QueueName); n != 1 {
		t.Errorf("%d messages for the submitter, want 1", n)
	}
	t.Run("the same key and body again is the same submission", func(t *testing.T) {
		respaced := `{ "labels": {"user":"7"}, "input": {"model":"veo3", "prompt":"a cat on a skateboard"}, "api":"veo" }`
		status, again, body := h.call(t, request(http.MethodPost, "/submissions", "order-1", respaced))
		if status != http.StatusOK || again.SubmissionID != first.SubmissionID {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("the same key with another body is refused 422", func(t *testing.T) {
		other := strings.Replace(veo, "a cat", "a dog", 1)
		if status, _, body := h.call(t, request(http.MethodPost, "/submissions", "order-1", other)); status != http.StatusUnprocessableEntity || !strings.Contains(body, "another body") {
			t.Errorf("%d %s", status, body)
		}
	})
	t.Run("it can be read back", func(t *testing.T) {
		status, got, body := h.call(t, request(http.MethodGet, "/submissions/"+first.SubmissionID, "", ""))
		if status != http.StatusOK || got.SubmissionID != first.SubmissionID || got.API != "veo" || got.CreatedAt != "2025-11-28T03:20:00Z" {
			t.Errorf("%d %s", status, body)
		}
	})
}

func TestAFailedSendIsNo202AndTheRepeatSendsIt(t *testing.T) {
	h := newHarness(t)
	h.queue.down = true
	if status, _, body := h.call(t, request(http.MethodPost, "/submissions", "order-2", veo)); status != http.StatusServiceUnavailable || strings.Contains(body, "sqs") {
		t.Fatalf("%d %s: a 503 that names no internals", status, body)
	}
	h.queue.down = false
	if status, v, body := h.call(t, request(http.MethodPost, "/submissions", "order-2", veo)); status != http.StatusOK || v.Status != "accepted" {
		t.Fatalf("%d %s", status, body)
	}
	if n := emulators.QueueDepth(h.env.QueueName); n != 1 {
		t.Errorf("%d messages, want the one the repeat sent", n)
	}
}

func TestBadRequestsAreRefusedAndStoreNothing(t *testing.T) {
	h := newHarness(t)
	unauthorized := request(http.MethodPost, "/submissions", "k1", veo)
	unauthorized.Headers["authorization"] = "Bearer nope"
	big := `{"api":"veo","input":{"prompt":"` + strings.Repeat("x", 70<<10) + `"}}`
	for _, tt := range []struct {
		name   string
		req    events.LambdaFunctionURLRequest
		status int
		says   string
	}{
		{"a wrong token is 401", unauthorized, 401, "bearer token"},
		{"no Idempotency-Key is 400, naming it", request(http.MethodPost, "/submissions", "", veo), 400, "Idempotency-Key"},
		{"an unknown API is 400, naming it", request(http.MethodPost, "/submissions", "k2", `{"api":"dalle","input":{}}`), 400, "api"},
		{"an input with a callBackUrl is 400", request(http.MethodPost, "/submissions", "k3", `{"api":"veo","input":{"callBackUrl":"x"}}`), 400, "callBackUrl"},
		{"a body over 64 KiB is 413", request(http.MethodPost, "/submissions", "k4", big), 413, "larger"},
		{"another method is 405", request(http.MethodPut, "/submissions", "k5", veo), 405, "POST"},
		{"another path is 404", request(http.MethodPost, "/tasks", "k6", veo), 404, "no such route"},
		{"an unknown submission is 404", request(http.MethodGet, "/submissions/sub_000000000000000000000000", "", ""), 404, "no submission"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, _, body := h.call(t, tt.req); status != tt.status || !strings.Contains(body, tt.says) {
				t.Errorf("%d %s, want %d saying %q", status, body, tt.status, tt.says)
			}
		})
	}
	if n := emulators.QueueDepth(h.env.QueueName); n != 0 {
		t.Errorf("%d messages sent for requests refused", n)
	}
}

func TestWithNoTokenConfiguredNobodySubmits(t *testing.T) {
	h := newHarness(t)
	h.handler.Auth = bearer.Auth{Unset: errors.New("no SUBMIT_TOKEN")}
	if status, _, _ := h.call(t, request(http.MethodPost, "/submissions", "k", veo)); status != http.StatusUnauthorized {
		t.Errorf("status %d", status)
	}
}
