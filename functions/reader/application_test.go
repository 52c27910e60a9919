package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// serveURL serves h as its Function URL does: each request as a payload
// format 2.0 event, header names lower-cased.
func serveURL(tb testing.TB, h *Handler) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := events.LambdaFunctionURLRequest{RawPath: r.URL.Path, RawQueryString: r.URL.RawQuery, Headers: map[string]string{}}
		for k := range r.Header {
			req.Headers[strings.ToLower(k)] = r.Header.Get(k)
		}
		req.RequestContext.HTTP.Method = r.Method
		resp, _ := h.Handle(r.Context(), req)
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		w.WriteHeader(resp.StatusCode)
		io.WriteString(w, resp.Body)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func TestAnApplicationOutsideAWSGetsEveryFileIntact(t *testing.T) {
	h := newHarness(t, testToken)
	bodies := h.stored(t, "app_1")
	ctx := context.Background()
	reader := taskevent.Reader{URL: serveURL(t, h.handler).URL + "/", Token: testToken}

	// The forwarded event, as the application's endpoint receives it.
	rec, _, _ := h.store.Get(ctx, "app_1")
	detail := eventbus.Detail(rec, h.env.Bucket)
	body, _ := json.Marshal(detail)
	call := httptest.NewRequest(http.MethodPost, "/kiehook", bytes.NewReader(body))
	call.Header.Set("X-Kiehook-Token", "notify-secret")
	event, err := taskevent.Forwarded(call, "X-Kiehook-Token", "notify-secret")
	if err != nil || event.TaskID != "app_1" || event.Labels["uid"] != "u_42" {
		t.Fatalf("forwarded %+v: %v", event, err)
	}
	forged := httptest.NewRequest(http.MethodPost, "/kiehook", bytes.NewReader(body))
	if _, err := taskevent.Forwarded(forged, "X-Kiehook-Token", "notify-secret"); err == nil {
		t.Error("a call without the header was taken")
	}

	got, err := reader.Task(ctx, event.TaskID)
	if err != nil || len(got.Links) != 2 {
		t.Fatalf("reader: %+v, %v", got, err)
	}
	for i, link := range got.Links {
		var file bytes.Buffer
		if err := taskevent.Fetch(ctx, nil, link, got.Objects[i], &file); err != nil || !bytes.Equal(file.Bytes(), bodies[i]) {
			t.Errorf("file %d: %v", i, err)
		}
	}
	t.Run("a file that is not the object is refused", func(t *testing.T) {
		altered := got.Objects[0]
		altered.SHA256 = strings.Repeat("0", 64)
		if err := taskevent.Fetch(ctx, nil, got.Links[0], altered, io.Discard); err == nil {
			t.Error("a file whose SHA-256 differs was accepted")
		}
	})
	t.Run("a wrong token is an error that says why", func(t *testing.T) {
		wrong := reader
		wrong.Token = "nope"
		if _, err := wrong.Task(ctx, "app_1"); err == nil || !strings.Contains(err.Error(), "401") {
			t.Errorf("error %v", err)
		}
	})
}
