package platform_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/platform"
)

// endpoints are each API's create and record-info routes, with a create
// body of its own (callBackUrl added by createBody).
var endpoints = []struct {
	api, create, record string
	body                map[string]any
}{
	{"flux-kontext", "/api/v1/flux/kontext/generate", "/api/v1/flux/kontext/record-info", map[string]any{"prompt": "a lighthouse", "model": "flux-kontext-pro", "aspectRatio": "16:9"}},
	{"4o-image", "/api/v1/gpt4o-image/generate", "/api/v1/gpt4o-image/record-info", map[string]any{"prompt": "a lighthouse", "size": "1:1", "nVariants": 2}},
	{"midjourney", "/api/v1/mj/generate", "/api/v1/mj/record-info", map[string]any{"taskType": "mj_txt2img", "prompt": "a lighthouse", "speed": "fast"}},
	{"veo", "/api/v1/veo/generate", "/api/v1/veo/record-info", map[string]any{"prompt": "waves at dusk", "model": "veo3_fast"}},
	{"runway", "/api/v1/runway/generate", "/api/v1/runway/record-detail", map[string]any{"prompt": "waves at dusk", "duration": 5, "quality": "720p"}},
	{"runway-aleph", "/api/v1/aleph/generate", "/api/v1/aleph/record-info", map[string]any{"prompt": "make it snow", "videoUrl": "https://example.com/in.mp4"}},
	{"suno", "/api/v1/generate", "/api/v1/generate/record-info", map[string]any{"prompt": "a calm sea", "customMode": false, "model": "V4_5"}},
	{"market", "/api/v1/jobs/createTask", "/api/v1/jobs/recordInfo", map[string]any{"model": "google/nano-banana", "input": map[string]any{"prompt": "a banana"}}},
}

