package platform

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// createPaths are the task-creation routes, by API.
var createPaths = map[string]string{
	"flux-kontext": "/api/v1/flux/kontext/generate",
	"4o-image":     "/api/v1/gpt4o-image/generate",
	"midjourney":   "/api/v1/mj/generate",
	"veo":          "/api/v1/veo/generate",
	"runway":       "/api/v1/runway/generate",
	"runway-aleph": "/api/v1/aleph/generate",
	"suno":         "/api/v1/generate",
	"market":       "/api/v1/jobs/createTask",
}

// createAPI is createPaths the other way round, to route a call.
var createAPI = func() map[string]string {
	m := map[string]string{}
	for api, p := range createPaths {
		m[p] = api
	}
	return m
}()

// idPrefixes start each API's task ids, so that a log shows which API made
// one; Suno's and the Market's are bare hex, as the platform's are.
var idPrefixes = map[string]string{
	"flux-kontext": "fluxk_", "4o-image": "4o_", "midjourney": "mj_", "veo": "veo_",
	"runway": "runway_", "runway-aleph": "aleph_", "suno": "", "market": "",
}

const creditPath = "/api/v1/chat/credit"

// Credits is the balance the credit endpoint reports while the account has
// credits, the platform's documented example.
const Credits = 100

// The create limit an account has unless SetCreateLimit says otherwise.
const (
	DefaultCreateLimit  = 20
	DefaultCreateWindow = 10 * time.Second
)

// CreateCall is one call to a create endpoint, as the platform logged it.
type CreateCall struct {
	At          time.Time // when the platform took it; the log is in this order
	API         string
	TaskID      string // the task made; empty when none was
	Code        int    // the answer's code, in its body and as its HTTP status
	Lost        bool   // the task was made but the answer never sent (SetAmbiguous)
	CallBackURL string // as the create body carried it; empty if it did not
	Body        []byte // the create body, as sent
}

// creator is the API's task-creation side.
type creator struct {
	ctx    context.Context // ends when the API closes, for OnCreate's hooks
	cancel context.CancelFunc
	hooks  sync.WaitGroup

	mu          sync.Mutex
	log         []CreateCall
	limit       int
	window      time.Duration
	accepted    map[string][]time.Time // per API key: the creates still in the window
	noCredits   bool
	maintenance bool
	lostRate    float64
	made, lost  int // tasks made and answers lost since SetAmbiguous
	onCreate    func(context.Context, CreateCall)
}

func newCreator() *creator {
	ctx, cancel := context.WithCancel(context.Background())
	return &creator{ctx: ctx, cancel: cancel, limit: DefaultCreateLimit, window: DefaultCreateWindow, accepted: map[string][]time.Time{}}
}

// SetCreateLimit lets each API key make at most n tasks in any window,
// across all eight create endpoints; a create beyond it is answered 429 and
// makes nothing. Refused creates do not count. n = 0 turns the limit off.
func (a *API) SetCreateLimit(n int, window time.Duration) {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit, c.window = n, window
}

// SetCredits says whether the account has credits: without, every create
// is answered 402 and the credit endpoint reports 0.
func (a *API) SetCredits(has bool) {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noCredits = !has
}

// SetMaintenance makes every create answer 455 until turned off.
func (a *API) SetMaintenance(on bool) {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	c.maintenance = on
}

// SetAmbiguous makes rate of the creates that make a task lose their
// answer: the task is made, then the connection is closed with nothing
// written. It is counted, not drawn, so that runs repeat: from this call
// on, of n tasks made exactly ⌊n × rate⌋ lose their answer, evenly spaced
// (0.25: the 4th, 8th, …; 1: every one).
func (a *API) SetAmbiguous(rate float64) {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lostRate, c.made, c.lost = rate, 0, 0
}

// OnCreate makes the API call fn with every create that made a task, lost
// answers included, each in a goroutine of its own; ctx ends when the API
// closes, and Close waits for fn to return. Deliver is the usual fn.
func (a *API) OnCreate(fn func(ctx context.Context, call CreateCall)) {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onCreate = fn
}

// Deliver makes every task created from now on finish as the platform's
// do: after delay the record-info endpoint reports it a success with
// ResultURLs(files, api, taskID), and client sends its callbacks (Stages,
// signed with client's key, Suno's at client's Pace) to the callBackUrl
// its create carried.
func (a *API) Deliver(client *Client, files *Files, delay time.Duration) {
	a.OnCreate(func(ctx context.Context, call CreateCall) {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		urls := ResultURLs(files, call.API, call.TaskID)
		a.Set(call.API, call.TaskID, Success, urls...)
		client.SendStagesTo(ctx, call.CallBackURL, call.TaskID, Stages(call.API, call.TaskID, 200, urls))
	})
}

