// Package submitapi is the submit function's Function URL: POST
// /submissions takes an application's request to create a task on the
// platform, and GET /submissions/<id> says what became of it.
package submitapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/internal/urlapi"
	"github.com/kiehook/kiehook/functions/schema"
)

// Path is the route of the submissions: Path, or Path + "/" + an id.
const Path = "/submissions"

// store keeps submissions.
type store interface {
	Create(ctx context.Context, s submission.Submission) (submission.Submission, bool, error)
	Get(ctx context.Context, id string) (submission.Submission, bool, error)
}

// sender hands a submission to the submitter.
type sender interface {
	Send(ctx context.Context, id string, delay time.Duration) error
}

// Handler answers the submit function's requests.
type Handler struct {
	Submissions store
	Queue       sender
	Auth        bearer.Auth // with Unset: nobody may submit while no token is set
	TTL         time.Duration
	Logger      *slog.Logger
	Metrics     *metrics.Writer
	Now         func() time.Time
	// Group sends the message while the submission is written (nil: on a
	// goroutine).
	Group run.NewGroup
}

// View is a submission as the application sees it.
type View struct {
	SubmissionID string            `json:"submissionId"`
	API          string            `json:"api"`
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels,omitempty"`
	Attempts     int               `json:"attempts"`
	CreatedAt    string            `json:"createdAt"`
	UpdatedAt    string            `json:"updatedAt"`
	TaskID       string            `json:"taskId,omitempty"`
	Code         int               `json:"code,omitempty"`
	Msg          string            `json:"msg,omitempty"`
	Error        string            `json:"error,omitempty"`
}

// ViewOf is how s is shown.
func ViewOf(s submission.Submission) View {
	return View{SubmissionID: s.ID, API: s.API, Status: s.Status, Labels: s.Labels, Attempts: s.Attempts,
		CreatedAt: schema.Timestamp(s.CreatedAt), UpdatedAt: schema.Timestamp(s.UpdatedAt), TaskID: s.TaskID,
		Code: s.Code, Msg: s.Msg, Error: s.Error}
}

// oneRequest counts requests by outcome.
var oneRequest = metrics.Metric{Name: "SubmitRequests", Unit: metrics.Count, Value: 1}

// Handle answers one Function URL request. Only internal failures are
// logged; the caller sees each error's safe message.
func (h *Handler) Handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	status, view, err := h.route(ctx, req)
	if err != nil {
		h.Metrics.Emit(task.ErrorCode(err), oneRequest)
		if urlapi.Status(err) >= 500 || errors.Is(err, h.Auth.Unset) {
			h.Logger.ErrorContext(ctx, "submit request failed", "code", task.ErrorCode(err), "error", err.Error())
		}
		return urlapi.Error(err, allowed(req.RawPath)), nil
	}
	h.Metrics.Emit(view.Status, oneRequest)
	resp := urlapi.JSON(status, view)
	resp.Headers["Cache-Control"] = "no-store"
	return resp, nil
}

// allowed is the method the path takes.
func allowed(path string) string {
	if path == Path {
		return http.MethodPost
	}
	return http.MethodGet
}

func (h *Handler) route(ctx context.Context, req events.LambdaFunctionURLRequest) (int, View, error) {
	method := req.RequestContext.HTTP.Method
	id, one := strings.CutPrefix(req.RawPath, Path+"/")
	switch {
	case req.RawPath != Path && (!one || strings.Contains(id, "/")):
		return 0, View{}, task.Errorf(task.ENOTFOUND, "no such route: POST %s, or GET %s/<submissionId>", Path, Path)
	case method != allowed(req.RawPath):
		return 0, View{}, task.Errorf(urlapi.ENOTALLOWED, "only %s is allowed here", allowed(req.RawPath))
	}
	if err := h.Auth.Check(ctx, urlapi.Header(req.Headers, "Authorization")); err != nil {
		return 0, View{}, err
	}
	if one {
		return h.get(ctx, id)
	}
	body, err := requestBody(req)
	if err != nil {
		return 0, View{}, err
	}
	return h.submit(ctx, urlapi.Header(req.Headers, "Idempotency-Key"), body)
}

func requestBody(req events.LambdaFunctionURLRequest) ([]byte, error) {
	body := []byte(req.Body)
	if req.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(req.Body); err != nil {
			return nil, task.Errorf(task.EINVALID, "the body is not valid base64")
		}
	}
	if len(body) > submission.MaxBody {
		return nil, task.Errorf(urlapi.ETOOLARGE, "the body is larger than %d bytes", submission.MaxBody)
	}
	return body, nil
}

// submit keeps a new submission and hands it to the submitter, both at
// once, and answers 202 once both are done: a 202 is never lost. The same
// key again finds the first submission (200, as it is now), and its
// message is sent again: the first send may have failed, and the
// submitter sends a submission once whatever it reads.
func (h *Handler) submit(ctx context.Context, key string, body []byte) (int, View, error) {
	fresh, err := submission.New(key, body, h.Now().UTC(), h.TTL)
	if err != nil {
		return 0, View{}, task.Errorf(task.EINVALID, "%s", strings.TrimPrefix(err.Error(), submission.ErrInvalid.Error()+": "))
	}
	g := h.Group.Or()
	var sendErr error
	g.Go(func() { sendErr = h.Queue.Send(ctx, fresh.ID, 0) })
	current, created, err := h.Submissions.Create(ctx, fresh)
	g.Wait()
	if created {
		current = fresh
	}
	switch {
	case err != nil:
		return 0, View{}, task.Wrap(task.EUNAVAILABLE, "submission store unavailable", err)
	case !created && !current.Same(fresh.BodyHash):
		return 0, View{}, task.Errorf(urlapi.EKEYREUSED, "Idempotency-Key %s was used with another body", key)
	case sendErr != nil && current.Status == submission.Accepted:
		return 0, View{}, task.Wrap(task.EUNAVAILABLE, "submission queue unavailable", fmt.Errorf("submission %s: %w", fresh.ID, sendErr))
	case created:
		return http.StatusAccepted, ViewOf(current), nil
	}
	return http.StatusOK, ViewOf(current), nil
}

func (h *Handler) get(ctx context.Context, id string) (int, View, error) {
	if !kie.IsSubmissionID(id) {
		return 0, View{}, task.Errorf(task.ENOTFOUND, "no submission %.80s", id)
	}
	s, found, err := h.Submissions.Get(ctx, id)
	switch {
	case err != nil:
		return 0, View{}, task.Wrap(task.EUNAVAILABLE, "submission store unavailable", err)
	case !found:
		return 0, View{}, task.Errorf(task.ENOTFOUND, "no submission %s", id)
	}
	return http.StatusOK, ViewOf(s), nil
}
