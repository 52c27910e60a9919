package platform

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// Task states, in the simulator's own words.
const (
	Generating = "generating"
	Success    = "success"
	Failure    = "failure"
)

// RecordInfo shapes the record-info answer of api for a task in state, as
// each API's documentation shows it.
func RecordInfo(api, taskID, state string, urls []string) []byte {
	flag := map[string]int{Generating: 0, Success: 1, Failure: 3}[state]
	words := map[string]string{Generating: "generating", Success: "success", Failure: "fail"}[state]
	if urls == nil || state != Success {
		urls = []string{}
	}
	first := func(i int) string {
		if i < len(urls) {
			return urls[i]
		}
		return ""
	}
	var data map[string]any
	switch api {
	case "flux-kontext":
		data = map[string]any{"taskId": taskID, "successFlag": flag, "response": map[string]any{"originImageUrl": "", "resultImageUrl": first(0)}, "errorCode": nil, "errorMessage": ""}
	case "4o-image":
		status := map[string]string{Generating: "GENERATING", Success: "SUCCESS", Failure: "GENERATE_FAILED"}[state]
		data = map[string]any{"taskId": taskID, "successFlag": min(flag, 2), "status": status, "response": map[string]any{"resultUrls": urls}, "progress": "1.00"}
	case "midjourney":
		var results []map[string]string
		for _, u := range urls {
			results = append(results, map[string]string{"resultUrl": u})
		}
		data = map[string]any{"taskId": taskID, "successFlag": flag, "resultInfoJson": map[string]any{"resultUrls": results}}
	case "veo":
		data = map[string]any{"taskId": taskID, "successFlag": flag, "response": map[string]any{"resultUrls": urls, "originUrls": []string{}}, "fallbackFlag": false}
	case "runway-aleph":
		data = map[string]any{"taskId": taskID, "successFlag": flag, "response": map[string]any{"resultVideoUrl": first(0), "resultImageUrl": first(1)}, "errorCode": nil, "errorMessage": ""}
	case "runway":
		data = map[string]any{"taskId": taskID, "state": words, "videoInfo": map[string]any{"videoUrl": first(0), "imageUrl": first(1)}, "failMsg": ""}
	case "suno":
		status := map[string]string{Generating: "FIRST_SUCCESS", Success: "SUCCESS", Failure: "GENERATE_AUDIO_FAILED"}[state]
		var tracks []map[string]string
		for i := 0; i+1 < len(urls); i += 2 {
			tracks = append(tracks, map[string]string{"audioUrl": urls[i], "imageUrl": urls[i+1]})
		}
		data = map[string]any{"taskId": taskID, "status": status, "response": map[string]any{"taskId": taskID, "sunoData": tracks}}
	case "market":
		result := ""
		if state == Success {
			b, _ := json.Marshal(map[string]any{"resultUrls": urls})
			result = string(b)
		}
		data = map[string]any{"taskId": taskID, "state": words, "resultJson": result, "failCode": "", "failMsg": ""}
	}
	if state == Failure {
		for _, k := range []string{"errorCode", "failCode"} {
			if _, ok := data[k]; ok {
				data[k] = 501
			}
		}
		data["errorMessage"], data["failMsg"] = "generation failed", "generation failed"
	}
	b, _ := json.Marshal(map[string]any{"code": 200, "msg": "success", "data": data})
	return b
}

// recordPaths are the record-info routes, by API.
var recordPaths = map[string]string{
	"flux-kontext": "/api/v1/flux/kontext/record-info",
	"4o-image":     "/api/v1/gpt4o-image/record-info",
	"midjourney":   "/api/v1/mj/record-info",
	"veo":          "/api/v1/veo/record-info",
	"runway":       "/api/v1/runway/record-detail",
	"runway-aleph": "/api/v1/aleph/record-info",
	"suno":         "/api/v1/generate/record-info",
	"market":       "/api/v1/jobs/recordInfo",
}

// API is the platform's task API behind a Bearer key: the create
// endpoints and the credit balance (create.go), record-info for each API,
// and a switch to answer 429.
type API struct {
	*httptest.Server
	key     string
	creates *creator

	mu      sync.Mutex
	tasks   map[string]apiTask
	polls   map[string]int
	limited bool
}

type apiTask struct {
	api, state string
	urls       []string
}

// ServeAPI starts the task API on a free loopback port; it accepts only key.
func ServeAPI(key string) *API {
	a, _ := ServeAPIAt("", key)
	return a
}

// ServeAPIAt starts the task API at addr, a loopback address; empty picks
// a free port.
func ServeAPIAt(addr, key string) (*API, error) {
	a := &API{key: key, creates: newCreator(), tasks: map[string]apiTask{}, polls: map[string]int{}}
	var err error
	if a.Server, err = startAt(addr, "task API", http.HandlerFunc(a.serve)); err != nil {
		return nil, err
	}
	return a, nil
}

// Set makes the platform report taskID of api in state with urls.
func (a *API) Set(api, taskID, state string, urls ...string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tasks[taskID] = apiTask{api: api, state: state, urls: urls}
}

// RotateKey makes the API accept key alone from now on, as after its owner
// rotated the account's API key.
func (a *API) RotateKey(key string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.key = key
}

// RateLimit makes every call answer 429 until turned off.
func (a *API) RateLimit(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limited = on
}

// Polls is how many times taskID was asked about.
func (a *API) Polls(taskID string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.polls[taskID]
}

func (a *API) serve(w http.ResponseWriter, r *http.Request) {
	// A create checks its key itself, so that refused calls are logged too.
	if api, ok := createAPI[r.URL.Path]; ok && r.Method == http.MethodPost {
		a.create(w, r, api)
		return
	}
	a.mu.Lock()
	key := a.key
	a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+key {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"code":401,"msg":"You do not have access permissions"}`))
		return
	}
	id := r.URL.Query().Get("taskId")
	a.mu.Lock()
	limited := a.limited
	t, ok := a.tasks[id]
	a.polls[id]++
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case limited:
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte(`{"code":429,"msg":"Rate limited"}`))
	case r.URL.Path == creditPath:
		a.credit(w)
	case !ok || recordPaths[t.api] != r.URL.Path || !strings.HasPrefix(r.URL.Path, "/api/v1/"):
		w.Write([]byte(`{"code":404,"msg":"task not found"}`))
	default:
		w.Write(RecordInfo(t.api, id, t.state, t.urls))
	}
}
