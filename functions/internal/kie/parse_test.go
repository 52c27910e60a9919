package kie_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func sample(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := fs.ReadFile(events.Files, path.Join("kie-callbacks", name))
	if err != nil {
		tb.Fatalf("read sample: %v", err)
	}
	return b
}

func TestParseReadsEverySample(t *testing.T) {
	const cdn = "https://tempfile.aiquickdraw.com/"
	tests := []struct {
		file string
		want task.Callback
	}{
		{"flux-kontext-success.json", task.Callback{TaskID: "fluxk_7f3a9c2e", Code: 200, Msg: "BFL image generated successfully.", API: "flux-kontext", Sources: []string{cdn + "f/result-7f3a9c2e.jpg"}}},
		{"flux-kontext-400.json", task.Callback{TaskID: "fluxk_b2c41d07", Code: 400, Msg: "Your prompt was flagged by Website as violating content policies.", API: "flux-kontext"}},
		{"flux-kontext-500.json", task.Callback{TaskID: "fluxk_0d9e12aa", Code: 500, Msg: "Internal Error, Please try again later.", API: "flux-kontext"}},
		{"flux-kontext-501.json", task.Callback{TaskID: "fluxk_5e77f0c1", Code: 501, Msg: "Image generation task failed", API: "flux-kontext"}},
		{"4o-image-success.json", task.Callback{TaskID: "4o_91c2d8e4", Code: 200, Msg: "success", API: "4o-image", Sources: []string{cdn + "s/4o-91c2d8e4-1.png", cdn + "s/4o-91c2d8e4-2.png"}}},
		{"4o-image-400.json", task.Callback{TaskID: "4o_3b1f6a20", Code: 400, Msg: "Your content was flagged by OpenAI as violating content policies", API: "4o-image"}},
		{"midjourney-success.json", task.Callback{TaskID: "mj_1a2b3c4d", Code: 200, Msg: "success", API: "midjourney", Sources: []string{cdn + "m/mj-1.png", cdn + "m/mj-2.png", cdn + "m/mj-3.png", cdn + "m/mj-4.png"}}},
		{"midjourney-500.json", task.Callback{TaskID: "mj_9f8e7d6c", Code: 500, Msg: "Image generation failed", API: "midjourney"}},
		{"veo-success.json", task.Callback{TaskID: "veo_task_abcdef12", Code: 200, Msg: "Veo3.1 video generated successfully.", API: "veo", Sources: []string{cdn + "v/veo-abcdef12.mp4"}}},
		{"runway-success.json", task.Callback{TaskID: "ee603959-debb-48d1-98c4-a6d1c717eba6", Code: 200, Msg: "All generated successfully.", API: "runway", Sources: []string{cdn + "k/runway-ee603959.mp4", cdn + "m/runway-ee603959.png"}}},
		{"suno-complete.json", task.Callback{TaskID: "2fac3e1d9f72", Code: 200, Msg: "All generated successfully.", API: "suno", Sources: []string{cdn + "r/track1.mp3", cdn + "r/cover1.jpg"}}},
		{"suno-text.json", task.Callback{TaskID: "5c79b2a4e1d0", Code: 200, Msg: "Text generation completed.", API: "suno", Progress: true}},
		{"suno-first.json", task.Callback{TaskID: "5c79b2a4e1d0", Code: 200, Msg: "First track generated successfully.", API: "suno", Sources: []string{cdn + "r/5c79-track1.mp3", cdn + "r/5c79-cover1.jpg"}, Progress: true}},
		{"suno-error.json", task.Callback{TaskID: "9e41d07c33aa", Code: 501, Msg: "Audio generation failed.", API: "suno"}},
		{"runway-aleph-success.json", task.Callback{TaskID: "aleph-7d2e91c4", Code: 200, Msg: "All generated successfully.", API: "runway-aleph", Sources: []string{cdn + "a/aleph-7d2e91c4.mp4", cdn + "a/aleph-7d2e91c4.jpg"}}},
		{"runway-aleph-fail.json", task.Callback{TaskID: "aleph-0b5c6a11", Code: 400, Msg: "Your prompt was flagged by the content policy.", API: "runway-aleph"}},
		{"market-success.json", task.Callback{TaskID: "e989621f54392584b05867f87b160672", Code: 200, Msg: "Playground task completed successfully.", API: "market", Sources: []string{cdn + "n/e989621f.jpg"}}},
		{"market-fail.json", task.Callback{TaskID: "bd3a37c523149e4adf45a3ddb5faf1a8", Code: 501, Msg: "Playground task failed.", API: "market"}},
	}
	files, _ := fs.Glob(events.Files, "kie-callbacks/*.json")
	if len(files) != len(tests) {
		t.Fatalf("%d samples, %d cases: every sample needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file+" becomes one normalised task", func(t *testing.T) {
			got, err := kie.Parse(sample(t, tt.file))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			assertCallback(t, got, tt.want)
		})
	}
}

