package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
)

const (
	testKey   = "test-key"
	testToken = "s3cret-token"
)

var testNow = time.Unix(1764300000, 0)

// harness is the callback function wired to the emulators.
type harness struct {
	env     *emulators.Env
	store   *dynamo.Store
	handler *Handler
	send    *switchableSender
	logs    *logCapture
	metrics *capture.Buffer
}

// switchableSender lets a test make the queue fail, then recover.
type switchableSender struct {
	mu   sync.Mutex
	real queue.Sender
	err  error
}

func (s *switchableSender) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.real.SendMessage(ctx, in, opts...)
}

func (s *switchableSender) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func newHarness(tb testing.TB, auth Auth) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	return newHarnessOn(tb, env, env.DynamoDB, auth)
}

func newHarnessOn(tb testing.TB, env *emulators.Env, db dynamo.Client, auth Auth) *harness {
	tb.Helper()
	h := &harness{env: env, store: dynamo.New(db, env.Table, dynamo.WithEvents), send: &switchableSender{real: env.SQS}, logs: captureLogs(tb), metrics: &capture.Buffer{}}
	clock := func() time.Time { return testNow }
	r := &task.Receiver{Store: h.store, Queue: queue.New(h.send, env.QueueURL), TTL: 720 * time.Hour, Now: clock,
		Notifier: eventbus.New(env.EventBridge, env.Bus, "", h.store, clock), Logger: h.logs.logger,
		Submissions: dynamo.Submissions{Store: h.store}}
	h.handler = NewHandler(r, auth, h.logs.logger, metrics.New(h.metrics, "kiehook", clock), clock)
	return h
}

func signed() Auth {
	return Auth{Tokens: tokens(testToken), Verifier: verifier(testKey, 5*time.Minute)}
}

// tokens holds list, as CALLBACK_TOKEN gives it.
func tokens(list string) *secret.Tokens {
	t := &secret.Tokens{}
	if err := t.Set(list); err != nil {
		panic(err)
	}
	return t
}

// verifier holds keys, a list as WEBHOOK_HMAC_KEY gives it.
func verifier(keys string, tolerance time.Duration) *kie.Verifier {
	v := kie.NewVerifier(tolerance)
	if err := v.SetKeys(keys); err != nil {
		panic(err)
	}
	return v
}

// callback is a Function URL request as the platform sends it: signed,
// with the token, for body.
func callback(tb testing.TB, body string) events.LambdaFunctionURLRequest {
	tb.Helper()
	cb, _ := kie.Parse([]byte(body))
	ts := fmt.Sprint(testNow.Unix())
	return events.LambdaFunctionURLRequest{
		Headers: map[string]string{
			"content-type":        "application/json",
			"x-webhook-timestamp": ts,
			"x-webhook-signature": kie.Sign([]byte(testKey), cb.TaskID, ts),
		},
		RawQueryString:        "token=" + testToken,
		QueryStringParameters: map[string]string{"token": testToken},
		RequestContext:        events.LambdaFunctionURLRequestContext{RequestID: "req-1", HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: http.MethodPost}},
		Body:                  body,
	}
}

// withQuery gives req the query rawQuery, as a Function URL does: raw, and
// parsed with a repeated parameter's values joined by commas.
func withQuery(req events.LambdaFunctionURLRequest, rawQuery string) events.LambdaFunctionURLRequest {
	req.RawQueryString = rawQuery
	req.QueryStringParameters = map[string]string{}
	values, _ := url.ParseQuery(rawQuery)
	for k, v := range values {
		req.QueryStringParameters[k] = strings.Join(v, ",")
	}
	return req
}

func success(id string, urls ...string) string {
	b, _ := json.Marshal(map[string]any{"code": 200, "msg": "success", "data": map[string]any{"taskId": id, "resultUrls": urls}})
	return string(b)
}

func failure(id string, code int) string {
	return fmt.Sprintf(`{"code":%d,"msg":"Image generation failed","data":{"taskId":%q,"resultUrls":[]}}`, code, id)
}

