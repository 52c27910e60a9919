package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/bearer"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/internal/urlapi"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// TasksPath is the route of a task: TasksPath + its id.
const TasksPath = "/tasks/"

// taskGetter reads one task record.
type taskGetter interface {
	Get(ctx context.Context, id string) (task.Task, bool, error)
}

// presigner signs a GET of an object that works without credentials
// until it expires.
type presigner interface {
	PresignGetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

// Handler answers GET /tasks/<taskId>.
type Handler struct {
	Tasks   taskGetter
	Links   presigner
	Bucket  string
	LinkTTL time.Duration
	Auth    bearer.Auth // with Unset errNoToken: results are never public
	Logger  *slog.Logger
	Metrics *metrics.Writer
	Now     func() time.Time
}

// oneRead counts requests by outcome: found, or the refusal's code.
var oneRead = metrics.Metric{Name: "Reads", Unit: metrics.Count, Value: 1}

var errNoToken = errors.New("no READ_TOKEN or READ_TOKEN_SECRET is set: refusing every read (results are never public)")

// Handle answers one Function URL request.
func (h *Handler) Handle(ctx context.Context, req events.LambdaFunctionURLRequest) (events.LambdaFunctionURLResponse, error) {
	answer, err := h.read(ctx, req)
	if err != nil {
		h.Metrics.Emit(task.ErrorCode(err), oneRead)
		if urlapi.Status(err) >= 500 || errors.Is(err, errNoToken) {
			h.Logger.ErrorContext(ctx, "read failed", "code", task.ErrorCode(err), "error", err.Error())
		}
		return urlapi.Error(err, http.MethodGet), nil
	}
	h.Metrics.Emit("found", oneRead)
	resp := urlapi.JSON(http.StatusOK, answer)
	resp.Headers["Cache-Control"] = "no-store"
	return resp, nil
}

func (h *Handler) read(ctx context.Context, req events.LambdaFunctionURLRequest) (taskevent.Task, error) {
	id, isTask := strings.CutPrefix(req.RawPath, TasksPath)
	switch {
	case !isTask || strings.Contains(id, "/"):
		return taskevent.Task{}, task.Errorf(task.ENOTFOUND, "no such route: GET %s<taskId>", TasksPath)
	case req.RequestContext.HTTP.Method != http.MethodGet:
		return taskevent.Task{}, task.Errorf(urlapi.ENOTALLOWED, "only GET is allowed")
	}
	if err := h.Auth.Check(ctx, urlapi.Header(req.Headers, "Authorization")); err != nil {
		return taskevent.Task{}, err
	}
	if err := kie.CheckTaskID(id); err != nil {
		return taskevent.Task{}, err
	}
	t, found, err := h.Tasks.Get(ctx, id)
	if err != nil {
		return taskevent.Task{}, task.Wrap(task.EUNAVAILABLE, "task store unavailable", err)
	}
	if !found {
		return taskevent.Task{}, task.Errorf(task.ENOTFOUND, "no task %s", id)
	}
	answer := taskevent.Task{Detail: eventbus.Detail(t, h.Bucket)}
	if t.Status == task.StatusStored {
		if answer.Links, err = h.links(ctx, t); err != nil {
			return taskevent.Task{}, err
		}
	}
	return answer, nil
}

// links are presigned GETs of a stored task's objects, in order.
func (h *Handler) links(ctx context.Context, t task.Task) ([]taskevent.Link, error) {
	expires := h.Now().Add(h.LinkTTL).UTC().Format(time.RFC3339)
	links := make([]taskevent.Link, 0, len(t.Objects))
	for _, o := range t.Objects {
		signed, err := h.Links.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &h.Bucket, Key: &o.Key}, s3.WithPresignExpires(h.LinkTTL))
		if err != nil {
			return nil, task.Wrap(task.EINTERNAL, "signing a link failed", fmt.Errorf("presign %s: %w", o.Key, err))
		}
		links = append(links, taskevent.Link{Key: o.Key, URL: signed.URL, ExpiresAt: expires})
	}
	return links, nil
}
