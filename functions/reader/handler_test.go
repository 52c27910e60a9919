package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"github.com/kiehook/kiehook/functions/internal/bearer"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
)

const testToken = "read-token"

var testNow = time.Unix(1764300000, 0).UTC()

type harness struct {
	env     *emulators.Env
	store   *dynamo.Store
	handler *Handler
	metrics *capture.Buffer
}

func newHarness(tb testing.TB, tokens string) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	h := &harness{env: env, store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithoutEvents), metrics: &capture.Buffer{}}
	h.handler = &Handler{
		Tasks: h.store, Links: s3.NewPresignClient(env.S3), Bucket: env.Bucket, LinkTTL: 15 * time.Minute, Auth: bearer.Auth{Unset: errNoToken},
		Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New(h.metrics, "kiehook", time.Now), Now: func() time.Time { return testNow },
	}
	if tokens != "" {
		h.handler.Auth.Tokens = &secret.Tokens{}
		if err := h.handler.Auth.Tokens.Set(tokens); err != nil {
			tb.Fatal(err)
		}
	}
	return h
}

// stored seeds a stored task whose objects are in the bucket, and returns
// their contents.
func (h *harness) stored(tb testing.TB, id string) [][]byte {
	tb.Helper()
	ctx := context.Background()
	t := task.Task{ID: id, Status: task.StatusQueued, API: "midjourney", Code: 200, Msg: "success", Deliveries: 1,
		ReceivedAt: testNow, UpdatedAt: testNow, ExpiresAt: testNow.Add(time.Hour), Labels: map[string]string{"uid": "u_42"}}
	if _, _, err := h.store.Create(ctx, t); err != nil {
		tb.Fatal(err)
	}
	var bodies [][]byte
	var objects []task.Object
	for i, size := range []int{1000, 2000} {
		body := bytes.Repeat([]byte{byte(i + 1)}, size)
		key := "tasks/" + id + "/" + string(rune('0'+i)) + ".png"
		if _, err := h.env.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: &h.env.Bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
			tb.Fatal(err)
		}
		sum := sha256.Sum256(body)
		objects = append(objects, task.Object{Key: key, Bytes: int64(size), SHA256: hex.EncodeToString(sum[:]), ContentType: "image/png", Source: "https://tempfile.aiquickdraw.com/" + key})
		bodies = append(bodies, body)
	}
	if _, err := h.store.Update(ctx, task.MarkStored(id, "", objects, testNow)); err != nil {
		tb.Fatal(err)
	}
	return bodies
}

func get(path, authorization string) events.LambdaFunctionURLRequest {
	req := events.LambdaFunctionURLRequest{RawPath: path, Headers: map[string]string{}}
	req.RequestContext.HTTP.Method = http.MethodGet
	if authorization != "" {
		req.Headers["authorization"] = authorization
	}
	return req
}

func (h *harness) call(tb testing.TB, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, taskevent.Task) {
	tb.Helper()
	resp, err := h.handler.Handle(context.Background(), req)
	if err != nil {
		tb.Fatalf("Handle: %v", err)
	}
	if resp.Headers["Content-Type"] != "application/json" || !json.Valid([]byte(resp.Body)) {
		tb.Fatalf("answer %d %v %q is not JSON", resp.StatusCode, resp.Headers, resp.Body)
	}
	var t taskevent.Task
	json.Unmarshal([]byte(resp.Body), &t)
	return resp, t
}