func (h *harness) call(tb testing.TB, req events.LambdaFunctionURLRequest) (int, answer) {
	tb.Helper()
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: req.RequestContext.RequestID})
	resp, err := h.handler.Handle(ctx, req)
	if err != nil {
		tb.Fatalf("Handle returned error %v: it must always answer", err)
	}
	if resp.Headers["Content-Type"] != "application/json" {
		tb.Errorf("Content-Type %q, want application/json", resp.Headers["Content-Type"])
	}
	var a answer
	if err := json.Unmarshal([]byte(resp.Body), &a); err != nil {
		tb.Fatalf("answer %q is not JSON: %v", resp.Body, err)
	}
	return resp.StatusCode, a
}

func (h *harness) record(tb testing.TB, id string) task.Task {
	tb.Helper()
	t, found := h.find(tb, id)
	if !found {
		tb.Fatalf("record %s: not found", id)
	}
	return t
}

func (h *harness) find(tb testing.TB, id string) (task.Task, bool) {
	tb.Helper()
	t, found, err := h.store.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("record %s: %v", id, err)
	}
	return t, found
}

func (h *harness) messages(tb testing.TB) []string {
	tb.Helper()
	var ids []string
	for {
		out, err := h.env.SQS.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &h.env.QueueURL, MaxNumberOfMessages: 10})
		if err != nil {
			tb.Fatalf("receive: %v", err)
		}
		if len(out.Messages) == 0 {
			return ids
		}
		for _, m := range out.Messages {
			msg, err := schema.DecodeCopyMessage(aws.ToString(m.Body))
			if err != nil {
				tb.Fatal(err)
			}
			ids = append(ids, msg.TaskID)
		}
	}
}

// logCapture is the function's real logger (lambdacontext.NewLogger, which
// adds the request id) writing to a file instead of stdout.
type logCapture struct {
	logger *slog.Logger
	file   *os.File
}

func captureLogs(tb testing.TB) *logCapture {
	tb.Helper()
	f, err := os.CreateTemp(tb.TempDir(), "log")
	if err != nil {
		tb.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = f // NewLogger binds the writer it finds now.
	logger := lambdacontext.NewLogger()
	os.Stdout = stdout
	tb.Cleanup(func() { f.Close() })
	return &logCapture{logger: logger, file: f}
}

func (l *logCapture) String() string {
	b, _ := os.ReadFile(l.file.Name())
	return string(b)
}

func TestHTTPRules(t *testing.T) {
	h := newHarness(t, signed())
	ok := success("rules_1", "https://tempfile.aiquickdraw.com/a.png")
	tests := []struct {
		name   string
		edit   func(*events.LambdaFunctionURLRequest)
		status int
		errMsg string
	}{
		{"a GET is refused with 405", func(r *events.LambdaFunctionURLRequest) { r.RequestContext.HTTP.Method = http.MethodGet }, 405, "only POST"},
		{"a body over 1 MiB is refused with 413", func(r *events.LambdaFunctionURLRequest) { r.Body = strings.Repeat(" ", MaxBodyBytes+1) }, 413, "larger than"},
		{"a base64 body over 1 MiB is refused with 413", func(r *events.LambdaFunctionURLRequest) {
			r.Body, r.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(strings.Repeat(" ", MaxBodyBytes+1))), true
		}, 413, "larger than"},
		{"a base64 body that does not decode is refused with 400", func(r *events.LambdaFunctionURLRequest) { r.Body, r.IsBase64Encoded = "***", true }, 400, "base64"},
		{"text/plain is refused with 415", func(r *events.LambdaFunctionURLRequest) { r.Headers["content-type"] = "text/plain" }, 415, "application/json"},
		{"a missing content type is refused with 415", func(r *events.LambdaFunctionURLRequest) { delete(r.Headers, "content-type") }, 415, "application/json"},
		{"application/jsonp is refused with 415", func(r *events.LambdaFunctionURLRequest) { r.Headers["content-type"] = "application/jsonp" }, 415, "application/json"},
		{"a missing token is refused with 401", func(r *events.LambdaFunctionURLRequest) { r.QueryStringParameters = nil }, 401, "token"},
		{"a wrong token is refused with 401", func(r *events.LambdaFunctionURLRequest) { r.QueryStringParameters["token"] = testToken + "x" }, 401, "token"},
		{"a missing signature is refused with 401", func(r *events.LambdaFunctionURLRequest) { delete(r.Headers, "x-webhook-signature") }, 401, "X-Webhook-Signature"},
		{"a missing timestamp is refused with 401", func(r *events.LambdaFunctionURLRequest) { delete(r.Headers, "x-webhook-timestamp") }, 401, "X-Webhook-Timestamp"},
		{"a stale timestamp is refused with 401", func(r *events.LambdaFunctionURLRequest) {
			r.Headers["x-webhook-timestamp"] = fmt.Sprint(testNow.Add(-6 * time.Minute).Unix())
		}, 401, "window"},
		{"a signature for another task is refused with 401", func(r *events.LambdaFunctionURLRequest) {
			r.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), "other", r.Headers["x-webhook-timestamp"])
		}, 401, "X-Webhook-Signature"},
		{"a body without a task id cannot be verified and is refused with 401", func(r *events.LambdaFunctionURLRequest) { r.Body = `{"code":200}` }, 401, "X-Webhook-Signature"},
		{"signed invalid JSON is refused with 401, revealing nothing about the body", func(r *events.LambdaFunctionURLRequest) { r.Body = `{"code":` }, 401, "X-Webhook-Signature"},
		{"a signed body with a non-integer code is refused with 400", func(r *events.LambdaFunctionURLRequest) {
			r.Body = `{"code":"200","data":{"taskId":"rules_1"}}`
		}, 400, "code"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := callback(t, ok)
			tt.edit(&req)
			status, a := h.call(t, req)
			if status != tt.status || !strings.Contains(a.Error, tt.errMsg) {
				t.Errorf("got %d %+v, want %d with an error about %q", status, a, tt.status, tt.errMsg)
			}
		})
	}
	t.Run("a 405 says which method is allowed", func(t *testing.T) {
		req := callback(t, ok)
		req.RequestContext.HTTP.Method = http.MethodPut
		resp, _ := h.handler.Handle(context.Background(), req)
		if resp.Headers["Allow"] != "POST" {
			t.Errorf("Allow = %q, want POST", resp.Headers["Allow"])
		}
	})
	t.Run("nothing refused was written anywhere", func(t *testing.T) {
		if _, found, _ := h.store.Get(context.Background(), "rules_1"); found {
			t.Error("a refused callback left a record")
		}
		if ids := h.messages(t); len(ids) != 0 {
			t.Errorf("a refused callback left messages %v", ids)
		}
	})
}

