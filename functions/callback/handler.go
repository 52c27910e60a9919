package main

import (
	"context"
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
	"github.com/kiehook/kiehook/functions/internal/secret"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/internal/urlapi"
)

// MaxBodyBytes is the largest callback body accepted, after base64 decoding.
const MaxBodyBytes = 1 << 20

// receiver records authenticated, parsed callbacks and registrations.
type receiver interface {
	Receive(ctx context.Context, cb task.Callback) (task.Outcome, error)
	Register(ctx context.Context, id, api string, labels map[string]string) (task.Task, bool, error)
}

// RegisterPath is the route that registers a task as pending.
const RegisterPath = "/tasks"

// Auth is how callers prove they are the platform.
type Auth struct {
	Tokens               *secret.Tokens  // the accepted ?token= values; nil for no token
	TokenSource          *secret.Watched // where the Tokens are read again; nil for tokens that never change
	Verifier             *kie.Verifier   // nil for no signature check
	Keys                 *secret.Watched // where the Verifier's keys are read again; nil for keys that never change
	AllowUnauthenticated bool            // run with neither, deliberately
}

// configured reports whether the function may accept callbacks at all.
func (a Auth) configured() bool {
	return a.Tokens != nil || a.Verifier != nil || a.AllowUnauthenticated
}

// Handler turns Function URL requests into task callbacks.
type Handler struct {
	receiver receiver
	auth     Auth
	logger   *slog.Logger
	metrics  *metrics.Writer
	now      func() time.Time
}

// NewHandler returns a Handler; now is the clock for signature windows.
func NewHandler(r receiver, auth Auth, logger *slog.Logger, m *metrics.Writer, now func() time.Time) *Handler {
	return &Handler{receiver: r, auth: auth, logger: logger, metrics: m, now: now}
}

// oneCallback is the metric every request adds to, by outcome: accepted,
// duplicate, or the error code of a refusal (unauthorized, invalid, …).
var oneCallback = metrics.Metric{Name: "Callbacks", Unit: metrics.Count, Value: 1}

// Handle answers one Function URL request.
func (h *Handler) Handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, task.AnswerBudget)
	defer cancel()
	if req.RawPath == RegisterPath {
		return h.register(ctx, req), nil
	}
	cb, outcome, err := h.handle(ctx, req)
	if err != nil {
		h.metrics.Emit(task.ErrorCode(err), oneCallback)
		return h.fail(ctx, cb.TaskID, err), nil
	}
	h.metrics.Emit(string(outcome), oneCallback)
	return urlapi.JSON(http.StatusOK, answer{Status: string(outcome), TaskID: cb.TaskID}), nil
}

func (h *Handler) handle(ctx context.Context, req events.LambdaFunctionURLRequest) (task.Callback, task.Outcome, error) {
	var cb task.Callback
	body, err := h.admit(ctx, req)
	if err != nil {
		return cb, "", err
	}
	cb, parseErr := kie.Parse(body)
	if err := h.authenticate(ctx, req, cb.TaskID); err != nil {
		return cb, "", err
	}
	if parseErr != nil {
		return cb, "", parseErr
	}
	var dropped []string
	cb.Labels, dropped = kie.LabelsFromQuery(req.RawQueryString)
	if len(dropped) > 0 {
		h.logger.WarnContext(ctx, "labels dropped from the callback URL", "taskId", cb.TaskID, "dropped", dropped)
	}
	cb.SubmissionID = kie.SubmissionFromQuery(req.RawQueryString)
	outcome, err := h.receiver.Receive(ctx, cb)
	return cb, outcome, err
}