// resultFiles are the files a created task of each API makes.
var resultFiles = map[string][]string{
	"flux-kontext": {"image.jpg"},
	"4o-image":     {"1.png", "2.png"},
	"midjourney":   {"1.png", "2.png", "3.png", "4.png"},
	"veo":          {"video.mp4"},
	"runway":       {"video.mp4", "cover.jpg"},
	"runway-aleph": {"video.mp4", "cover.jpg"},
	"suno":         {"1.mp3", "1.jpg", "2.mp3", "2.jpg"}, // audio, cover, audio, cover
	"market":       {"image.webp"},
}

// ResultURLs are the files on files that Deliver reports for a task of api.
func ResultURLs(files *Files, api, taskID string) []string {
	var urls []string
	for _, name := range resultFiles[api] {
		urls = append(urls, files.URL(taskID+"-"+name))
	}
	return urls
}

// Creates is every create call so far, in the order the platform took them.
func (a *API) Creates() []CreateCall {
	c := a.creates
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]CreateCall(nil), c.log...)
}

// MostInWindow is the largest number of tasks that calls (in Creates'
// order) made within any window of that length: what SetCreateLimit bounds.
func MostInWindow(calls []CreateCall, window time.Duration) int {
	var made []time.Time
	for _, c := range calls {
		if c.TaskID != "" {
			made = append(made, c.At)
		}
	}
	most, first := 0, 0
	for i, at := range made {
		for first < i && !made[first].After(at.Add(-window)) {
			first++
		}
		most = max(most, i-first+1)
	}
	return most
}

// create serves a create endpoint of api.
func (a *API) create(w http.ResponseWriter, r *http.Request, api string) {
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	var req struct {
		CallBackURL string `json:"callBackUrl"`
	}
	jsonErr := json.Unmarshal(body, &req)
	a.mu.Lock()
	key, limited := a.key, a.limited
	a.mu.Unlock()

	c := a.creates
	c.mu.Lock()
	call := CreateCall{At: time.Now(), API: api, CallBackURL: req.CallBackURL, Body: body}
	msg := ""
	switch {
	case r.Header.Get("Authorization") != "Bearer "+key:
		call.Code, msg = 401, "You do not have access permissions"
	case c.maintenance:
		call.Code, msg = 455, "Service unavailable: the platform is under maintenance"
	case limited:
		call.Code, msg = 429, "Rate limited"
	case c.noCredits:
		call.Code, msg = 402, "Credits insufficient"
	case readErr != nil || jsonErr != nil:
		call.Code, msg = 422, "The body is not a JSON object of at most 1 MiB"
	case !absolute(req.CallBackURL):
		call.Code, msg = 422, "callBackUrl is required: an absolute http(s) URL"
	case !c.admit(key, call.At):
		call.Code, msg = 429, "Rate limited"
	default:
		call.Code, msg = 200, "success"
		call.TaskID = idPrefixes[api] + newHex()
		c.made++
		if int(float64(c.made)*c.lostRate) > c.lost {
			c.lost++
			call.Lost = true
		}
	}
	c.log = append(c.log, call)
	hook := c.onCreate
	c.mu.Unlock()

	if call.TaskID != "" {
		// The task exists before any answer, so a poll right after sees it.
		a.Set(api, call.TaskID, Generating)
		if hook != nil {
			c.hooks.Add(1)
			go func() {
				defer c.hooks.Done()
				hook(c.ctx, call)
			}()
		}
	}
	if call.Lost {
		// Aborting the handler closes the connection with nothing
		// written: the request went out, and no answer ever comes.
		panic(http.ErrAbortHandler)
	}
	var data any
	if call.TaskID != "" {
		data = map[string]string{"taskId": call.TaskID}
	}
	answer(w, call.Code, msg, data)
}

// admit counts a create by key at now if the limit lets it through.
func (c *creator) admit(key string, now time.Time) bool {
	if c.limit <= 0 {
		return true
	}
	times := c.accepted[key]
	for len(times) > 0 && !times[0].After(now.Add(-c.window)) {
		times = times[1:]
	}
	if len(times) >= c.limit {
		c.accepted[key] = times
		return false
	}
	c.accepted[key] = append(times, now)
	return true
}

// credit serves the account's balance.
func (a *API) credit(w http.ResponseWriter) {
	c := a.creates
	c.mu.Lock()
	balance := Credits
	if c.noCredits {
		balance = 0
	}
	c.mu.Unlock()
	answer(w, 200, "success", balance)
}

// answer writes the platform's envelope; its code is also the HTTP
// status, as the platform's create endpoints answer.
func answer(w http.ResponseWriter, code int, msg string, data any) {
	b, _ := json.Marshal(map[string]any{"code": code, "msg": msg, "data": data})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

func absolute(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// newHex is 32 random hex digits: ids unique across runs and servers.
func newHex() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Close stops the deliveries under way, then the server, and waits for
// OnCreate's hooks to return.
func (a *API) Close() {
	a.creates.cancel()
	a.Server.Close()
	a.creates.hooks.Wait()
}
