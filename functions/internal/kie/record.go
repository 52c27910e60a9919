package kie

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// State is where the platform says a task is.
type State int

const (
	Running State = iota
	Succeeded
	Failed
)

// Record is what the platform's record-info endpoint says of a task.
type Record struct {
	State   State
	Code    int // the platform's error code for a failure; 501 when it gives none
	Msg     string
	Sources []string
}

// recordPaths are the record-info endpoints, by API.
var recordPaths = map[string]string{
	APIFluxKontext: "/api/v1/flux/kontext/record-info",
	API4oImage:     "/api/v1/gpt4o-image/record-info",
	APIMidjourney:  "/api/v1/mj/record-info",
	APIVeo:         "/api/v1/veo/record-info",
	APIRunway:      "/api/v1/runway/record-detail",
	APIRunwayAleph: "/api/v1/aleph/record-info",
	APISuno:        "/api/v1/generate/record-info",
	APIMarket:      "/api/v1/jobs/recordInfo",
}

// createPaths are the endpoints that create a task, by API.
var createPaths = map[string]string{
	APIFluxKontext: "/api/v1/flux/kontext/generate",
	API4oImage:     "/api/v1/gpt4o-image/generate",
	APIMidjourney:  "/api/v1/mj/generate",
	APIVeo:         "/api/v1/veo/generate",
	APIRunway:      "/api/v1/runway/generate",
	APIRunwayAleph: "/api/v1/aleph/generate",
	APISuno:        "/api/v1/generate",
	APIMarket:      "/api/v1/jobs/createTask",
}

// CreatePath is the endpoint that creates a task of api.
func CreatePath(api string) (string, bool) {
	p, ok := createPaths[api]
	return p, ok
}

// CreditPath is the endpoint that tells the account's remaining credits.
const CreditPath = "/api/v1/chat/credit"

// RecordPath is the record-info endpoint of api (queried with ?taskId=).
func RecordPath(api string) (string, bool) {
	p, ok := recordPaths[api]
	return p, ok
}

// KnownAPI reports whether api is one kiehook can poll.
func KnownAPI(api string) bool {
	_, ok := recordPaths[api]
	return ok
}

// KnownAPIs lists the APIs kiehook can poll, in the contract's order of the
// record's api attribute (unknown aside).
var KnownAPIs = []string{APIFluxKontext, API4oImage, APIMidjourney, APIVeo, APIRunway, APIRunwayAleph, APISuno, APIMarket}

// recordBody is the union of every API's record-info response.
type recordBody struct {
	Code int             `json:"code"`
	Msg  string          `json:"msg"`
	Data json.RawMessage `json:"data"`
}

type recordData struct {
	SuccessFlag  *int            `json:"successFlag"`
	Status       string          `json:"status"` // 4o Image, Suno
	State        string          `json:"state"`  // Runway, Market
	ErrorCode    json.RawMessage `json:"errorCode"`
	ErrorMessage string          `json:"errorMessage"`
	FailCode     json.RawMessage `json:"failCode"`
	FailMsg      string          `json:"failMsg"`
	Response     struct {
		ResultImageURL string   `json:"resultImageUrl"` // Flux Kontext, Runway Aleph
		ResultVideoURL string   `json:"resultVideoUrl"` // Runway Aleph
		ResultURLs     []string `json:"resultUrls"`     // 4o Image, Veo
		SunoData       []struct {
			AudioURL string `json:"audioUrl"`
			ImageURL string `json:"imageUrl"`
		} `json:"sunoData"`
	} `json:"response"`
	ResultInfoJSON struct { // Midjourney
		ResultURLs []struct {
			ResultURL string `json:"resultUrl"`
		} `json:"resultUrls"`
	} `json:"resultInfoJson"`
	VideoInfo struct { // Runway
		VideoURL string `json:"videoUrl"`
		ImageURL string `json:"imageUrl"`
	} `json:"videoInfo"`
	ResultJSON string `json:"resultJson"` // Market
}

// ErrRateLimited is the platform's 429, by HTTP status or in a body's code:
// stop asking for a while.
var ErrRateLimited = errors.New("the platform's API is rate limiting (429)")

// ErrNoRecord is the platform's word that it knows nothing of a task (or
// of its API): nothing it could report confirms the task's results.
var ErrNoRecord = errors.New("the platform has no record of the task")