func TestAcceptsWhatThePlatformSends(t *testing.T) {
	h := newHarness(t, signed())
	tests := []struct {
		name string
		edit func(*events.LambdaFunctionURLRequest)
	}{
		{"a charset parameter in any case", func(r *events.LambdaFunctionURLRequest) {
			r.Headers["content-type"] = "Application/JSON; Charset=UTF-8"
		}},
		{"headers in their original case", func(r *events.LambdaFunctionURLRequest) {
			for _, name := range []string{"content-type", "x-webhook-timestamp", "x-webhook-signature"} {
				v := r.Headers[name]
				delete(r.Headers, name)
				r.Headers[http.CanonicalHeaderKey(name)] = v
			}
		}},
		{"a base64-encoded body", func(r *events.LambdaFunctionURLRequest) {
			r.Body, r.IsBase64Encoded = base64.StdEncoding.EncodeToString([]byte(r.Body)), true
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name+" is accepted", func(t *testing.T) {
			req := callback(t, success(fmt.Sprintf("accept_%d", i), "https://tempfile.aiquickdraw.com/a.png"))
			tt.edit(&req)
			if status, a := h.call(t, req); status != 200 || a.Status != "accepted" {
				t.Errorf("got %d %+v, want 200 accepted", status, a)
			}
		})
	}
}

func TestAuthenticationModes(t *testing.T) {
	body := success("auth_1", "https://tempfile.aiquickdraw.com/a.png")
	unsigned := func(r *events.LambdaFunctionURLRequest) {
		delete(r.Headers, "x-webhook-signature")
		delete(r.Headers, "x-webhook-timestamp")
	}
	tests := []struct {
		name   string
		auth   Auth
		edit   func(*events.LambdaFunctionURLRequest)
		status int
	}{
		{"token only accepts a call without a signature", Auth{Tokens: tokens(testToken)}, unsigned, 200},
		{"signature only accepts a call without a token", Auth{Verifier: verifier(testKey, time.Minute)}, func(r *events.LambdaFunctionURLRequest) { r.QueryStringParameters = nil }, 200},
		{"both refuse a call with the token but no signature", signed(), unsigned, 401},
		{"an explicit opt-out accepts an anonymous call", Auth{AllowUnauthenticated: true}, func(r *events.LambdaFunctionURLRequest) { unsigned(r); r.QueryStringParameters = nil }, 200},
		{"no configuration at all refuses every call with 500", Auth{}, func(*events.LambdaFunctionURLRequest) {}, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.auth)
			req := callback(t, body)
			tt.edit(&req)
			if status, a := h.call(t, req); status != tt.status {
				t.Errorf("got %d %+v, want %d", status, a, tt.status)
			}
		})
	}
	t.Run("the refusal of an unconfigured function is logged with its reason", func(t *testing.T) {
		h := newHarness(t, Auth{})
		_, a := h.call(t, callback(t, body))
		if !strings.Contains(h.logs.String(), "ALLOW_UNAUTHENTICATED") || strings.Contains(a.Error, "ALLOW_UNAUTHENTICATED") {
			t.Errorf("answer %q, log %q: the reason belongs in the log only", a.Error, h.logs.String())
		}
	})
}

