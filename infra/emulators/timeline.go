package emulators

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Span is one request an emulator served, with Options.Timeline.
type Span struct {
	Service    string // "dynamodb" or "s3"
	Op         string // DynamoDB's operation (UpdateItem…), or S3's method
	Key        string // the item's taskId, or the object's bucket/key
	Start, End time.Time
}

// timeline records the requests a handler serves, for benchmarks that
// split a task's time into its stages.
type timeline struct {
	mu    sync.Mutex
	spans []Span
}

// record wraps next so that each request it serves becomes a Span.
func (t *timeline) record(service string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := Span{Service: service, Op: r.Method, Key: strings.TrimPrefix(r.URL.Path, "/"), Start: time.Now()}
		if service == "dynamodb" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			var in struct {
				Key map[string]struct{ S string }
			}
			json.Unmarshal(body, &in)
			s.Op, s.Key = strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_20120810."), in.Key["taskId"].S
		}
		next.ServeHTTP(w, r)
		s.End = time.Now()
		t.mu.Lock()
		t.spans = append(t.spans, s)
		t.mu.Unlock()
	})
}

// Timeline is every request the DynamoDB and S3 emulators served so far,
// in the order they ended; empty without Options.Timeline.
func (e *Env) Timeline() []Span {
	if e.timeline == nil {
		return nil
	}
	e.timeline.mu.Lock()
	defer e.timeline.mu.Unlock()
	return append([]Span(nil), e.timeline.spans...)
}
