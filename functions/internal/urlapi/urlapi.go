// Package urlapi is what the Function URL handlers (the callback, the
// reader, the submit function) share: one table from error code to HTTP status, JSON answers
// whose errors show only their caller-safe message, and the request's
// headers read as HTTP reads them.
package urlapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// The codes of a request whose HTTP shape is wrong, apart from what it
// says: only a Function URL handler has them.
const (
	ENOTALLOWED  = "not_allowed" // wrong HTTP method
	ETOOLARGE    = "too_large"   // body over the limit
	EUNSUPPORTED = "unsupported" // wrong content type
	EKEYREUSED   = "key_reused"  // an Idempotency-Key sent again with another body
)

// statusOf maps every error code to the HTTP status the caller sees; an
// error without a code is an internal error here.
var statusOf = map[string]int{
	task.EINVALID:      http.StatusBadRequest,
	task.EUNAUTHORIZED: http.StatusUnauthorized,
	task.ENOTFOUND:     http.StatusNotFound,
	ENOTALLOWED:        http.StatusMethodNotAllowed,
	ETOOLARGE:          http.StatusRequestEntityTooLarge,
	EUNSUPPORTED:       http.StatusUnsupportedMediaType,
	EKEYREUSED:         http.StatusUnprocessableEntity,
	task.EUNAVAILABLE:  http.StatusServiceUnavailable,
	task.EINTERNAL:     http.StatusInternalServerError,
}

// Status is the HTTP status of err.
func Status(err error) int {
	if status, ok := statusOf[task.ErrorCode(err)]; ok {
		return status
	}
	return http.StatusInternalServerError
}

// JSON answers status with v as JSON.
func JSON(status int, v any) events.LambdaFunctionURLResponse {
	body, err := json.Marshal(v)
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	return events.LambdaFunctionURLResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       string(body),
	}
}

// Error answers err with its status and {"error": its caller-safe
// message}; internal details never leave. A refused method names the one
// allowed.
func Error(err error, allow string) events.LambdaFunctionURLResponse {
	status := Status(err)
	resp := JSON(status, struct {
		Error string `json:"error"`
	}{task.ErrorMessage(err)})
	if status == http.StatusMethodNotAllowed {
		resp.Headers["Allow"] = allow
	}
	return resp
}

// Header finds a header by name in any case; Function URLs lower-case them.
func Header(headers map[string]string, name string) string {
	if v, ok := headers[strings.ToLower(name)]; ok {
		return v
	}
	for k, v := range headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}
