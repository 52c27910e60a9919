package kieapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/submission"
)

// answerBody is what every create endpoint and the credit endpoint answer.
type answerBody struct {
	Code int    `json:"code"`
	Msg  string `json:"msg"`
	Data json.RawMessage
}

// Create asks the platform to create a task of api with body, its create
// body with callBackUrl set, and says what came back. Whether the request
// was written whole (httptrace's WroteRequest) is what tells a call that
// can be sent again from one the platform may have acted on. A key the
// platform refuses (401: nothing was created) is read again once.
func (c *Client) Create(ctx context.Context, api string, body []byte) submission.Answer {
	path, ok := kie.CreatePath(api)
	if !ok {
		return submission.Answer{Code: http.StatusBadRequest, Msg: fmt.Sprintf("kiehook knows no create endpoint for %q", api)}
	}
	c.keys.Refresh(ctx)
	if !c.keys.Ready() {
		return submission.Answer{Err: errors.New("create call: the platform API key cannot be read yet")}
	}
	a := c.create(ctx, path, body)
	if a.Err == nil && a.Code == http.StatusUnauthorized && c.keys.Reload(ctx) {
		a = c.create(ctx, path, body)
	}
	return a
}

func (c *Client) create(ctx context.Context, path string, body []byte) submission.Answer {
	var written atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) { written.Store(info.Err == nil) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return submission.Answer{Err: err}
	}
	req.Header.Set("Authorization", *c.auth.Load())
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return submission.Answer{Written: written.Load(), Err: fmt.Errorf("create call: %w", err)}
	}
	defer resp.Body.Close()
	a := submission.Answer{Written: true, Code: resp.StatusCode}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		a.Err = fmt.Errorf("create call: reading the answer: %w", err)
		return a
	}
	var b answerBody
	if err := json.Unmarshal(raw, &b); err != nil || b.Code == 0 {
		if resp.StatusCode == http.StatusOK {
			a.Err = fmt.Errorf("create call: an answer that is not the platform's JSON: %.200q", raw)
		}
		a.Msg = http.StatusText(resp.StatusCode)
		return a
	}
	a.Code, a.Msg = b.Code, b.Msg
	var data struct {
		TaskID string `json:"taskId"`
	}
	if len(b.Data) > 0 && json.Unmarshal(b.Data, &data) == nil {
		a.TaskID = data.TaskID
	}
	return a
}

// ErrNoCredits is the credit endpoint's word that the account has none.
var ErrNoCredits = errors.New("the platform account has no credits")

// Credits asks the platform how many credits the account has left.
func (c *Client) Credits(ctx context.Context) (float64, error) {
	c.keys.Refresh(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+kie.CreditPath, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", *c.auth.Load())
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("credits: %w", err)
	}
	defer resp.Body.Close()
	var b answerBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&b); err != nil {
		return 0, fmt.Errorf("credits: answered %s: %w", resp.Status, err)
	}
	var credits float64
	if b.Code != http.StatusOK || json.Unmarshal(b.Data, &credits) != nil {
		return 0, fmt.Errorf("credits: code %d: %.200s", b.Code, b.Msg)
	}
	if credits <= 0 {
		return 0, ErrNoCredits
	}
	return credits, nil
}
