// Package kie speaks the platform's protocol: it parses the body of every
// API's callback into one task.Callback, reads the labels of a callback
// URL, verifies the platform's webhook signature, and parses every API's
// record-info answer into one Record.
package kie

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// Limits that keep one task record well inside DynamoDB's 400 KB item limit.
const (
	MaxTaskIDLength = 128
	MaxSources      = 64
	MaxURLLength    = 2048
	MaxMsgLength    = 1024
)

// The API names recorded in a task's api attribute.
const (
	APIFluxKontext = "flux-kontext"
	API4oImage     = "4o-image"
	APIMidjourney  = "midjourney"
	APIVeo         = "veo"
	APIRunway      = "runway"
	APIRunwayAleph = "runway-aleph"
	APISuno        = "suno"
	APIMarket      = "market"
	APIUnknown     = "unknown"
)

// body is the union of every API's callback shape. Fields whose presence
// identifies an API are raw so that an empty or null value still counts.
type body struct {
	Code   json.RawMessage `json:"code"`
	Msg    *string         `json:"msg"`
	TaskID string          `json:"taskId"`
	Data   *data           `json:"data"`
}

type data struct {
	TaskID         string          `json:"taskId"`
	TaskIDSnake    string          `json:"task_id"`
	Info           json.RawMessage `json:"info"`
	ResultURLs     []string        `json:"resultUrls"`
	ResultJSON     json.RawMessage `json:"resultJson"`
	VideoURL       string          `json:"video_url"`
	ImageURL       string          `json:"image_url"`
	ResultVideoURL string          `json:"result_video_url"`
	ResultImageURL string          `json:"result_image_url"`
	Tracks         []track         `json:"data"`
	PromptJSON     json.RawMessage `json:"promptJson"`
	CallbackType   json.RawMessage `json:"callbackType"`
	FallbackFlag   json.RawMessage `json:"fallbackFlag"`
	VideoID        json.RawMessage `json:"video_id"`
	State          json.RawMessage `json:"state"`
}

type info struct {
	ResultImageURL *string  `json:"resultImageUrl"`
	OriginImageURL *string  `json:"originImageUrl"`
	ResultURLsOld  []string `json:"result_urls"`
	ResultURLs     []string `json:"resultUrls"`
	OriginURLs     []string `json:"originUrls"`
}

type track struct {
	AudioURL string `json:"audio_url"`
	ImageURL string `json:"image_url"`
}

type resultJSON struct {
	ResultURLs []string `json:"resultUrls"`
}

var null = []byte("null")

// Parse reads one callback body. Errors are task.Error values of code
// EINVALID with a message fit for the caller. When the body names a valid
// task id, the returned Callback carries it even if Parse fails later, so
// that a signature can still be checked first.
func Parse(raw []byte) (task.Callback, error) {
	var b body
	var cb task.Callback
	if err := json.Unmarshal(raw, &b); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) || typeErr.Field == "" {
			return cb, task.Errorf(task.EINVALID, "body is not a valid JSON object")
		}
		// A type error still fills every field that could be read.
		if id, idErr := taskID(&b); idErr == nil {
			cb.TaskID = id
		}
		return cb, task.Errorf(task.EINVALID, "field %s has the wrong type", typeErr.Field)
	}
	id, err := taskID(&b)
	if err != nil {
		return cb, err
	}
	cb.TaskID = id
	if cb.Code, err = code(b.Code); err != nil {
		return cb, err
	}
	if b.Msg != nil {
		cb.Msg = truncate(*b.Msg, MaxMsgLength)
	}
	var in info
	if b.Data != nil && len(b.Data.Info) > 0 && !bytes.Equal(b.Data.Info, null) {
		if err := json.Unmarshal(b.Data.Info, &in); err != nil {
			return cb, task.Errorf(task.EINVALID, "data.info is not an object of the expected shape")
		}
	}
	cb.API = api(&b, &in)
	if cb.Sources, err = sources(b.Data, &in); err != nil {
		return cb, err
	}
	cb.Progress = b.Data != nil && progress(b.Data.CallbackType)
	return cb, nil
}

// progress reports whether callbackType marks a callback sent before the
// task is final: Suno's "text" (lyrics done) and "first" (first track done).
// Every other callback, with or without a type, is final.
func progress(callbackType json.RawMessage) bool {
	var t string
	if json.Unmarshal(callbackType, &t) != nil {
		return false
	}
	return t == "text" || t == "first"
}