func TestTaskLifeCycle(t *testing.T) {
	const url = "https://tempfile.aiquickdraw.com/a.png"
	t.Run("a new success is created, queued once and accepted", func(t *testing.T) {
		h := newHarness(t, signed())
		status, a := h.call(t, callback(t, success("life_new", url)))
		if status != 200 || a.Status != "accepted" || a.TaskID != "life_new" {
			t.Fatalf("got %d %+v", status, a)
		}
		rec := h.record(t, "life_new")
		if rec.Status != task.StatusQueued || rec.Deliveries != 1 || rec.Code != 200 || rec.API != "midjourney" || len(rec.Sources) != 1 {
			t.Errorf("record %+v", rec)
		}
		if !rec.ReceivedAt.Equal(testNow) || !rec.ExpiresAt.Equal(testNow.Add(720*time.Hour)) {
			t.Errorf("receivedAt %v expiresAt %v", rec.ReceivedAt, rec.ExpiresAt)
		}
		if ids := h.messages(t); len(ids) != 1 || ids[0] != "life_new" {
			t.Errorf("queued %v, want [life_new]", ids)
		}
	})
	t.Run("a new failure is recorded as failed and not queued", func(t *testing.T) {
		h := newHarness(t, signed())
		for _, code := range []int{400, 500, 501} {
			id := fmt.Sprint("life_fail_", code)
			if status, a := h.call(t, callback(t, failure(id, code))); status != 200 || a.Status != "accepted" {
				t.Fatalf("got %d %+v", status, a)
			}
			if rec := h.record(t, id); rec.Status != task.StatusFailed || rec.Code != code || rec.Msg != "Image generation failed" {
				t.Errorf("record %+v", rec)
			}
		}
		if ids := h.messages(t); len(ids) != 0 {
			t.Errorf("queued %v, want nothing", ids)
		}
	})
	t.Run("a success without result URLs is recorded as failed", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, success("life_empty")))
		if rec := h.record(t, "life_empty"); rec.Status != task.StatusFailed {
			t.Errorf("status %s, want failed", rec.Status)
		}
	})
	t.Run("a repeat is a duplicate that only counts the delivery", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, success("life_dup", url)))
		h.messages(t)
		for range 2 {
			if status, a := h.call(t, callback(t, success("life_dup", url))); status != 200 || a.Status != "duplicate" {
				t.Fatalf("got %d %+v", status, a)
			}
		}
		if rec := h.record(t, "life_dup"); rec.Deliveries != 3 || rec.Status != task.StatusQueued {
			t.Errorf("record %+v", rec)
		}
		// A success is sent while its record is read: each repeat's
		// message finds the task queued or stored, and the copier copies
		// it once (functions/internal/copier: TestFinishedTasksAreNotDownloadedAgain, TestTwoCopiersOfOneTaskNeverRuinEachOther).
		if ids := h.messages(t); len(ids) != 2 || ids[0] != "life_dup" || ids[1] != "life_dup" {
			t.Errorf("the repeats sent %v, want one message each", ids)
		}
	})
	t.Run("a success after a failure wins and is queued", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, failure("life_late", 500)))
		if status, a := h.call(t, callback(t, success("life_late", url))); status != 200 || a.Status != "accepted" {
			t.Fatalf("got %d %+v", status, a)
		}
		rec := h.record(t, "life_late")
		if rec.Status != task.StatusQueued || rec.Code != 200 || rec.Msg != "success" || len(rec.Sources) != 1 || rec.Deliveries != 2 {
			t.Errorf("record %+v", rec)
		}
		if ids := h.messages(t); len(ids) != 1 {
			t.Errorf("queued %v, want one", ids)
		}
	})
	t.Run("a failure after a failure is a duplicate", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, failure("life_ff", 500)))
		if _, a := h.call(t, callback(t, failure("life_ff", 501))); a.Status != "duplicate" {
			t.Errorf("got %+v", a)
		}
		if rec := h.record(t, "life_ff"); rec.Code != 500 || rec.Status != task.StatusFailed {
			t.Errorf("the first failure must stay: %+v", rec)
		}
	})
	t.Run("a failure after a success changes nothing", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, success("life_sf", url)))
		if _, a := h.call(t, callback(t, failure("life_sf", 500))); a.Status != "duplicate" {
			t.Errorf("got %+v", a)
		}
		if rec := h.record(t, "life_sf"); rec.Status != task.StatusQueued || rec.Code != 200 {
			t.Errorf("record %+v", rec)
		}
	})
	for _, status := range []task.Status{task.StatusStored, task.StatusCopyFailed} {
		t.Run("a repeat of a "+string(status)+" task leaves it "+string(status), func(t *testing.T) {
			h := newHarness(t, signed())
			h.seed(t, task.Task{ID: "life_done", Status: status, Code: 200, Sources: []string{url}, Deliveries: 1})
			if _, a := h.call(t, callback(t, success("life_done", url))); a.Status != "duplicate" {
				t.Errorf("got %+v", a)
			}
			if rec := h.record(t, "life_done"); rec.Status != status || rec.Deliveries != 2 {
				t.Errorf("record %+v", rec)
			}
			// Its message, sent while the record was read, is ended by
			// the copier on reading it (functions/internal/copier: TestFinishedTasksAreNotDownloadedAgain).
			if ids := h.messages(t); len(ids) != 1 {
				t.Errorf("sent %v, want the one message sent with the read", ids)
			}
		})
	}
	t.Run("a pending task's first callback proceeds as a new one", func(t *testing.T) {
		h := newHarness(t, signed())
		h.seed(t, task.Task{ID: "life_pending", Status: task.StatusPending, API: "veo"})
		if _, a := h.call(t, callback(t, success("life_pending", url))); a.Status != "accepted" {
			t.Fatalf("got %+v", a)
		}
		rec := h.record(t, "life_pending")
		if rec.Status != task.StatusQueued || rec.Deliveries != 1 || !rec.ReceivedAt.Equal(testNow) || len(rec.Sources) != 1 {
			t.Errorf("record %+v", rec)
		}
	})
}

