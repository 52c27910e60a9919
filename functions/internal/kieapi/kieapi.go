// Package kieapi asks the platform's task API what became of a task: the
// record-info endpoint of its API, with the account's API key.
package kieapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/secret"
)

// DefaultBaseURL is the platform's API.
const DefaultBaseURL = "https://api.kie.ai"

// ErrRateLimited is the platform's 429: stop asking for a while.
var ErrRateLimited = kie.ErrRateLimited

// Client asks about tasks; it is safe for concurrent use.
type Client struct {
	base string
	auth atomic.Pointer[string]
	keys *secret.Watched // nil for a key that never changes
	http *http.Client
}

// New returns a Client for the API at baseURL, authenticated with apiKey.
func New(baseURL, apiKey string) *Client {
	c := &Client{base: strings.TrimSuffix(baseURL, "/"), http: &http.Client{Timeout: 10 * time.Second}}
	auth := "Bearer " + apiKey
	c.auth.Store(&auth)
	return c
}

// setKey installs a key read from its secret.
func (c *Client) setKey(apiKey string) error {
	if apiKey = strings.TrimSpace(apiKey); apiKey == "" {
		return errors.New("no API key")
	}
	auth := "Bearer " + apiKey
	c.auth.Store(&auth)
	return nil
}

// Record is what the platform says of taskID, an api task. A key read
// from a secret is read again when old, and at once when the platform
// refuses it.
func (c *Client) Record(ctx context.Context, api, taskID string) (kie.Record, error) {
	path, ok := kie.RecordPath(api)
	if !ok {
		return kie.Record{}, fmt.Errorf("%w: no record-info endpoint for API %q", kie.ErrNoRecord, api)
	}
	c.keys.Refresh(ctx)
	if !c.keys.Ready() {
		return kie.Record{}, fmt.Errorf("record-info of %s: the platform API key cannot be read yet", taskID)
	}
	rec, err := c.record(ctx, api, path, taskID)
	if errors.Is(err, errKeyRefused) && c.keys.Reload(ctx) {
		rec, err = c.record(ctx, api, path, taskID)
	}
	return rec, err
}

// errKeyRefused is the platform's 401: the key may have been rotated.
var errKeyRefused = errors.New("the platform refused the API key")

func (c *Client) record(ctx context.Context, api, path, taskID string) (kie.Record, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path+"?taskId="+url.QueryEscape(taskID), nil)
	if err != nil {
		return kie.Record{}, err
	}
	req.Header.Set("Authorization", *c.auth.Load())
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
	case resp.StatusCode == http.StatusUnauthorized:
		return kie.Record{}, fmt.Errorf("record-info of %s: %w", taskID, errKeyRefused)
	case resp.StatusCode != http.StatusOK:
		return kie.Record{}, fmt.Errorf("record-info of %s answered %s", taskID, resp.Status)
	}
	return kie.ParseRecord(api, body)
}
