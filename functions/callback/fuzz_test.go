package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// FuzzHandle throws arbitrary requests at the HTTP adapter, with the
// verifier and the token configured and the AWS calls answered at once:
// any method, path, headers, query and body, signed or not. Whatever
// arrives, it never panics, answers JSON with a status of the contract,
// and never accepts a call it could not authenticate.
func FuzzHandle(f *testing.F) {
	names, _ := fs.Glob(sample.Files, "kie-callbacks/*.json")
	for _, name := range names {
		body, _ := fs.ReadFile(sample.Files, name)
		f.Add("POST", "application/json", string(body), false, "/", true, testToken, "", "", "", "")
	}
	f.Add("GET", "text/plain", "", true, "/tasks", false, "", "", "", "", "")
	f.Add("POST", "application/json; charset=utf-8", `{"taskId":"t1","api":"veo"}`, false, "/tasks", true, testToken, "", "", "", "")
	// Hostile signatures: 44 characters without padding, a hex digest, a
	// long header.
	flux := `{"code":200,"data":{"taskId":"t1","info":{"resultImageUrl":"https://tempfile.aiquickdraw.com/a.png"}}}`
	f.Add("POST", "application/json", flux, false, "/", false, testToken, "1764300000", "FicixvKYdhX5/Z7eOFcOsxMG5ToCMQX1WkVX22if0BYA", "", "")
	f.Add("POST", "application/json", flux, false, "/", false, testToken, "1764300000", strings.Repeat("ab", 32), "", "")
	f.Add("POST", "application/json", flux, false, "/tasks", false, testToken, "1764300000", strings.Repeat("A", 8<<10), "X-Forwarded-For", "::1")
	f.Add("POST", "application/json", flux, false, "/", false, testToken+"&token=x", "-9223372036854775808", "=", "X-WEBHOOK-SIGNATURE", "")
	r := &task.Receiver{Store: dynamo.New(noopDB{}, "tasks", dynamo.WithoutEvents), Queue: queue.New(noopSQS{}, "https://sqs/q"), TTL: time.Hour, Now: time.Now}
	h := NewHandler(r, signed(), slog.New(slog.DiscardHandler), metrics.New(io.Discard, "kiehook", time.Now), func() time.Time { return testNow })
	allowed := map[int]bool{200: true, 201: true, 400: true, 401: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, method, contentType, body string, base64Body bool, path string, sign bool, token, timestamp, signature, headerName, headerValue string) {
		query, _ := url.ParseQuery("token=" + token)
		req := events.LambdaFunctionURLRequest{
			RawPath:               path,
			RawQueryString:        query.Encode(),
			Headers:               map[string]string{headerName: headerValue, "content-type": contentType},
			QueryStringParameters: map[string]string{},
			RequestContext:        events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method}},
			Body:                  body,
			IsBase64Encoded:       base64Body,
		}
		for k, v := range query {
			req.QueryStringParameters[k] = strings.Join(v, ",") // as Function URLs join repeated parameters
		}
		req.Headers["x-webhook-timestamp"] = timestamp
		req.Headers["x-webhook-signature"] = signature
		if sign {
			req.Headers["x-webhook-timestamp"] = "1764300000"
			req.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), signedText(path, body), "1764300000")
		}
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if !allowed[resp.StatusCode] || resp.Headers["Content-Type"] != "application/json" || !json.Valid([]byte(resp.Body)) {
			t.Fatalf("answer %d %q %q", resp.StatusCode, resp.Headers["Content-Type"], resp.Body)
		}
		authentic := sign && method == http.MethodPost && req.QueryStringParameters["token"] == testToken
		if resp.StatusCode/100 == 2 && !authentic {
			t.Fatalf("accepted an unauthenticated or non-POST call: %d %s", resp.StatusCode, resp.Body)
		}
	})
}

// signedText is what the platform (or an application registering a
// task) signs for a request to path with body.
func signedText(path, body string) string {
	var probe struct {
		TaskID string `json:"taskId"`
		Data   struct {
			TaskID  string `json:"taskId"`
			TaskID2 string `json:"task_id"`
		}
	}
	json.Unmarshal([]byte(body), &probe)
	if path == RegisterPath {
		return kie.RegistrationPrefix + probe.TaskID
	}
	for _, id := range []string{probe.Data.TaskID, probe.Data.TaskID2} {
		if id != "" {
			return id
		}
	}
	return probe.TaskID
}
