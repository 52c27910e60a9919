// Package submitclient lets your application create platform tasks
// through kiehook's submit function, which paces them within the
// platform's rate, retries what can pass later, and never creates one
// twice for one Idempotency-Key:
//
//	c := submitclient.New(submitURL, submitToken)
//	input := map[string]any{"prompt": "a cat on a skateboard", "model": "veo3"}
//	sub, err := c.Submit(ctx, "veo", input, map[string]string{"user": "7"}, "order-1234")
//	// sub.Status is "accepted"; the task's events carry sub.SubmissionID
//
// It and taskevent and register are the packages of kiehook meant to be
// imported.
package submitclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Submission is what kiehook says of a submission (GET /submissions/<id>).
type Submission struct {
	SubmissionID string            `json:"submissionId"`
	API          string            `json:"api"`
	Status       string            `json:"status"` // accepted, submitted, submit_failed, unknown or submit_unknown
	Labels       map[string]string `json:"labels,omitempty"`
	Attempts     int               `json:"attempts"`
	CreatedAt    string            `json:"createdAt"`
	UpdatedAt    string            `json:"updatedAt"`
	TaskID       string            `json:"taskId,omitempty"` // the platform's, once submitted
	Code         int               `json:"code,omitempty"`
	Msg          string            `json:"msg,omitempty"`
	Error        string            `json:"error,omitempty"`
}

// Client calls one kiehook stack's submit function.
type Client struct {
	url, token string
	// HTTP is the client requests go through; New gives it a 30 s timeout.
	HTTP *http.Client
	// Tries is how many times a request is sent in all while kiehook
	// answers 5xx or cannot be reached: safe, since every try carries the
	// same Idempotency-Key.
	Tries int
}

// New returns a Client of the submit function at url (its Function URL),
// authenticated with token.
func New(url, token string) *Client {
	return &Client{url: strings.TrimSuffix(url, "/"), token: token, HTTP: &http.Client{Timeout: 30 * time.Second}, Tries: 4}
}

// Error is a refusal of kiehook's: 400 (a bad key, api, input or label),
// 401, 404, 413 or 422 (the key was used with another body). Retrying it
// does not help.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("kiehook answered %d: %s", e.Status, e.Message) }

// Submit asks kiehook to create a task of api (flux-kontext, 4o-image,
// midjourney, veo, runway, runway-aleph, suno or market) with input, the
// platform's own create body for that API without callBackUrl, and
// labels, which come back in the task's events. key names the submission:
// the same key with the same body is the same submission, however often
// it is sent.
func (c *Client) Submit(ctx context.Context, api string, input any, labels map[string]string, key string) (Submission, error) {
	body, err := json.Marshal(struct {
		API    string            `json:"api"`
		Input  any               `json:"input"`
		Labels map[string]string `json:"labels,omitempty"`
	}{api, input, labels})
	if err != nil {
		return Submission{}, fmt.Errorf("submit: %w", err)
	}
	return c.do(ctx, http.MethodPost, "/submissions", key, body)
}

// Get says what became of a submission.
func (c *Client) Get(ctx context.Context, submissionID string) (Submission, error) {
	return c.do(ctx, http.MethodGet, "/submissions/"+submissionID, "", nil)
}

func (c *Client) do(ctx context.Context, method, path, key string, body []byte) (Submission, error) {
	var last error
	for try := range max(c.Tries, 1) {
		if try > 0 {
			select {
			case <-ctx.Done():
				return Submission{}, errors.Join(last, ctx.Err())
			case <-time.After(time.Duration(try*try) * 500 * time.Millisecond):
			}
		}
		s, retry, err := c.once(ctx, method, path, key, body)
		if !retry {
			return s, err
		}
		last = err
	}
	return Submission{}, last
}

// once sends one request; retry says that another try may pass.
func (c *Client) once(ctx context.Context, method, path, key string, body []byte) (s Submission, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		return Submission{}, false, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Submission{}, ctx.Err() == nil, fmt.Errorf("kiehook: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Submission{}, true, fmt.Errorf("kiehook: reading its answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(raw, &e)
		return Submission{}, resp.StatusCode >= 500, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return Submission{}, true, fmt.Errorf("kiehook: an answer that is not a submission: %w", err)
	}
	return s, false, nil
}