func assertCallback(tb testing.TB, got, want task.Callback) {
	tb.Helper()
	if got.TaskID != want.TaskID || got.Code != want.Code || got.Msg != want.Msg || got.API != want.API || !slices.Equal(got.Sources, want.Sources) || got.Progress != want.Progress {
		tb.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestParseCollectsResultsInDocumentOrder(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string
	}{
		{"suno tracks keep each track's audio before its cover", `{"code":200,"msg":"ok","data":{"task_id":"s1","callbackType":"complete","data":[{"audio_url":"a1","image_url":"i1"},{"audio_url":"a2","image_url":"i2"}]}}`, []string{"a1", "i1", "a2", "i2"}},
		{"repeated and empty URLs are kept once", `{"code":200,"msg":"ok","data":{"taskId":"m1","resultUrls":["u1","","u2","u1"]}}`, []string{"u1", "u2"}},
		{"result fields of several shapes are read in the contract's order", `{"code":200,"msg":"ok","data":{"taskId":"x1","info":{"resultImageUrl":"a","result_urls":["b"],"resultUrls":["c"]},"resultUrls":["d"],"resultJson":"{\"resultUrls\":[\"e\"]}","video_url":"f","image_url":"g","result_video_url":"h","result_image_url":"i"}}`, []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"}},
		{"inputs are not results", `{"code":200,"msg":"ok","data":{"taskId":"v1","info":{"originUrls":["in"],"originImageUrl":"in2","resultUrls":["out"]}}}`, []string{"out"}},
		{"a top-level task id is used when data has none", `{"code":200,"msg":"ok","taskId":"top1","data":{"resultUrls":["u"]}}`, []string{"u"}},
		{"a null resultJson has no results", `{"code":200,"msg":"ok","data":{"taskId":"n1","resultJson":null,"state":"success"}}`, nil},
		{"a body without data has no results", `{"code":501,"msg":"failed","taskId":"t1"}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kie.Parse([]byte(tt.body))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !slices.Equal(got.Sources, tt.want) {
				t.Errorf("sources = %q, want %q", got.Sources, tt.want)
			}
		})
	}
}

func TestParseRefusesBadBodies(t *testing.T) {
	long := strings.Repeat("a", kie.MaxTaskIDLength+1)
	many := make([]string, kie.MaxSources+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", fmt.Sprint("https://x/", i))
	}
	tests := []struct {
		name, body, message string
		keepsID             string
	}{
		{"invalid JSON", `{"code":200,`, "body is not a valid JSON object", ""},
		{"a JSON array", `[1,2]`, "body is not a valid JSON object", ""},
		{"no task id anywhere", `{"code":200,"msg":"ok","data":{}}`, "no task id", ""},
		{"an empty task id", `{"code":200,"msg":"ok","data":{"taskId":""}}`, "no task id", ""},
		{"a task id with a slash", `{"code":200,"data":{"taskId":"a/b"}}`, "task id must be", ""},
		{"a task id of 129 characters", `{"code":200,"data":{"taskId":"` + long + `"}}`, "task id must be", ""},
		{"a missing code", `{"msg":"ok","data":{"taskId":"t1"}}`, "code is missing or not an integer", "t1"},
		{"a code in a string", `{"code":"200","data":{"taskId":"t1"}}`, "code is missing or not an integer", "t1"},
		{"a fractional code", `{"code":200.5,"data":{"taskId":"t1"}}`, "code is missing or not an integer", "t1"},
		{"a code with an exponent", `{"code":2e2,"data":{"taskId":"t1"}}`, "code is missing or not an integer", "t1"},
		{"result URLs that are not strings", `{"code":200,"data":{"taskId":"t1","resultUrls":[1]}}`, "has the wrong type", "t1"},
		{"info that is not an object", `{"code":200,"data":{"taskId":"t1","info":"x"}}`, "data.info is not an object", "t1"},
		{"resultJson that is not a string", `{"code":200,"data":{"taskId":"t1","resultJson":{"resultUrls":["u"]}}}`, "data.resultJson must be a string", "t1"},
		{"resultJson holding no JSON", `{"code":200,"data":{"taskId":"t1","resultJson":"{nope"}}`, "data.resultJson is not JSON", "t1"},
		{"too many result URLs", `{"code":200,"data":{"taskId":"t1","resultUrls":[` + strings.Join(many, ",") + `]}}`, "more than 64 result URLs", "t1"},
		{"a result URL too long", `{"code":200,"data":{"taskId":"t1","video_url":"` + strings.Repeat("u", kie.MaxURLLength+1) + `"}}`, "longer than 2048", "t1"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused as invalid", func(t *testing.T) {
			got, err := kie.Parse([]byte(tt.body))
			if task.ErrorCode(err) != task.EINVALID {
				t.Fatalf("error %v, want code %s", err, task.EINVALID)
			}
			if !strings.Contains(task.ErrorMessage(err), tt.message) {
				t.Errorf("message %q, want it to contain %q", task.ErrorMessage(err), tt.message)
			}
			if got.TaskID != tt.keepsID {
				t.Errorf("task id %q, want %q kept for signature checks", got.TaskID, tt.keepsID)
			}
		})
	}
}

func TestParseTruncatesLongMessagesOnACharacterBoundary(t *testing.T) {
	msg := strings.Repeat("é", kie.MaxMsgLength) // two bytes each
	body, _ := json.Marshal(map[string]any{"code": 500, "msg": msg, "data": map[string]any{"taskId": "t1"}})
	got, err := kie.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Msg) != kie.MaxMsgLength || !strings.HasPrefix(msg, got.Msg) {
		t.Errorf("msg of %d bytes, want the first %d bytes of the original", len(got.Msg), kie.MaxMsgLength)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := fs.Glob(events.Files, "kie-callbacks/*.json")
	for _, name := range files {
		b, _ := fs.ReadFile(events.Files, name)
		f.Add(b)
	}
	f.Add([]byte(`{"code":200,"data":{"task_id":"x","data":[{"audio_url":"a"}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := kie.Parse(body)
		if err != nil {
			var e *task.Error
			if !errors.As(err, &e) || e.Code != task.EINVALID {
				t.Fatalf("error %v is not an EINVALID task.Error", err)
			}
			if cb.TaskID != "" && !kie.ValidTaskID(cb.TaskID) {
				t.Fatalf("kept invalid task id %q", cb.TaskID)
			}
			return
		}
		if !kie.ValidTaskID(cb.TaskID) {
			t.Fatalf("accepted invalid task id %q", cb.TaskID)
		}
		if len(cb.Sources) > kie.MaxSources || len(cb.Msg) > kie.MaxMsgLength {
			t.Fatalf("limits exceeded: %d sources, %d-byte msg", len(cb.Sources), len(cb.Msg))
		}
		for _, s := range cb.Sources {
			if s == "" || len(s) > kie.MaxURLLength {
				t.Fatalf("accepted source %q", s)
			}
		}
	})
}

func ExampleParse() {
	cb, err := kie.Parse([]byte(`{"code":200,"msg":"success","data":{"taskId":"mj_1","resultUrls":["https://tempfile.aiquickdraw.com/m/1.png"]}}`))
	fmt.Println(cb.TaskID, cb.Code, cb.API, cb.Sources, err)
	// Output: mj_1 200 midjourney [https://tempfile.aiquickdraw.com/m/1.png] <nil>
}

func TestParseTellsProgressFromFinalCallbacks(t *testing.T) {
	tests := []struct {
		callbackType string
		progress     bool
	}{
		{`"text"`, true},
		{`"first"`, true},
		{`"complete"`, false},
		{`"error"`, false},
		{`"TEXT"`, false}, // the platform's values are lower case; anything else is final
		{`null`, false},
		{`3`, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("callbackType %s is progress: %v", tt.callbackType, tt.progress), func(t *testing.T) {
			cb, err := kie.Parse([]byte(`{"code":200,"msg":"ok","data":{"task_id":"s1","callbackType":` + tt.callbackType + `,"data":[]}}`))
			if err != nil || cb.Progress != tt.progress {
				t.Errorf("Progress %v, err %v", cb.Progress, err)
			}
		})
	}
	t.Run("a callback without callbackType is final", func(t *testing.T) {
		if cb, _ := kie.Parse([]byte(`{"code":200,"msg":"ok","data":{"taskId":"m1","resultUrls":["u"]}}`)); cb.Progress {
			t.Error("Progress is true")
		}
	})
}