func (h *harness) seed(tb testing.TB, t task.Task) {
	tb.Helper()
	if _, created, err := h.store.Create(context.Background(), t); err != nil || !created {
		tb.Fatalf("seed %s: created=%v err=%v", t.ID, created, err)
	}
}

func TestConcurrentRepeatsCreateOneRecord(t *testing.T) {
	h := newHarness(t, signed())
	const n = 16
	body := success("race_1", "https://tempfile.aiquickdraw.com/a.png")
	outcomes := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			status, a := h.call(t, callback(t, body))
			outcomes <- fmt.Sprint(status, " ", a.Status)
		})
	}
	wg.Wait()
	close(outcomes)
	for o := range outcomes {
		// A repeat that finds the record still received (its creator has not
		// queued it yet) queues it too: the contract cannot tell that from an
		// attempt that died, and the copier is idempotent.
		if o != "200 accepted" && o != "200 duplicate" {
			t.Errorf("outcome %s, want every repeat answered 200", o)
		}
	}
	if rec := h.record(t, "race_1"); rec.Deliveries != n || rec.Status != task.StatusQueued {
		t.Errorf("record %+v, want one record that counted %d deliveries", rec, n)
	}
	ids := h.messages(t)
	if len(ids) == 0 {
		t.Error("the task was never queued")
	}
	for _, id := range ids {
		if id != "race_1" {
			t.Errorf("queued %q", id)
		}
	}
}

