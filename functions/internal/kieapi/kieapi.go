// Package kieapi asks the platform's task API what became of a task: the
// record-info endpoint of its API, with the account's API key.
package kieapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// DefaultBaseURL is the platform's API.
const DefaultBaseURL = "https://api.kie.ai"

// ErrRateLimited is the platform's 429: stop asking for a while.
var ErrRateLimited = kie.ErrRateLimited

// Client asks about tasks; it is safe for concurrent use.
type Client struct {
	base string
	auth string
	http *http.Client
}

// New returns a Client for the API at baseURL, authenticated with apiKey.
func New(baseURL, apiKey string) *Client {
	return &Client{
		base: strings.TrimSuffix(baseURL, "/"),
		auth: "Bearer " + apiKey,
		http: &http.Client{Timeout: 10 * time.Second},
	}
}

// Record is what the platform says of taskID, an api task.
func (c *Client) Record(ctx context.Context, api, taskID string) (kie.Record, error) {
	path, ok := kie.RecordPath(api)
	if !ok {
		return kie.Record{}, task.Errorf(task.EINVALID, "no record-info endpoint for API %q", api)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?taskId="+url.QueryEscape(taskID), nil)
	if err != nil {
		return kie.Record{}, err
	}
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return kie.Record{}, fmt.Errorf("record-info of %s: %w", taskID, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return kie.Record{}, fmt.Errorf("record-info of %s: %w", taskID, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return kie.Record{}, ErrRateLimited
	case resp.StatusCode != http.StatusOK:
		return kie.Record{}, fmt.Errorf("record-info of %s answered %s", taskID, resp.Status)
	}
	return kie.ParseRecord(api, body)
}