// ParseRecord reads a record-info response of api. A response whose
// top-level code is not 200 is an error: the platform did not answer about
// the task.
func ParseRecord(api string, raw []byte) (Record, error) {
	var b recordBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return Record{}, task.Errorf(task.EINVALID, "record-info is not JSON: %v", err)
	}
	switch b.Code {
	case 200:
	case 429:
		return Record{}, ErrRateLimited
	case 400, 404, 422:
		return Record{}, fmt.Errorf("%w (code %d: %.200s)", ErrNoRecord, b.Code, b.Msg)
	default:
		return Record{}, task.Errorf(task.EUNAVAILABLE, "record-info answered code %d: %.200s", b.Code, b.Msg)
	}
	var d recordData
	if err := json.Unmarshal(b.Data, &d); err != nil {
		return Record{}, task.Errorf(task.EINVALID, "record-info data has an unexpected shape: %v", err)
	}
	var rec Record
	var c collector
	switch api {
	case APIFluxKontext, API4oImage, APIMidjourney, APIVeo, APIRunwayAleph:
		rec.State = flagState(d.SuccessFlag, d.Status)
		c.add(d.Response.ResultVideoURL, d.Response.ResultImageURL)
		c.add(d.Response.ResultURLs...)
		for _, u := range d.ResultInfoJSON.ResultURLs {
			c.add(u.ResultURL)
		}
	case APIRunway, APIMarket:
		rec.State = wordState(d.State)
		c.add(d.VideoInfo.VideoURL, d.VideoInfo.ImageURL)
		if strings.TrimSpace(d.ResultJSON) != "" {
			var r resultJSON
			if err := json.Unmarshal([]byte(d.ResultJSON), &r); err != nil {
				return Record{}, task.Errorf(task.EINVALID, "record-info resultJson is not JSON holding resultUrls")
			}
			c.add(r.ResultURLs...)
		}
	case APISuno:
		rec.State = sunoState(d.Status)
		for _, t := range d.Response.SunoData {
			c.add(t.AudioURL, t.ImageURL)
		}
	default:
		return Record{}, fmt.Errorf("%w: no record-info endpoint for API %q", ErrNoRecord, api)
	}
	if c.err != nil {
		return Record{}, c.err
	}
	rec.Sources = c.urls
	if rec.State == Failed {
		rec.Code, rec.Msg = failure(d)
	}
	if rec.State == Succeeded && len(rec.Sources) == 0 {
		rec.State, rec.Code, rec.Msg = Failed, 501, "the platform reports success with no result"
	}
	return rec, nil
}

// flagState reads successFlag: 0 generating, 1 success, 2 and 3 failed.
// 4o Image also says it in words.
func flagState(flag *int, status string) State {
	switch {
	case status == "SUCCESS" || flag != nil && *flag == 1:
		return Succeeded
	case strings.HasSuffix(status, "FAILED") || flag != nil && (*flag == 2 || *flag == 3):
		return Failed
	}
	return Running
}

// wordState reads Runway's and Market's states: wait, waiting, queueing,
// queuing, generating; success; fail.
func wordState(state string) State {
	switch strings.ToLower(state) {
	case "success":
		return Succeeded
	case "fail", "failed":
		return Failed
	}
	return Running
}

// sunoState: PENDING, TEXT_SUCCESS and FIRST_SUCCESS are still running;
// SUCCESS is done; the *_FAILED, CALLBACK_EXCEPTION and SENSITIVE_WORD_ERROR
// statuses are failures.
func sunoState(status string) State {
	switch {
	case status == "SUCCESS":
		return Succeeded
	case strings.HasSuffix(status, "FAILED") || strings.HasSuffix(status, "ERROR") || strings.HasSuffix(status, "EXCEPTION"):
		return Failed
	}
	return Running
}

func failure(d recordData) (int, string) {
	code := 501
	for _, raw := range []json.RawMessage{d.ErrorCode, d.FailCode} {
		var n int
		var s string
		if json.Unmarshal(raw, &n) == nil && n != 0 && n != 200 {
			code = n
			break
		}
		if json.Unmarshal(raw, &s) == nil {
			if v, err := strconv.Atoi(s); err == nil && v != 0 {
				code = v
				break
			}
		}
	}
	msg := d.ErrorMessage
	if msg == "" {
		msg = d.FailMsg
	}
	if msg == "" {
		msg = "generation failed"
	}
	return code, truncate(msg, MaxMsgLength)
}