func TestFailingQueueLosesNothing(t *testing.T) {
	h := newHarness(t, signed())
	body := success("queue_down", "https://tempfile.aiquickdraw.com/a.png")
	h.send.fail(errors.New("sqs: connection refused by 10.0.0.7"))

	status, a := h.call(t, callback(t, body))
	if status != 503 {
		t.Fatalf("got %d %+v, want 503 so the platform retries", status, a)
	}
	if strings.Contains(a.Error, "10.0.0.7") {
		t.Errorf("answer %q leaks the internal error", a.Error)
	}
	// The record was written while the send failed: it waits for the
	// message that the platform's retry sends.
	if rec := h.record(t, "queue_down"); rec.Status != task.StatusQueued {
		t.Errorf("status %s, want queued", rec.Status)
	}
	logs := h.logs.String()
	for _, want := range []string{"queue_down", "req-1", "10.0.0.7"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log %q lacks %q", logs, want)
		}
	}

	h.send.fail(nil)
	if status, a := h.call(t, callback(t, body)); status != 200 || a.Status != "duplicate" {
		t.Fatalf("retry got %d %+v, want 200 duplicate: the record was there", status, a)
	}
	if rec := h.record(t, "queue_down"); rec.Status != task.StatusQueued || rec.Deliveries != 2 {
		t.Errorf("record %+v", rec)
	}
	if ids := h.messages(t); len(ids) != 1 {
		t.Errorf("queued %v, want the retry's message", ids)
	}
}

// recordFirst is an SQS that takes a message only once the task's record
// exists: a callback that waited for the send before writing never gets
// there.
type recordFirst struct {
	real  queue.Sender
	store *dynamo.Store
	id    string
}

func (s recordFirst) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, found, err := s.store.Get(ctx, s.id); err == nil && found {
			return s.real.SendMessage(ctx, in, opts...)
		}
	}
	return nil, errors.New("the record was not written while the message was sent")
}

func TestASuccessIsSentWhileItsRecordIsWritten(t *testing.T) {
	// Two round trips at once, not one after the other: the answer's
	// latency is the slower of the two.
	h := newHarness(t, signed())
	h.send.real = recordFirst{real: h.env.SQS, store: h.store, id: "at_once"}
	if status, a := h.call(t, callback(t, success("at_once", "https://tempfile.aiquickdraw.com/a.png"))); status != 200 || a.Status != "accepted" {
		t.Fatalf("got %d %+v", status, a)
	}
	if ids := h.messages(t); len(ids) != 1 || ids[0] != "at_once" {
		t.Errorf("sent %v", ids)
	}
}

func TestFailingTableAnswers503(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	down := dynamodb.NewFromConfig(emulators.Config(), func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String("http://127.0.0.1:1") // nothing listens there
	})
	h := newHarnessOn(t, env, down, signed())
	status, a := h.call(t, callback(t, success("table_down", "https://tempfile.aiquickdraw.com/a.png")))
	if status != 503 || a.Error != "task store unavailable" {
		t.Errorf("got %d %+v, want 503 task store unavailable", status, a)
	}
	// The message went; with no record and no 200, the platform
	// calls again, and the copier drops this one once the answer budget
	// has passed (functions/internal/copier: TestAMessageWithoutARecord).
	if ids := h.messages(t); len(ids) != 1 {
		t.Errorf("sent %v, want the one message sent with the record", ids)
	}
	if !strings.Contains(h.logs.String(), "table_down") {
		t.Errorf("log %q lacks the task id", h.logs.String())
	}
}

func TestEveryCallbackIsCountedByOutcome(t *testing.T) {
	h := newHarness(t, signed())
	ok := success("metric_1", "https://tempfile.aiquickdraw.com/a.png")
	h.call(t, callback(t, ok))
	h.call(t, callback(t, ok))
	forged := callback(t, ok)
	forged.Headers["x-webhook-signature"] = kie.Sign([]byte("not-the-key"), "metric_1", forged.Headers["x-webhook-timestamp"])
	h.call(t, forged)
	bad := callback(t, `{"code":"x","data":{"taskId":"metric_2"}}`)
	h.call(t, bad)
	h.send.fail(errors.New("down"))
	h.call(t, callback(t, success("metric_3", "https://tempfile.aiquickdraw.com/a.png")))

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(h.metrics.String()), "\n") {
		var emf struct {
			AWS       json.RawMessage `json:"_aws"`
			Outcome   string
			Callbacks int
		}
		if err := json.Unmarshal([]byte(line), &emf); err != nil || emf.AWS == nil || emf.Callbacks != 1 {
			t.Fatalf("line %q is not an EMF Callbacks count: %v", line, err)
		}
		got = append(got, emf.Outcome)
	}
	want := []string{"accepted", "duplicate", "unauthorized", "invalid", "unavailable"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

// signedRegistration is a signed POST /tasks, as the user's own code sends it.
func signedRegistration(tb testing.TB, body string) events.LambdaFunctionURLRequest {
	tb.Helper()
	req := callback(tb, body)
	var reg struct{ TaskID string }
	json.Unmarshal([]byte(body), &reg)
	req.RawPath = RegisterPath
	req.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), kie.RegistrationPrefix+reg.TaskID, req.Headers["x-webhook-timestamp"])
	return req
}

