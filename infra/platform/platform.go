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
	"sync/atomic"
	"time"
)

// The APIs whose callbacks the platform sends.
var APIs = []string{"flux-kontext", "4o-image", "midjourney", "veo", "runway", "runway-aleph", "suno", "market"}

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
	at := func(i int) string {
		if i < len(urls) {
			return urls[i]
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
		data = map[string]any{"taskId": taskID, "info": map[string]any{"originImageUrl": "", "resultImageUrl": at(0)}}
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
		data = map[string]any{"task_id": taskID, "video_id": "v-" + taskID, "video_url": at(0), "image_url": at(1)}
	case "runway-aleph":
		// Aleph names its task at the top level and sends "data": null on
		// failure.
		var d any
		if code == 200 {
			d = map[string]any{"result_video_url": at(0), "result_image_url": at(1)}
		}
		b, _ := json.Marshal(map[string]any{"code": code, "msg": msg, "taskId": taskID, "data": d})
		return b
	case "suno":
		if code != 200 {
			data = map[string]any{"callbackType": "error", "task_id": taskID, "data": nil}
		} else {
			data = map[string]any{"callbackType": "complete", "task_id": taskID, "data": sunoTracks(urls, len(urls)/2)}
		}
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

// sunoTracks are the tracks of urls (audio, cover, audio, cover, …); only the
// first done of them have their URLs yet.
func sunoTracks(urls []string, done int) []map[string]any {
	var tracks []map[string]any
	for i := 0; i+1 < len(urls); i += 2 {
		audio, cover := urls[i], urls[i+1]
		if i/2 >= done {
			audio, cover = "", ""
		}
		tracks = append(tracks, map[string]any{"id": fmt.Sprint("track-", i/2), "audio_url": audio, "image_url": cover, "title": "Calm Sea"})
	}
	return tracks
}

// Stage is one callback the platform sends for a task, After the one
// before it (or after the task was submitted).
type Stage struct {
	Type  string // Suno's callbackType; "final" for the others
	Body  []byte
	After time.Duration
}

// SunoGaps are the platform's usual gaps between a Suno task's callbacks:
// lyrics after about 20 s, the first track 30 s later, the rest after
// another 90 s.
var SunoGaps = [3]time.Duration{20 * time.Second, 30 * time.Second, 90 * time.Second}

// Stages are every callback the platform sends for a task: the final one
// alone for most APIs; Suno's text and first progress callbacks before its
// complete (or error), as the platform does.
func Stages(api, taskID string, code int, urls []string) []Stage {
	final := Body(api, taskID, code, urls)
	if api != "suno" {
		return []Stage{{Type: "final", Body: final}}
	}
	progress := func(kind, msg string, done int) []byte {
		data := map[string]any{"callbackType": kind, "task_id": taskID, "data": sunoTracks(urls, done)}
		b, _ := json.Marshal(map[string]any{"code": 200, "msg": msg, "data": data})
		return b
	}
	text := Stage{Type: "text", Body: progress("text", "Text generation completed.", 0), After: SunoGaps[0]}
	if code != 200 {
		return []Stage{text, {Type: "error", Body: final, After: SunoGaps[1]}}
	}
	return []Stage{
		text,
		{Type: "first", Body: progress("first", "First track generated successfully.", 1), After: SunoGaps[1]},
		{Type: "complete", Body: final, After: SunoGaps[2]},
	}
}

// Client delivers callbacks as the platform does: it waits 15 s for an
// answer, retries anything but a 200 up to 3 times, then gives up.
type Client struct {
	URL     string // the callBackUrl, with its ?token= (SendStagesTo sends elsewhere)
	Key     string // the webhook HMAC key; empty sends no signature
	HTTP    *http.Client
	Retries int           // default 3
	Backoff time.Duration // between attempts; default 1 s
	Now     func() time.Time
	// Pace is the share of the platform's gaps between a task's stages
	// that SendStages waits: 1 for real time, 0 for none.
	Pace float64

	rotated   atomic.Pointer[string] // the key the owner rotated to
	sentSince atomic.Int64           // callbacks signed since the last rotation
}

// Rotate makes the platform sign every callback from now on with key, as
// it does the moment its owner rotates the account's webhook key.
func (c *Client) Rotate(key string) {
	c.rotated.Store(&key)
	c.sentSince.Store(0)
}

// SentSinceRotation counts the callbacks signed with the key of the last
// Rotate.
func (c *Client) SentSinceRotation() int64 { return c.sentSince.Load() }

func (c *Client) key() string {
	if k := c.rotated.Load(); k != nil {
		return *k
	}
	return c.Key
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

// SendStages delivers a task's callbacks in order, each Pace × its After
// after the one before. A stage the platform gave up on does not stop the
// later ones: the platform's work goes on.
func (c *Client) SendStages(ctx context.Context, taskID string, stages []Stage) []Delivery {
	return c.SendStagesTo(ctx, c.URL, taskID, stages)
}

// SendStagesTo is SendStages to url instead of c.URL: a task the platform
// created calls back to the callBackUrl its create carried.
func (c *Client) SendStagesTo(ctx context.Context, url, taskID string, stages []Stage) []Delivery {
	var out []Delivery
	for i, st := range stages {
		if i > 0 && c.Pace > 0 {
			select {
			case <-ctx.Done():
				return out
			case <-time.After(time.Duration(c.Pace * float64(st.After))):
			}
		}
		out = append(out, c.send(ctx, url, taskID, st.Body))
	}
	return out
}

// Send delivers body for taskID.
func (c *Client) Send(ctx context.Context, taskID string, body []byte) Delivery {
	return c.send(ctx, c.URL, taskID, body)
}

func (c *Client) send(ctx context.Context, url, taskID string, body []byte) Delivery {
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
		d.Status, d.Body, d.Err = c.post(ctx, hc, url, taskID, body, now())
		d.Latency = append(d.Latency, time.Since(start))
		if d.OK() {
			return d
		}
	}
	return d
}

func (c *Client) post(ctx context.Context, hc *http.Client, url, taskID string, body []byte, at time.Time) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kie-webhook/1.0")
	if key := c.key(); key != "" {
		ts := strconv.FormatInt(at.Unix(), 10)
		req.Header.Set("X-Webhook-Timestamp", ts)
		req.Header.Set("X-Webhook-Signature", Sign(key, taskID, ts))
		c.sentSince.Add(1)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}