func TestAStoredTaskComesWithLinksThatDownloadItsFiles(t *testing.T) {
	h := newHarness(t, testToken)
	bodies := h.stored(t, "read_1")
	resp, got := h.call(t, get("/tasks/read_1", "Bearer "+testToken))
	if resp.StatusCode != 200 || resp.Headers["Cache-Control"] != "no-store" {
		t.Fatalf("got %d %v %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	if got.TaskID != "read_1" || got.Status != "stored" || got.Labels["uid"] != "u_42" || len(got.Objects) != 2 || len(got.Links) != 2 || got.SchemaVersion != taskevent.SchemaVersion {
		t.Fatalf("answer %+v", got)
	}
	for i, link := range got.Links {
		if link.Key != got.Objects[i].Key || link.ExpiresAt != testNow.Add(15*time.Minute).Format(time.RFC3339) || !strings.Contains(link.URL, "X-Amz-Signature=") {
			t.Errorf("link %+v", link)
		}
		dl, err := http.Get(link.URL) // no credentials: the link is enough
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(dl.Body)
		dl.Body.Close()
		if dl.StatusCode != 200 || !bytes.Equal(b, bodies[i]) {
			t.Errorf("link %d: %d, %d bytes", i, dl.StatusCode, len(b))
		}
	}
}

func TestATaskOfEveryStatusIsAnsweredWithoutLinks(t *testing.T) {
	h := newHarness(t, testToken)
	for _, status := range []task.Status{task.StatusPending, task.StatusQueued, task.StatusFailed, task.StatusCopyFailed} {
		t.Run(string(status)+" is answered as it is", func(t *testing.T) {
			id := "read_" + string(status)
			h.store.Create(context.Background(), task.Task{ID: id, Status: status, API: "veo", UpdatedAt: testNow, ExpiresAt: testNow.Add(time.Hour)})
			resp, got := h.call(t, get("/tasks/"+id, "Bearer "+testToken))
			if resp.StatusCode != 200 || got.Status != string(status) || got.Links != nil {
				t.Errorf("got %d %s", resp.StatusCode, resp.Body)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	h := newHarness(t, "old-token, "+testToken)
	h.stored(t, "read_2")
	post := get("/tasks/read_2", "Bearer "+testToken)
	post.RequestContext.HTTP.Method = http.MethodPost
	tests := []struct {
		name   string
		req    events.LambdaFunctionURLRequest
		status int
	}{
		{"each token held is accepted", get("/tasks/read_2", "Bearer old-token"), 200},
		{"the scheme is matched in any case", get("/tasks/read_2", "bearer "+testToken), 200},
		{"a missing token is 401", get("/tasks/read_2", ""), 401},
		{"a wrong token is 401", get("/tasks/read_2", "Bearer nope"), 401},
		{"a token without its scheme is 401", get("/tasks/read_2", testToken), 401},
		{"basic auth is 401", get("/tasks/read_2", "Basic "+testToken), 401},
		{"an invalid task id is 400", get("/tasks/bad%20id", "Bearer "+testToken), 400},
		{"an unknown task is 404", get("/tasks/nobody", "Bearer "+testToken), 404},
		{"another path is 404", get("/objects/read_2", "Bearer "+testToken), 404},
		{"a deeper path is 404", get("/tasks/read_2/links", "Bearer "+testToken), 404},
		{"another method is 405 with Allow: GET", post, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _ := h.call(t, tt.req)
			if resp.StatusCode != tt.status {
				t.Errorf("got %d %s", resp.StatusCode, resp.Body)
			}
			if tt.status == 405 && resp.Headers["Allow"] != http.MethodGet {
				t.Errorf("Allow %q", resp.Headers["Allow"])
			}
			if tt.status != 200 && strings.Contains(resp.Body, "links") {
				t.Errorf("a refusal carries links: %s", resp.Body)
			}
		})
	}
	t.Run("with no token configured every read is 401: results are never public", func(t *testing.T) {
		open := newHarness(t, "")
		open.stored(t, "read_3")
		if resp, _ := open.call(t, get("/tasks/read_3", "Bearer anything")); resp.StatusCode != 401 {
			t.Errorf("got %d %s", resp.StatusCode, resp.Body)
		}
		open.handler.Auth.IAM = true // the Function URL's AWS_IAM auth checked the caller
		if resp, _ := open.call(t, get("/tasks/read_3", "")); resp.StatusCode != 200 {
			t.Errorf("behind IAM auth: got %d %s", resp.StatusCode, resp.Body)
		}
	})
}
