package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// FuzzHandle throws arbitrary requests at the reader: any method, path,
// headers and query. It never panics, answers JSON with a status of the
// contract, and shows a task only to a caller with the token.
func FuzzHandle(f *testing.F) {
	f.Add("GET", "/tasks/read_f", "Bearer "+testToken, "", "")
	f.Add("GET", "/tasks/read_f", "Bearer", "x-forwarded-for", "::1")
	f.Add("POST", "/tasks/", "bearer  "+testToken+" ", "authorization", "Basic x")
	f.Add("GET", "/tasks/../tasks/read_f", "", "Authorization", "Bearer "+testToken)
	h := newHarness(f, testToken)
	h.stored(f, "read_f")
	allowed := map[int]bool{200: true, 400: true, 401: true, 404: true, 405: true}
	f.Fuzz(func(t *testing.T, method, path, authorization, headerName, headerValue string) {
		req := events.LambdaFunctionURLRequest{RawPath: path, Headers: map[string]string{headerName: headerValue, "authorization": authorization}}
		req.RequestContext.HTTP.Method = method
		resp, err := h.handler.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if !allowed[resp.StatusCode] || resp.Headers["Content-Type"] != "application/json" || !json.Valid([]byte(resp.Body)) {
			t.Fatalf("answer %d %q %q", resp.StatusCode, resp.Headers["Content-Type"], resp.Body)
		}
		if resp.StatusCode == 200 && (method != http.MethodGet || h.handler.Auth.Tokens == nil) {
			t.Fatalf("answered a %s: %s", method, resp.Body)
		}
	})
}
