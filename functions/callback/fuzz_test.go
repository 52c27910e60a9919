package main

import (
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
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

// FuzzHandle throws arbitrary requests at the HTTP adapter, with the AWS
// calls answered at once. Whatever arrives, it answers JSON with a status
// of the contract, and never accepts a call it could not authenticate.
func FuzzHandle(f *testing.F) {
	names, _ := fs.Glob(sample.Files, "kie-callbacks/*.json")
	for _, name := range names {
		body, _ := fs.ReadFile(sample.Files, name)
		f.Add("POST", "application/json", string(body), false, "/", true)
	}
	f.Add("GET", "text/plain", "", true, "/tasks", false)
	f.Add("POST", "application/json; charset=utf-8", `{"taskId":"t1","api":"veo"}`, false, "/tasks", true)
	r := &task.Receiver{Store: dynamo.New(noopDB{}, "tasks", false), Queue: queue.New(noopSQS{}, "https://sqs/q"), TTL: time.Hour, Now: time.Now}
	h := NewHandler(r, signed(), slog.New(slog.DiscardHandler), metrics.New(io.Discard, "kiehook", time.Now), func() time.Time { return testNow })
	allowed := map[int]bool{200: true, 201: true, 400: true, 401: true, 405: true, 413: true, 415: true}
	f.Fuzz(func(t *testing.T, method, contentType, body string, base64Body bool, path string, sign bool) {
		req := events.LambdaFunctionURLRequest{
			RawPath:               path,
			Headers:               map[string]string{"content-type": contentType},
			QueryStringParameters: map[string]string{"token": testToken},
			RequestContext:        events.LambdaFunctionURLRequestContext{HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: method}},
			Body:                  body,
			IsBase64Encoded:       base64Body,
		}
		var probe struct {
			TaskID string `json:"taskId"`
			Data   struct {
				TaskID  string `json:"taskId"`
				TaskID2 string `json:"task_id"`
			}
		}
		json.Unmarshal([]byte(body), &probe)
		ts := "1764300000"
		id := probe.Data.TaskID
		if id == "" {
			id = probe.Data.TaskID2
		}
		if id == "" {
			id = probe.TaskID
		}
		req.Headers["x-webhook-timestamp"] = ts
		if sign {
			req.Headers["x-webhook-signature"] = kie.Sign([]byte(testKey), id, ts)
		}
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if !allowed[resp.StatusCode] || resp.Headers["Content-Type"] != "application/json" || !json.Valid([]byte(resp.Body)) {
			t.Fatalf("answer %d %q %q", resp.StatusCode, resp.Headers["Content-Type"], resp.Body)
		}
		if resp.StatusCode/100 == 2 && (!sign || method != http.MethodPost) {
			t.Fatalf("accepted an unsigned or non-POST call: %d %s", resp.StatusCode, resp.Body)
		}
	})
}
