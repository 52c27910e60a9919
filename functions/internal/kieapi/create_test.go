package kieapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/submission"
)

func TestCreateTellsAWrittenRequestFromOneThatNeverLeft(t *testing.T) {
	for _, tt := range []struct {
		name    string
		serve   http.HandlerFunc
		verdict submission.Verdict
		taskID  string
	}{
		{"a task made is created", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"code":200,"msg":"success","data":{"taskId":"veo_1"}}`)
		}, submission.Created, "veo_1"},
		{"a 429 in the body is retried", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"code":429,"msg":"rate limited"}`)
		}, submission.Retry, ""},
		{"a 402 as the HTTP status pauses", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(402)
			io.WriteString(w, `{"code":402,"msg":"insufficient credits"}`)
		}, submission.Pause, ""},
		{"a 422 is refused for good", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(422)
		}, submission.Refused, ""},
		{"a connection closed after the request was read is ambiguous", func(w http.ResponseWriter, r *http.Request) {
			io.ReadAll(r.Body)
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}, submission.Ambiguous, ""},
		{"a 200 that is not the platform's JSON is ambiguous", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `<html>gateway</html>`)
		}, submission.Ambiguous, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/veo/generate" || r.Header.Get("Authorization") != "Bearer key" {
					t.Errorf("%s %s", r.URL.Path, r.Header.Get("Authorization"))
				}
				tt.serve(w, r)
			}))
			defer srv.Close()
			a := kieapi.New(srv.URL, "key").Create(context.Background(), "veo", []byte(`{"prompt":"x","callBackUrl":"https://cb"}`))
			if got := submission.Judge(a); got != tt.verdict || a.TaskID != tt.taskID {
				t.Errorf("answer %+v: verdict %d, want %d", a, got, tt.verdict)
			}
		})
	}
	t.Run("a request that never reached a server is retried", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		a := kieapi.New("http://"+addr, "key").Create(context.Background(), "veo", []byte(`{}`))
		if a.Written || submission.Judge(a) != submission.Retry {
			t.Errorf("answer %+v", a)
		}
	})
}

func TestCreditsSaysWhenTheAccountHasNone(t *testing.T) {
	credits := `5.5`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"code":200,"msg":"success","data":`+credits+`}`)
	}))
	defer srv.Close()
	c := kieapi.New(srv.URL, "key")
	if n, err := c.Credits(context.Background()); n != 5.5 || err != nil {
		t.Errorf("%v %v", n, err)
	}
	credits = `0`
	if _, err := c.Credits(context.Background()); err != kieapi.ErrNoCredits {
		t.Errorf("error %v", err)
	}
}
