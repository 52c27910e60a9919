package submitclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/submitapi"
	"github.com/kiehook/kiehook/functions/submitclient"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
)

// serve runs the submit function's handler behind a Function URL's HTTP;
// its first unavailable answers are 503s.
func serve(tb testing.TB, unavailable int32) *httptest.Server {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	tokens := &secret.Tokens{}
	tokens.Set("tok")
	h := &submitapi.Handler{
		Submissions: dynamo.Submissions{Store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)},
		Queue:       queue.NewSubmissions(env.SQS, env.QueueURL), Auth: bearer.Auth{Tokens: tokens}, TTL: time.Hour,
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New(&capture.Buffer{}, "kiehook", time.Now), Now: time.Now,
	}
	var left atomic.Int32
	left.Store(unavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if left.Add(-1) >= 0 {
			http.Error(w, `{"error":"submission store unavailable"}`, http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(r.Body)
		req := events.LambdaFunctionURLRequest{RawPath: r.URL.Path, Body: string(body), Headers: map[string]string{}}
		for k := range r.Header {
			req.Headers[http.CanonicalHeaderKey(k)] = r.Header.Get(k)
		}
		req.RequestContext.HTTP.Method = r.Method
		resp, _ := h.Handle(r.Context(), req)
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func TestSubmitRetriesWithTheSameKeyAndNeverMakesTwo(t *testing.T) {
	srv := serve(t, 2)
	c := submitclient.New(srv.URL, "tok")
	ctx := context.Background()
	input := map[string]any{"prompt": "a cat", "model": "veo3"}
	first, err := c.Submit(ctx, "veo", input, map[string]string{"user": "7"}, "order-1")
	if err != nil || first.Status != "accepted" || first.SubmissionID == "" {
		t.Fatalf("%+v %v: two 503s are retried", first, err)
	}
	again, err := c.Submit(ctx, "veo", input, map[string]string{"user": "7"}, "order-1")
	if err != nil || again.SubmissionID != first.SubmissionID {
		t.Errorf("%+v %v", again, err)
	}
	got, err := c.Get(ctx, first.SubmissionID)
	if err != nil || got.API != "veo" || got.Labels["user"] != "7" {
		t.Errorf("%+v %v", got, err)
	}
	t.Run("the same key with another body is refused, and not retried", func(t *testing.T) {
		_, err := c.Submit(ctx, "veo", map[string]any{"prompt": "a dog"}, nil, "order-1")
		var refused *submitclient.Error
		if !errors.As(err, &refused) || refused.Status != http.StatusUnprocessableEntity {
			t.Errorf("error %v", err)
		}
	})
}