func TestRegisteringATaskBeforeItsCallback(t *testing.T) {
	h := newHarness(t, signed())
	t.Run("a new task is recorded as pending", func(t *testing.T) {
		status, a := h.call(t, signedRegistration(t, `{"taskId":"reg_1","api":"veo"}`))
		if status != 201 || a.Status != "pending" || a.TaskID != "reg_1" {
			t.Fatalf("got %d %+v", status, a)
		}
		rec := h.record(t, "reg_1")
		if rec.Status != task.StatusPending || rec.API != "veo" || !rec.SubmittedAt.Equal(testNow) || rec.Deliveries != 0 {
			t.Errorf("record %+v", rec)
		}
	})
	t.Run("a known task is left as it is", func(t *testing.T) {
		h.call(t, callback(t, success("reg_2", "https://tempfile.aiquickdraw.com/a.png")))
		status, a := h.call(t, signedRegistration(t, `{"taskId":"reg_2","api":"midjourney"}`))
		if status != 200 || a.Status != "queued" {
			t.Errorf("got %d %+v", status, a)
		}
	})
	t.Run("every API kiehook can poll can be registered, Runway Aleph too", func(t *testing.T) {
		for _, api := range kie.KnownAPIs {
			id := "reg_api_" + strings.ReplaceAll(api, "-", "_")
			if status, a := h.call(t, signedRegistration(t, `{"taskId":"`+id+`","api":"`+api+`"}`)); status != 201 {
				t.Errorf("%s: got %d %+v", api, status, a)
			}
			if rec := h.record(t, id); rec.API != api {
				t.Errorf("%s recorded as %q", api, rec.API)
			}
		}
	})
	t.Run("a registration's signature does not pass as a callback", func(t *testing.T) {
		req := callback(t, success("reg_sig", "https://tempfile.aiquickdraw.com/a.png"))
		req.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), kie.RegistrationPrefix+"reg_sig", req.Headers["x-webhook-timestamp"])
		if status, a := h.call(t, req); status != 401 {
			t.Errorf("got %d %+v", status, a)
		}
	})
	t.Run("the callback of a pending task proceeds as a new one", func(t *testing.T) {
		status, a := h.call(t, callback(t, success("reg_1", "https://tempfile.aiquickdraw.com/v.mp4")))
		if status != 200 || a.Status != "accepted" {
			t.Errorf("got %d %+v", status, a)
		}
		if rec := h.record(t, "reg_1"); rec.Status != task.StatusQueued || rec.Deliveries != 1 {
			t.Errorf("record %+v", rec)
		}
	})
	for _, tt := range []struct {
		name   string
		req    func() events.LambdaFunctionURLRequest
		status int
	}{
		{"a callback's signature does not register a task", func() events.LambdaFunctionURLRequest {
			r := signedRegistration(t, `{"taskId":"reg_3","api":"veo"}`)
			r.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), "reg_3", r.Headers["x-webhook-timestamp"])
			return r
		}, 401},
		{"an unsigned registration is refused", func() events.LambdaFunctionURLRequest {
			r := signedRegistration(t, `{"taskId":"reg_3","api":"veo"}`)
			delete(r.Headers, "x-webhook-signature")
			return r
		}, 401},
		{"a registration without the token is refused", func() events.LambdaFunctionURLRequest {
			r := signedRegistration(t, `{"taskId":"reg_3","api":"veo"}`)
			r.QueryStringParameters = nil
			return r
		}, 401},
		{"an unknown API is refused", func() events.LambdaFunctionURLRequest {
			return signedRegistration(t, `{"taskId":"reg_3","api":"dall-e"}`)
		}, 400},
		{"a body that is not JSON is refused", func() events.LambdaFunctionURLRequest {
			r := signedRegistration(t, `{"taskId":"reg_3","api":"veo"}`)
			r.Body = `{"taskId":"reg_3",`
			return r
		}, 401},
		{"a GET is refused", func() events.LambdaFunctionURLRequest {
			r := signedRegistration(t, `{"taskId":"reg_3","api":"veo"}`)
			r.RequestContext.HTTP.Method = http.MethodGet
			return r
		}, 405},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if status, a := h.call(t, tt.req()); status != tt.status {
				t.Errorf("got %d %+v, want %d", status, a, tt.status)
			}
		})
	}
	if _, found, _ := h.store.Get(context.Background(), "reg_3"); found {
		t.Error("a refused registration left a record")
	}
	if m := h.metrics.String(); !strings.Contains(m, `"Outcome":"pending","Registrations":1`) {
		t.Errorf("registrations are not counted: %s", m)
	}
}