func createBody(base map[string]any, callback string) string {
	m := map[string]any{"callBackUrl": callback}
	for k, v := range base {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

type reply struct {
	status int
	Code   int
	Msg    string
	Data   json.RawMessage
}

func (r reply) taskID() string {
	var d struct{ TaskID string }
	json.Unmarshal(r.Data, &d)
	return d.TaskID
}

func call(t *testing.T, method, url, key, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

const callback = "https://hooks.example/cb?token=t1&sub=sub_1"

func TestEachCreateEndpointMakesATaskOfItsAPI(t *testing.T) {
	p := platform.ServeAPI("api-key")
	defer p.Close()
	seen := map[string]bool{}
	for i, e := range endpoints {
		t.Run("POST "+e.create+" makes a "+e.api+" task that record-info knows", func(t *testing.T) {
			r := call(t, http.MethodPost, p.URL+e.create, "api-key", createBody(e.body, callback))
			id := r.taskID()
			if r.status != 200 || r.Code != 200 || r.Msg != "success" || id == "" {
				t.Fatalf("answered %d %+v", r.status, r)
			}
			if seen[id] {
				t.Errorf("task id %s made twice", id)
			}
			seen[id] = true
			got := p.Creates()
			if len(got) != i+1 || got[i].API != e.api || got[i].TaskID != id || got[i].Code != 200 || got[i].CallBackURL != callback || got[i].Lost {
				t.Errorf("log ends %+v", got[len(got)-1])
			}
			if r := call(t, http.MethodGet, p.URL+e.record+"?taskId="+id, "api-key", ""); r.Code != 200 || !strings.Contains(string(r.Data), id) {
				t.Errorf("record-info answered %+v", r)
			}
		})
	}
}

func TestCreateAnswersEachRefusalWithItsCode(t *testing.T) {
	flux := endpoints[0]
	tests := []struct {
		name  string
		setup func(*platform.API)
		key   string
		body  string
		want  int
	}{
		{"a wrong key is answered 401", nil, "wrong-key", createBody(flux.body, callback), 401},
		{"a body without a callBackUrl is answered 422", nil, "api-key", `{"prompt":"a lighthouse"}`, 422},
		{"a body that is not JSON is answered 422", nil, "api-key", `prompt=a lighthouse`, 422},
		{"an account out of credits is answered 402", func(p *platform.API) { p.SetCredits(false) }, "api-key", createBody(flux.body, callback), 402},
		{"an account with credits again makes the task", func(p *platform.API) { p.SetCredits(false); p.SetCredits(true) }, "api-key", createBody(flux.body, callback), 200},
		{"a platform under maintenance answers 455", func(p *platform.API) { p.SetMaintenance(true) }, "api-key", createBody(flux.body, callback), 455},
		{"the RateLimit switch answers creates 429 too", func(p *platform.API) { p.RateLimit(true) }, "api-key", createBody(flux.body, callback), 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := platform.ServeAPI("api-key")
			defer p.Close()
			if tt.setup != nil {
				tt.setup(p)
			}
			r := call(t, http.MethodPost, p.URL+flux.create, tt.key, tt.body)
			if r.status != tt.want || r.Code != tt.want {
				t.Errorf("answered HTTP %d, code %d %q; want %d in both", r.status, r.Code, r.Msg, tt.want)
			}
			log := p.Creates()
			if len(log) != 1 || log[0].Code != tt.want || (log[0].TaskID != "") != (tt.want == 200) || (tt.want != 200) != (r.taskID() == "") {
				t.Errorf("log %+v, answer's task %q", log, r.taskID())
			}
		})
	}
}

func TestCreateLimitSlidesPerKeyAcrossEndpoints(t *testing.T) {
	type step struct {
		sleep  time.Duration
		rotate string // the API key from this step on
		want   int
	}
	repeat := func(n, want int) []step {
		s := make([]step, n)
		for i := range s {
			s[i].want = want
		}
		return s
	}
	tests := []struct {
		name   string
		limit  int
		window time.Duration
		steps  []step
	}{
		{"the 21st create within 10 s is answered 429 and makes nothing", -1, platform.DefaultCreateWindow, append(repeat(20, 200), step{want: 429})},
		// The 429 at 0.5 s does not count: at 1.1 s the first create has
		// left the window and the second alone is in it.
		{"a create is let through again once the oldest has left the window", 2, time.Second,
			[]step{{want: 200}, {sleep: 500 * time.Millisecond, want: 200}, {want: 429}, {sleep: 600 * time.Millisecond, want: 200}, {want: 429}}},
		{"a limit of 0 lets every create through", 0, time.Second, repeat(30, 200)},
		{"a new API key has a window of its own", 1, time.Minute, []step{{want: 200}, {want: 429}, {rotate: "new-key", want: 200}, {want: 429}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := platform.ServeAPI("api-key")
			defer p.Close()
			limit := platform.DefaultCreateLimit
			if tt.limit >= 0 {
				p.SetCreateLimit(tt.limit, tt.window)
				limit = tt.limit
			}
			key := "api-key"
			for i, s := range tt.steps {
				time.Sleep(s.sleep)
				if s.rotate != "" {
					key = s.rotate
					p.RotateKey(key)
				}
				e := endpoints[i%len(endpoints)]
				if r := call(t, http.MethodPost, p.URL+e.create, key, createBody(e.body, callback)); r.status != s.want || r.Code != s.want || (r.taskID() == "") != (s.want != 200) {
					t.Fatalf("create %d answered HTTP %d %+v, want %d", i+1, r.status, r, s.want)
				}
			}
			// MostInWindow counts every key's tasks together.
			rotated := slices.ContainsFunc(tt.steps, func(s step) bool { return s.rotate != "" })
			if most := platform.MostInWindow(p.Creates(), tt.window); limit > 0 && !rotated && most > limit {
				t.Errorf("%d tasks made within one window, limit %d", most, limit)
			}
		})
	}
}

func TestMostInWindowCountsOnlyTasksMade(t *testing.T) {
	t0 := time.Now()
	at := func(ms int, id string) platform.CreateCall {
		return platform.CreateCall{At: t0.Add(time.Duration(ms) * time.Millisecond), TaskID: id}
	}
	calls := []platform.CreateCall{at(0, "a"), at(100, ""), at(200, "b"), at(999, "c"), at(1000, "d"), at(1300, "e")}
	// (0 s, 1 s] holds b, c, d and the refused call; (0.3 s, 1.3 s] c, d and e.
	if got := platform.MostInWindow(calls, time.Second); got != 3 {
		t.Errorf("MostInWindow = %d, want 3", got)
	}
}

func TestCreditEndpointReportsTheBalance(t *testing.T) {
	tests := []struct {
		name     string
		credits  bool
		key      string
		want     int
		positive bool
	}{
		{"an account with credits reports a positive balance", true, "api-key", 200, true},
		{"an account out of credits reports 0", false, "api-key", 200, false},
		{"a wrong key is answered 401", true, "wrong-key", 401, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := platform.ServeAPI("api-key")
			defer p.Close()
			p.SetCredits(tt.credits)
			r := call(t, http.MethodGet, p.URL+"/api/v1/chat/credit", tt.key, "")
			if r.status != tt.want || r.Code != tt.want {
				t.Fatalf("answered HTTP %d %+v", r.status, r)
			}
			var balance float64
			json.Unmarshal(r.Data, &balance)
			if tt.want == 200 && (balance > 0) != tt.positive {
				t.Errorf("balance %s", r.Data)
			}
		})
	}
}

func TestAmbiguousCreatesMakeTheTaskAndLoseTheAnswer(t *testing.T) {
	tests := []struct {
		name string
		rate float64
		n    int
		lost []int // which creates, from 1, lose their answer
	}{
		{"a rate of 1 loses every answer", 1, 3, []int{1, 2, 3}},
		{"a rate of 0.25 loses the 4th and the 8th", 0.25, 8, []int{4, 8}},
		{"a rate of 0 loses none", 0, 4, nil},
	}
	e := endpoints[3]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := platform.ServeAPI("api-key")
			defer p.Close()
			p.SetAmbiguous(tt.rate)
			client := &http.Client{Transport: &http.Transport{}}
			var lost []int
			for i := 1; i <= tt.n; i++ {
				var wrote error = io.ErrUnexpectedEOF // until WroteRequest says otherwise
				trace := &httptrace.ClientTrace{WroteRequest: func(w httptrace.WroteRequestInfo) { wrote = w.Err }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, p.URL+e.create, strings.NewReader(createBody(e.body, callback)))
				req.Header.Set("Authorization", "Bearer api-key")
				resp, err := client.Do(req)
				if wrote != nil {
					t.Fatalf("create %d: the request was not written: %v", i, wrote)
				}
				if err != nil {
					lost = append(lost, i)
					continue
				}
				resp.Body.Close()
			}
			log := p.Creates()
			var logged []int
			for i, c := range log {
				if c.TaskID == "" || c.Code != 200 {
					t.Errorf("create %d logged %+v, want a task made", i+1, c)
				}
				if c.Lost {
					logged = append(logged, i+1)
				}
				if r := call(t, http.MethodGet, p.URL+e.record+"?taskId="+c.TaskID, "api-key", ""); r.Code != 200 {
					t.Errorf("record-info does not know %s: %+v", c.TaskID, r)
				}
			}
			if !slices.Equal(lost, tt.lost) || !slices.Equal(logged, tt.lost) {
				t.Errorf("the client saw no answer to creates %v, the log says %v lost; want %v", lost, logged, tt.lost)
			}
		})
	}
}

