package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// MaxBodyBytes is the largest callback body accepted, after base64 decoding.
const MaxBodyBytes = 1 << 20

// requestBudget keeps every answer well inside the platform's 15 s wait, so
// a slow dependency ends in a 503 the platform retries, not a timeout.
const requestBudget = 10 * time.Second

// receiver records an authenticated, parsed callback.
type receiver interface {
	Receive(ctx context.Context, cb task.Callback) (task.Outcome, error)
}

// Auth is how callers prove they are the platform.
type Auth struct {
	Token                string        // the ?token= value; empty for none
	Verifier             *kie.Verifier // nil for no signature check
	AllowUnauthenticated bool          // run with neither, deliberately
}

// configured reports whether the function may accept callbacks at all.
func (a Auth) configured() bool {
	return a.Token != "" || a.Verifier != nil || a.AllowUnauthenticated
}

// Handler turns Function URL requests into task callbacks.
type Handler struct {
	receiver receiver
	auth     Auth
	tokenSum [sha256.Size]byte
	logger   *slog.Logger
	metrics  *metrics.Writer
	now      func() time.Time
}

// NewHandler returns a Handler; now is the clock for signature windows.
func NewHandler(r receiver, auth Auth, logger *slog.Logger, m *metrics.Writer, now func() time.Time) *Handler {
	return &Handler{receiver: r, auth: auth, tokenSum: sha256.Sum256([]byte(auth.Token)), logger: logger, metrics: m, now: now}
}

// oneCallback is the metric every request adds to, by outcome: accepted,
// duplicate, or the error code of a refusal (unauthorized, invalid, …).
var oneCallback = metrics.Metric{Name: "Callbacks", Unit: metrics.Count, Value: 1}

// statusOf maps every error code to the HTTP status the caller sees.
var statusOf = map[string]int{
	task.EINVALID:      http.StatusBadRequest,
	task.EUNAUTHORIZED: http.StatusUnauthorized,
	task.ENOTALLOWED:   http.StatusMethodNotAllowed,
	task.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	task.EUNSUPPORTED:  http.StatusUnsupportedMediaType,
	task.EUNAVAILABLE:  http.StatusServiceUnavailable,
	task.EINTERNAL:     http.StatusInternalServerError,
}

// Handle answers one Function URL request.
func (h *Handler) Handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, requestBudget)
	defer cancel()
	cb, outcome, err := h.handle(ctx, req)
	if err != nil {
		h.metrics.Emit(task.ErrorCode(err), oneCallback)
		return h.fail(ctx, cb.TaskID, err), nil
	}
	h.metrics.Emit(string(outcome), oneCallback)
	// Both values are known to need no JSON escaping: an outcome is a
	// constant and a task id is limited to [A-Za-z0-9._:-].
	return respondBody(http.StatusOK, `{"status":"`+string(outcome)+`","taskId":"`+cb.TaskID+`"}`), nil
}

func (h *Handler) handle(ctx context.Context, req events.LambdaFunctionURLRequest) (task.Callback, task.Outcome, error) {
	var cb task.Callback
	if req.RequestContext.HTTP.Method != http.MethodPost {
		return cb, "", task.Errorf(task.ENOTALLOWED, "only POST is allowed")
	}
	body, err := decodeBody(req)
	if err != nil {
		return cb, "", err
	}
	if !isJSON(header(req.Headers, "Content-Type")) {
		return cb, "", task.Errorf(task.EUNSUPPORTED, "Content-Type must be application/json")
	}
	if !h.auth.configured() {
		return cb, "", task.Wrap(task.EINTERNAL, "receiver is not configured", errUnconfigured)
	}
	if err := h.checkToken(req.QueryStringParameters["token"]); err != nil {
		return cb, "", err
	}
	now := h.now()
	v := h.auth.Verifier
	if v != nil {
		// Refuse stale and unsigned calls before reading the body.
		if err := v.CheckTimestamp(header(req.Headers, kie.HeaderTimestamp), now); err != nil {
			return cb, "", err
		}
	}
	cb, parseErr := kie.Parse(body)
	if v != nil {
		// The signature covers the task id, so it is checked as soon as the
		// id is known and before any other verdict on the body is given.
		if cb.TaskID == "" {
			return cb, "", task.Errorf(task.EUNAUTHORIZED, "invalid %s", kie.HeaderSignature)
		}
		if err := v.Verify(cb.TaskID, header(req.Headers, kie.HeaderTimestamp), header(req.Headers, kie.HeaderSignature), now); err != nil {
			return cb, "", err
		}
	}
	if parseErr != nil {
		return cb, "", parseErr
	}
	outcome, err := h.receiver.Receive(ctx, cb)
	if outcome != "" && err != nil {
		// The task is safe and the answer is 200; the error is for operators.
		h.log(ctx, cb.TaskID, err)
		err = nil
	}
	return cb, outcome, err
}

var errUnconfigured = errors.New("no WEBHOOK_HMAC_KEY, WEBHOOK_HMAC_KEY_SECRET or CALLBACK_TOKEN is set and ALLOW_UNAUTHENTICATED is not true: refusing every callback")

// checkToken compares digests so that neither content nor length leaks.
func (h *Handler) checkToken(got string) error {
	if h.auth.Token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(sum[:], h.tokenSum[:]) != 1 {
		return task.Errorf(task.EUNAUTHORIZED, "missing or invalid token")
	}
	return nil
}

func decodeBody(req events.LambdaFunctionURLRequest) ([]byte, error) {
	tooLarge := task.Errorf(task.ETOOLARGE, "body is larger than %d bytes", MaxBodyBytes)
	if !req.IsBase64Encoded {
		if len(req.Body) > MaxBodyBytes {
			return nil, tooLarge
		}
		return []byte(req.Body), nil
	}
	if base64.StdEncoding.DecodedLen(len(req.Body)) > MaxBodyBytes+2 {
		return nil, tooLarge
	}
	body, err := base64.StdEncoding.DecodeString(req.Body)
	if err != nil {
		return nil, task.Errorf(task.EINVALID, "body is not valid base64")
	}
	if len(body) > MaxBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

// isJSON accepts application/json with any parameters, in any case.
func isJSON(contentType string) bool {
	mediaType, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

// header finds a header by name in any case; Function URLs lower-case them.
func header(headers map[string]string, name string) string {
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

// answer is the JSON body of every response.
type answer struct {
	Status string `json:"status,omitempty"`
	TaskID string `json:"taskId,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (h *Handler) fail(ctx context.Context, taskID string, err error) events.LambdaFunctionURLResponse {
	code := task.ErrorCode(err)
	status, ok := statusOf[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if status >= 500 {
		h.log(ctx, taskID, err)
	}
	resp := respond(status, answer{Error: task.ErrorMessage(err)})
	if status == http.StatusMethodNotAllowed {
		resp.Headers["Allow"] = http.MethodPost
	}
	return resp
}

func (h *Handler) log(ctx context.Context, taskID string, err error) {
	h.logger.ErrorContext(ctx, "callback failed", "taskId", taskID, "code", task.ErrorCode(err), "error", err.Error())
}

func respond(status int, a answer) events.LambdaFunctionURLResponse {
	body, _ := json.Marshal(a)
	return respondBody(status, string(body))
}

func respondBody(status int, body string) events.LambdaFunctionURLResponse {
	return events.LambdaFunctionURLResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       body,
	}
}
