// Package platform plays kie.ai outside AWS: it serves generated-looking
// result files, shapes each API's callback body, signs it, and delivers it
// with the platform's rules. It knows the protocol from the platform's
// documentation, not from kiehook's code, as the real platform does.
package platform

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// The APIs whose callbacks the platform sends.
var APIs = []string{"flux-kontext", "4o-image", "midjourney", "veo", "runway", "suno", "market"}

// Sign is the platform's webhook signature: base64 HMAC-SHA256 of
// taskID + "." + timestamp.
func Sign(key, taskID, timestamp string) string {
	m := hmac.New(sha256.New, []byte(key))
	io.WriteString(m, taskID+"."+timestamp)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Body shapes a callback of api for taskID, as the platform's examples do.
// A code other than 200 carries no results.
func Body(api, taskID string, code int, urls []string) []byte {
	msg := "success"
	if code != 200 {
		msg, urls = "generation failed", nil
	}
	first := func() string {
		if len(urls) > 0 {
			return urls[0]
		}
		return ""
	}
	list := func() []string {
		if urls == nil {
			return []string{}
		}
		return urls
	}
	var data map[string]any
	switch api {
	case "flux-kontext":
		data = map[string]any{"taskId": taskID, "info": map[string]any{"originImageUrl": "", "resultImageUrl": first()}}
	case "4o-image":
		if code == 200 {
			data = map[string]any{"taskId": taskID, "info": map[string]any{"result_urls": list()}}
		} else {
			data = map[string]any{"taskId": taskID, "info": nil}
		}
	case "midjourney":
		data = map[string]any{"taskId": taskID, "promptJson": `{"prompt":"a lighthouse"}`, "resultUrls": list()}
	case "veo":
		data = map[string]any{"taskId": taskID, "info": map[string]any{"resultUrls": list(), "originUrls": []string{}}, "fallbackFlag": false}
	case "runway":
		data = map[string]any{"task_id": taskID, "video_id": "v-" + taskID, "video_url": first()}
		if len(urls) > 1 {
			data["image_url"] = urls[1]
		}
	case "suno":
		var tracks []map[string]any
		for i := 0; i+1 < len(urls); i += 2 {
			tracks = append(tracks, map[string]any{"id": fmt.Sprint("track-", i/2), "audio_url": urls[i], "image_url": urls[i+1]})
		}
		data = map[string]any{"callbackType": "complete", "task_id": taskID, "data": tracks}
	case "market":
		result := ""
		if code == 200 {
			b, _ := json.Marshal(map[string]any{"resultUrls": list()})
			result = string(b)
		}
		data = map[string]any{"taskId": taskID, "model": "google/nano-banana", "state": map[bool]string{true: "success", false: "fail"}[code == 200], "resultJson": result}
	default:
		data = map[string]any{"taskId": taskID, "resultUrls": list()}
	}
	b, _ := json.Marshal(map[string]any{"code": code, "msg": msg, "data": data})
	return b
}

// Client delivers callbacks as the platform does: it waits 15 s for an
// answer, retries anything but a 200 up to 3 times, then gives up.
type Client struct {
	URL     string // the callBackUrl, with its ?token=
	Key     string // the webhook HMAC key; empty sends no signature
	HTTP    *http.Client
	Retries int           // default 3
	Backoff time.Duration // between attempts; default 1 s
	Now     func() time.Time
}

// Delivery is what became of one callback.
type Delivery struct {
	Status   int    // the last answer's status, 0 if none came
	Body     string // the last answer
	Attempts int
	Err      error // the last transport error
	Latency  []time.Duration
}

// OK reports whether the platform would consider the callback delivered.
func (d Delivery) OK() bool { return d.Status == http.StatusOK }

// Send delivers body for taskID.
func (c *Client) Send(ctx context.Context, taskID string, body []byte) Delivery {
	retries, backoff := c.Retries, c.Backoff
	if retries == 0 {
		retries = 3
	}
	if backoff == 0 {
		backoff = time.Second
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	now := c.Now
	if now == nil {
		now = time.Now
	}
	var d Delivery
	for d.Attempts <= retries {
		if d.Attempts > 0 {
			select {
			case <-ctx.Done():
				return d
			case <-time.After(backoff):
			}
		}
		d.Attempts++
		start := time.Now()
		d.Status, d.Body, d.Err = c.post(ctx, hc, taskID, body, now())
		d.Latency = append(d.Latency, time.Since(start))
		if d.OK() {
			return d
		}
	}
	return d
}

func (c *Client) post(ctx context.Context, hc *http.Client, taskID string, body []byte, at time.Time) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kie-webhook/1.0")
	if c.Key != "" {
		ts := strconv.FormatInt(at.Unix(), 10)
		req.Header.Set("X-Webhook-Timestamp", ts)
		req.Header.Set("X-Webhook-Signature", Sign(c.Key, taskID, ts))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}