// unknownSubmission keeps a submission whose create call lost its
// answer: only its task's callback can tell its task.
func unknownSubmission(t *testing.T, subs dynamo.Submissions) submission.Submission {
	t.Helper()
	ctx := context.Background()
	sub, err := submission.New("order-9", []byte(`{"api":"veo","input":{"prompt":"x"},"labels":{"user":"7"}}`), testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := subs.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.Update(ctx, submission.Claim(sub.ID, "submitter-1", testNow)); err != nil {
		t.Fatal(err)
	}
	if _, err := subs.Update(ctx, submission.MarkUnknown(sub.ID, "submitter-1", "no answer", testNow)); err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestACallbackForASubmissionLinksIt(t *testing.T) {
	h := newHarness(t, signed())
	subs := dynamo.Submissions{Store: h.store}
	sub := unknownSubmission(t, subs)
	req := withQuery(callback(t, success("veo_made", "https://tempfile.aiquickdraw.com/v.mp4")), "token="+testToken+"&user=7&sid="+sub.ID)
	if status, a := h.call(t, req); status != 200 || a.Status != "accepted" {
		t.Fatalf("%d %+v", status, a)
	}
	got, _, _ := subs.Get(context.Background(), sub.ID)
	if got.Status != submission.Submitted || got.TaskID != "veo_made" {
		t.Errorf("submission %+v: its task's callback links it", got)
	}
	if rec := h.record(t, "veo_made"); rec.SubmissionID != sub.ID || rec.Labels["user"] != "7" || rec.Labels["sid"] != "" {
		t.Errorf("record %+v: it names its submission, which is no label", rec)
	}
}

// refusingUpdates is DynamoDB refusing every UpdateItem while refuse is
// set, as a throttled or unreachable table does.
type refusingUpdates struct {
	dynamo.Client
	refuse error
}

func (d *refusingUpdates) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	if d.refuse != nil {
		return nil, d.refuse
	}
	return d.Client.UpdateItem(ctx, in, opts...)
}

func TestALinkThatFailsIsA503AndThePlatformsNextCallMakesIt(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	db := &refusingUpdates{Client: env.DynamoDB}
	h := newHarnessOn(t, env, db, signed())
	subs := dynamo.Submissions{Store: h.store}
	sub := unknownSubmission(t, subs)
	req := withQuery(callback(t, success("veo_made", "https://tempfile.aiquickdraw.com/v.mp4")), "token="+testToken+"&sid="+sub.ID)
	db.refuse = errors.New("ProvisionedThroughputExceededException")
	if status, _ := h.call(t, req); status != http.StatusServiceUnavailable {
		t.Fatalf("answered %d while the link failed, want 503: the platform calls again", status)
	}
	if rec := h.record(t, "veo_made"); rec.Status != task.StatusQueued {
		t.Errorf("record %+v: the task is kept whatever its link does", rec)
	}
	db.refuse = nil
	if status, a := h.call(t, req); status != 200 || a.Status != "duplicate" {
		t.Fatalf("the platform's next call: %d %+v", status, a)
	}
	if got, _, _ := subs.Get(context.Background(), sub.ID); got.Status != submission.Submitted || got.TaskID != "veo_made" {
		t.Errorf("submission %+v: the next call links it", got)
	}
}