func taskID(b *body) (string, error) {
	id := b.TaskID
	if b.Data != nil {
		switch {
		case b.Data.TaskID != "":
			id = b.Data.TaskID
		case b.Data.TaskIDSnake != "":
			id = b.Data.TaskIDSnake
		}
	}
	if id == "" {
		return "", task.Errorf(task.EINVALID, "no task id in data.taskId, data.task_id or taskId")
	}
	if err := CheckTaskID(id); err != nil {
		return "", err
	}
	return id, nil
}

// CheckTaskID returns an EINVALID error saying what a task id may be when
// id is not one, so that every entry point refuses it in the same words.
func CheckTaskID(id string) error {
	if !ValidTaskID(id) {
		return task.Errorf(task.EINVALID, "task id must be 1-%d characters of A-Z a-z 0-9 . _ : -", MaxTaskIDLength)
	}
	return nil
}

// ValidTaskID reports whether id may name a task: it becomes a DynamoDB key
// and part of every S3 object key.
func ValidTaskID(id string) bool {
	if len(id) == 0 || len(id) > MaxTaskIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// code accepts a JSON integer only: not a string, a fraction or an
// exponent. raw is valid JSON, so Atoi sees no leading zeros or signs.
func code(raw json.RawMessage) (int, error) {
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, task.Errorf(task.EINVALID, "code is missing or not an integer")
	}
	return n, nil
}

// api names the API from the fields only its callbacks carry.
func api(b *body, in *info) string {
	d := b.Data
	switch {
	case d == nil && b.TaskID != "":
		// Runway Aleph alone names its task at the top level; its
		// failures carry "data": null.
		return APIRunwayAleph
	case d == nil:
		return APIUnknown
	case d.ResultJSON != nil || d.State != nil:
		return APIMarket
	case d.CallbackType != nil || d.Tracks != nil:
		return APISuno
	case d.VideoID != nil || d.VideoURL != "" || d.TaskIDSnake != "":
		return APIRunway
	case d.ResultVideoURL != "" || d.ResultImageURL != "":
		return APIRunwayAleph
	case d.PromptJSON != nil || d.ResultURLs != nil:
		return APIMidjourney
	case d.FallbackFlag != nil || in.ResultURLs != nil || in.OriginURLs != nil:
		return APIVeo
	case in.ResultImageURL != nil || in.OriginImageURL != nil:
		return APIFluxKontext
	case in.ResultURLsOld != nil || bytes.Equal(d.Info, null):
		// GPT-4o Image is the API whose failures carry "info": null.
		return API4oImage
	}
	return APIUnknown
}

// sources collects the result URLs in the contract's order, skipping empty
// strings and repeats. Inputs (originImageUrl, originUrls) are not results.
func sources(d *data, in *info) ([]string, error) {
	if d == nil {
		return nil, nil
	}
	var c collector
	if in.ResultImageURL != nil {
		c.add(*in.ResultImageURL)
	}
	c.add(in.ResultURLsOld...)
	c.add(in.ResultURLs...)
	c.add(d.ResultURLs...)
	if len(d.ResultJSON) > 0 && !bytes.Equal(d.ResultJSON, null) {
		var s string
		if err := json.Unmarshal(d.ResultJSON, &s); err != nil {
			return nil, task.Errorf(task.EINVALID, "data.resultJson must be a string")
		}
		if strings.TrimSpace(s) != "" {
			var r resultJSON
			if err := json.Unmarshal([]byte(s), &r); err != nil {
				return nil, task.Errorf(task.EINVALID, "data.resultJson is not JSON holding resultUrls")
			}
			c.add(r.ResultURLs...)
		}
	}
	c.add(d.VideoURL, d.ImageURL, d.ResultVideoURL, d.ResultImageURL)
	for _, t := range d.Tracks {
		c.add(t.AudioURL, t.ImageURL)
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.urls, nil
}

type collector struct {
	urls []string
	err  error
}

func (c *collector) add(urls ...string) {
	for _, u := range urls {
		switch {
		case c.err != nil || u == "":
		case len(u) > MaxURLLength:
			c.err = task.Errorf(task.EINVALID, "a result URL is longer than %d characters", MaxURLLength)
		case slices.Contains(c.urls, u):
		case len(c.urls) == MaxSources:
			c.err = task.Errorf(task.EINVALID, "more than %d result URLs", MaxSources)
		default:
			c.urls = append(c.urls, u)
		}
	}
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