// admit applies the checks that need no body: method, size, content type,
// configuration, token and timestamp. It returns the decoded body.
func (h *Handler) admit(ctx context.Context, req events.LambdaFunctionURLRequest) ([]byte, error) {
	if req.RequestContext.HTTP.Method != http.MethodPost {
		return nil, task.Errorf(urlapi.ENOTALLOWED, "only POST is allowed")
	}
	body, err := decodeBody(req)
	if err != nil {
		return nil, err
	}
	if !isJSON(urlapi.Header(req.Headers, "Content-Type")) {
		return nil, task.Errorf(urlapi.EUNSUPPORTED, "Content-Type must be application/json")
	}
	if !h.auth.configured() {
		return nil, task.Wrap(task.EINTERNAL, "receiver is not configured", errUnconfigured)
	}
	if err := h.checkToken(ctx, req.QueryStringParameters["token"]); err != nil {
		return nil, err
	}
	if v := h.auth.Verifier; v != nil {
		// Refuse stale and unsigned calls before reading the body.
		if err := v.CheckTimestamp(urlapi.Header(req.Headers, kie.HeaderTimestamp), h.now()); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// authenticate checks the signature, which covers the task id: it is
// checked as soon as the id is known and before any other verdict on the
// body is given. An id that could not be read cannot be verified.
func (h *Handler) authenticate(ctx context.Context, req events.LambdaFunctionURLRequest, signedID string) error {
	v := h.auth.Verifier
	if v == nil {
		return nil
	}
	if signedID == "" {
		return task.Errorf(task.EUNAUTHORIZED, "invalid %s", kie.HeaderSignature)
	}
	ts, sig := urlapi.Header(req.Headers, kie.HeaderTimestamp), urlapi.Header(req.Headers, kie.HeaderSignature)
	return h.auth.Keys.Check(ctx, func() error { return v.Verify(signedID, ts, sig, h.now()) })
}

var errUnconfigured = errors.New("no WEBHOOK_HMAC_KEY, WEBHOOK_HMAC_KEY_SECRET, CALLBACK_TOKEN or CALLBACK_TOKEN_SECRET is set and ALLOW_UNAUTHENTICATED is not true: refusing every callback")

// checkToken accepts any token held.
func (h *Handler) checkToken(ctx context.Context, got string) error {
	tokens := h.auth.Tokens
	if tokens == nil {
		return nil
	}
	return h.auth.TokenSource.Check(ctx, func() error {
		if tokens.Match(got) {
			return nil
		}
		return task.Wrap(task.EUNAUTHORIZED, "missing or invalid token", task.ErrNoMatch)
	})
}

func decodeBody(req events.LambdaFunctionURLRequest) ([]byte, error) {
	tooLarge := task.Errorf(urlapi.ETOOLARGE, "body is larger than %d bytes", MaxBodyBytes)
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

// answer is the JSON body of every answer: an outcome, or an error.
type answer struct {
	Status string `json:"status,omitempty"`
	TaskID string `json:"taskId,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (h *Handler) fail(ctx context.Context, taskID string, err error) events.LambdaFunctionURLResponse {
	if urlapi.Status(err) >= 500 {
		h.log(ctx, taskID, err)
	}
	return urlapi.Error(err, http.MethodPost)
}

func (h *Handler) log(ctx context.Context, taskID string, err error) {
	h.logger.ErrorContext(ctx, "callback failed", "taskId", taskID, "code", task.ErrorCode(err), "error", err.Error())
}

// registration is the body of POST /tasks.
type registration struct {
	TaskID string            `json:"taskId"`
	API    string            `json:"api"`
	Labels map[string]string `json:"labels"`
}

// oneRegistration counts POST /tasks by outcome: pending (created),
// exists, or the refusal's code.
var oneRegistration = metrics.Metric{Name: "Registrations", Unit: metrics.Count, Value: 1}

// register records a task as pending before its callback; it is
// authenticated exactly as a callback is.
func (h *Handler) register(ctx context.Context, req events.LambdaFunctionURLRequest) events.LambdaFunctionURLResponse {
	var reg registration
	t, created, err := h.registerTask(ctx, req, &reg)
	if err != nil {
		h.metrics.Emit(task.ErrorCode(err), oneRegistration)
		return h.fail(ctx, reg.TaskID, err)
	}
	status := http.StatusOK
	outcome := "exists"
	if created {
		status, outcome = http.StatusCreated, "pending"
	}
	h.metrics.Emit(outcome, oneRegistration)
	return urlapi.JSON(status, answer{Status: string(t.Status), TaskID: t.ID})
}

func (h *Handler) registerTask(ctx context.Context, req events.LambdaFunctionURLRequest, reg *registration) (task.Task, bool, error) {
	body, err := h.admit(ctx, req)
	if err != nil {
		return task.Task{}, false, err
	}
	parseErr := json.Unmarshal(body, reg)
	idErr := kie.CheckTaskID(reg.TaskID)
	if idErr != nil {
		reg.TaskID = ""
	}
	// A registration is signed over its own text, so that no callback's
	// signature can register a task, nor a registration's make a callback.
	signed := ""
	if reg.TaskID != "" {
		signed = kie.RegistrationPrefix + reg.TaskID
	}
	if err := h.authenticate(ctx, req, signed); err != nil {
		return task.Task{}, false, err
	}
	switch {
	case parseErr != nil:
		return task.Task{}, false, task.Errorf(task.EINVALID, `body must be {"taskId":"…","api":"…","labels":{…}}`)
	case idErr != nil:
		return task.Task{}, false, idErr
	case !kie.KnownAPI(reg.API):
		return task.Task{}, false, task.Errorf(task.EINVALID, "api must be one of %s", strings.Join(kie.KnownAPIs, ", "))
	}
	// The application's own code registers: bad labels are its bug to fix.
	if err := kie.CheckLabels(reg.Labels); err != nil {
		return task.Task{}, false, task.Errorf(task.EINVALID, "labels: %v", err)
	}
	return h.receiver.Register(ctx, reg.TaskID, reg.API, reg.Labels)
}