// received is one callback a test's receiver took.
type received struct {
	query, timestamp, signature string
	body                        []byte
}

func TestDeliverCallsBackToTheCreatesCallBackUrl(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]received{} // by the callback URL's sub
	arrived := make(chan string, 64)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		sub := r.URL.Query().Get("sub")
		mu.Lock()
		got[sub] = append(got[sub], received{r.URL.RawQuery, r.Header.Get("X-Webhook-Timestamp"), r.Header.Get("X-Webhook-Signature"), b})
		mu.Unlock()
		w.Write([]byte(`{"status":"received"}`))
		arrived <- sub
	}))
	defer receiver.Close()
	files := platform.ServeFiles()
	defer files.Close()
	p := platform.ServeAPI("api-key")
	defer p.Close()
	p.Deliver(&platform.Client{Key: "webhook-key"}, files, 10*time.Millisecond)

	for _, e := range endpoints {
		t.Run("a "+e.api+" task calls back, signed, with its results", func(t *testing.T) {
			cb := receiver.URL + "/cb?token=t1&sub=" + e.api
			id := call(t, http.MethodPost, p.URL+e.create, "api-key", createBody(e.body, cb)).taskID()
			want := len(platform.Stages(e.api, id, 200, nil))
			for n := 0; n < want; {
				select {
				case sub := <-arrived:
					if sub == e.api {
						n++
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("%d of %d callbacks came", n, want)
				}
			}
			mu.Lock()
			calls := got[e.api]
			mu.Unlock()
			urls := platform.ResultURLs(files, e.api, id)
			for _, c := range calls {
				if c.query != "token=t1&sub="+e.api || c.signature != platform.Sign("webhook-key", id, c.timestamp) {
					t.Errorf("callback to ?%s signed %q at %s", c.query, c.signature, c.timestamp)
				}
			}
			if last := calls[len(calls)-1].body; string(last) != string(platform.Body(e.api, id, 200, urls)) {
				t.Errorf("final callback %s", last)
			}
			req, _ := http.NewRequest(http.MethodGet, p.URL+e.record+"?taskId="+id, nil)
			req.Header.Set("Authorization", "Bearer api-key")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != string(platform.RecordInfo(e.api, id, platform.Success, urls)) {
				t.Errorf("record-info after the callback: %s", b)
			}
		})
	}
}

func TestCloseStopsTheDeliveriesStillWaiting(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a callback came after Close")
	}))
	defer receiver.Close()
	files := platform.ServeFiles()
	defer files.Close()
	p := platform.ServeAPI("api-key")
	p.Deliver(&platform.Client{Key: "webhook-key"}, files, time.Hour)
	e := endpoints[0]
	call(t, http.MethodPost, p.URL+e.create, "api-key", createBody(e.body, receiver.URL+"/cb"))
	start := time.Now()
	p.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %s", took)
	}
}
