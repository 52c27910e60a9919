package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/submitclient"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

func start(tb testing.TB) *stack.Stack {
	tb.Helper()
	if testing.Short() {
		tb.Skip("builds and runs both functions")
	}
	s, err := stack.Start(context.Background(), stack.Options{Addr: "127.0.0.1:0", Dir: tb.TempDir(), Binaries: binaries, CopierTimeout: 20 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	return s
}

const cdn = "https://tempfile.aiquickdraw.com/"

// localized points a sample's result URLs at files, which serves files of
// the right kind at the same paths.
func localized(body []byte, files *platform.Files) []byte {
	return bytes.ReplaceAll(body, []byte(cdn), []byte(files.URL("")))
}

func TestEverySampleCallbackThroughTheLocalStack(t *testing.T) {
	s := start(t)
	files := platform.ServeFiles()
	defer files.Close()
	client := &platform.Client{URL: s.CallbackURL, Key: s.Key, Retries: 1}

	names, _ := fs.Glob(sample.Files, "kie-callbacks/*.json")
	want := map[string][]string{} // task id → expected sources, nil for a failure
	pending := map[string]bool{}  // task ids that only progress callbacks reached
	for _, name := range names {
		raw, _ := fs.ReadFile(sample.Files, name)
		var probe struct {
			Code   int
			TaskID string `json:"taskId"` // Runway Aleph's
			Data   *struct {
				TaskID       string `json:"taskId"`
				TaskID2      string `json:"task_id"`
				CallbackType string
			}
		}
		json.Unmarshal(raw, &probe)
		id := probe.TaskID
		if probe.Data != nil && probe.Data.TaskID+probe.Data.TaskID2 != "" {
			id = probe.Data.TaskID + probe.Data.TaskID2
		}
		_, seen := want[id]
		answer := map[bool]string{false: `"status":"accepted"`, true: `"status":"duplicate"`}[seen || pending[id]]
		d := client.Send(context.Background(), id, localized(raw, files))
		if !d.OK() || !strings.Contains(d.Body, answer) {
			t.Fatalf("%s: answered %d %s %v, want %s", name, d.Status, d.Body, d.Err, answer)
		}
		switch {
		case probe.Data != nil && (probe.Data.CallbackType == "text" || probe.Data.CallbackType == "first"):
			pending[id] = true
		case probe.Code == 200:
			want[id] = expectedSources(t, path.Base(name))
		default:
			want[id] = nil
		}
	}
	tasks := waitFinished(t, s, len(want))
	for _, task := range tasks {
		sources, ok := want[task.TaskID]
		if pending[task.TaskID] {
			if task.Status != "pending" || len(task.Objects) != 0 || task.Deliveries != 2 {
				t.Errorf("%s: %s with %d objects and %d deliveries, want pending after two progress callbacks", task.TaskID, task.Status, len(task.Objects), task.Deliveries)
			}
			continue
		}
		if !ok {
			t.Errorf("unexpected task %s", task.TaskID)
			continue
		}
		if sources == nil {
			if task.Status != "failed" || len(task.Objects) != 0 {
				t.Errorf("%s: %s with %d objects, want failed", task.TaskID, task.Status, len(task.Objects))
			}
			continue
		}
		if task.Status != "stored" || len(task.Objects) != len(sources) {
			t.Errorf("%s: %s with %d objects (%s), want stored with %d", task.TaskID, task.Status, len(task.Objects), task.Error, len(sources))
			continue
		}
		for i, o := range task.Objects {
			size, digest := platform.Digest("/" + sources[i])
			if o.Source != files.URL(sources[i]) || o.Bytes != size || o.SHA256 != digest {
				t.Errorf("%s object %d: %+v, want %s of %d bytes, sha256 %s", task.TaskID, i, o, sources[i], size, digest)
			}
			checkObject(t, s, o.Key, digest)
		}
	}
	t.Run("GET /_local/events serves one event for each ended task, and none for the pending one", func(t *testing.T) {
		resp, err := http.Get(s.URL + "/_local/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var events []struct {
			DetailType string `json:"detail-type"`
			Source     string
			Detail     struct{ TaskID, Status string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&events); err != nil {
			t.Fatal(err)
		}
		types := map[string]string{}
		for _, ev := range events {
			if ev.Source != "kiehook" {
				t.Errorf("event from %q", ev.Source)
			}
			types[ev.Detail.TaskID] = ev.DetailType
		}
		for _, task := range tasks {
			want := map[string]string{"stored": "Task Stored", "failed": "Task Failed", "copy_failed": "Task Copy Failed"}[task.Status]
			if types[task.TaskID] != want {
				t.Errorf("%s (%s): event %q, want %q", task.TaskID, task.Status, types[task.TaskID], want)
			}
		}
		if len(events) != len(want) {
			t.Errorf("%d events for %d ended tasks", len(events), len(want))
		}
	})
	t.Run("the reader answers every task, and a stored one's links download its files whole", func(t *testing.T) {
		for _, task := range tasks {
			got := read(t, s, task.TaskID, s.ReadToken, http.StatusOK)
			if got.Status != task.Status || len(got.Links) != len(task.Objects) {
				t.Errorf("%s: read %s with %d links, the record is %s with %d objects", task.TaskID, got.Status, len(got.Links), task.Status, len(task.Objects))
				continue
			}
			for i, link := range got.Links {
				resp, err := http.Get(link.URL)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				io.Copy(h, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || hex.EncodeToString(h.Sum(nil)) != task.Objects[i].SHA256 {
					t.Errorf("%s link %d: %d, sha256 differs", task.TaskID, i, resp.StatusCode)
				}
			}
		}
		read(t, s, tasks[0].TaskID, "wrong-token", http.StatusUnauthorized)
		read(t, s, "nobody", s.ReadToken, http.StatusNotFound)
	})
}

// read asks the stack's reader for id with token, and wants status.
func read(tb testing.TB, s *stack.Stack, id, token string, status int) (answer struct {
	Status string
	Links  []struct{ Key, URL, ExpiresAt string }
}) {
	tb.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.ReaderURL+"/tasks/"+id, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != status {
		tb.Errorf("GET /tasks/%s: %d (%v), want %d", id, resp.StatusCode, err, status)
	}
	return answer
}

// expectedSources are the result paths of each success sample, in order.
func expectedSources(tb testing.TB, file string) []string {
	tb.Helper()
	sources := map[string][]string{
		"flux-kontext-success.json": {"f/result-7f3a9c2e.jpg"},
		"4o-image-success.json":     {"s/4o-91c2d8e4-1.png", "s/4o-91c2d8e4-2.png"},
		"midjourney-success.json":   {"m/mj-1.png", "m/mj-2.png", "m/mj-3.png", "m/mj-4.png"},
		"veo-success.json":          {"v/veo-abcdef12.mp4"},
		"runway-success.json":       {"k/runway-ee603959.mp4", "m/runway-ee603959.png"},
		"runway-aleph-success.json": {"a/aleph-7d2e91c4.mp4", "a/aleph-7d2e91c4.jpg"},
		"suno-complete.json":        {"r/track1.mp3", "r/cover1.jpg"},
		"market-success.json":       {"n/e989621f.jpg"},
	}[file]
	if sources == nil {
		tb.Fatalf("no expected sources for %s", file)
	}
	return sources
}

func waitFinished(tb testing.TB, s *stack.Stack, n int) []stack.Task {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tasks, err := s.Tasks(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		finished := 0
		for _, task := range tasks {
			if task.Status == "stored" || task.Status == "failed" || task.Status == "copy_failed" {
				finished++
			}
		}
		if finished == n {
			return tasks
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d tasks finished: %+v", finished, n, tasks)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkObject reads an object through the stack's own route.
func checkObject(tb testing.TB, s *stack.Stack, key, digest string) {
	tb.Helper()
	resp, err := http.Get(s.URL + "/_local/objects/" + key)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Amz-Meta-Sha256") != digest {
		tb.Errorf("%s: %d, sha256 metadata %q, want %s", key, resp.StatusCode, resp.Header.Get("X-Amz-Meta-Sha256"), digest)
	}
}

func TestEveryEventFileThroughTheBuiltBinaries(t *testing.T) {
	s := start(t)
	files := platform.ServeFiles()
	defer files.Close()

	t.Run("the Function URL events answer as their names say", func(t *testing.T) {
		for _, tt := range []struct {
			file   string
			status int
			answer string
		}{
			{"callback-success.json", 200, "accepted"},
			{"callback-duplicate.json", 200, "duplicate"},
			{"callback-failure.json", 200, "accepted"},
			{"callback-bad-signature.json", 401, ""},
		} {
			raw, _ := fs.ReadFile(sample.Files, tt.file)
			out, err := s.Invoke(context.Background(), "CallbackFunction", raw)
			if err != nil {
				t.Fatalf("%s: %v", tt.file, err)
			}
			var resp events.LambdaFunctionURLResponse
			json.Unmarshal(out, &resp)
			if resp.StatusCode != tt.status || !strings.Contains(resp.Body, tt.answer) {
				t.Errorf("%s: %d %s, want %d %s", tt.file, resp.StatusCode, resp.Body, tt.status, tt.answer)
			}
		}
	})

	t.Run("the SQS event copies every task it names, once", func(t *testing.T) {
		raw, _ := fs.ReadFile(sample.Files, "copier-batch.json")
		var ev events.SQSEvent
		json.Unmarshal(raw, &ev)
		named := map[string]bool{} // a batch may deliver a task twice
		for _, r := range ev.Records {
			var m struct{ TaskID string }
			json.Unmarshal([]byte(r.Body), &m)
			seed(t, s, m.TaskID, files.URL(m.TaskID+".png"))
			named[m.TaskID] = true
		}
		out, err := s.Invoke(context.Background(), "CopierFunction", raw)
		if err != nil {
			t.Fatal(err)
		}
		// A second delivery of a task in the batch finds the first's lease
		// and comes back later.
		var resp events.SQSEventResponse
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) > len(ev.Records)-len(named) {
			t.Fatalf("response %s: %v, want at most one failure per repeated delivery", out, err)
		}
		tasks, _ := s.Tasks(context.Background())
		stored := 0
		for _, task := range tasks {
			if task.Status == "stored" {
				stored++
			}
		}
		if stored != len(named) {
			t.Errorf("%d stored, want %d: %+v", stored, len(named), tasks)
		}
	})
}

// seed writes a queued task straight into the table, as the callback would.
func seed(tb testing.TB, s *stack.Stack, id, source string) {
	tb.Helper()
	_, err := s.Env.DynamoDB.PutItem(context.Background(), &dynamodb.PutItemInput{
		TableName: &s.Env.Table,
		Item: map[string]types.AttributeValue{
			"taskId":  &types.AttributeValueMemberS{Value: id},
			"status":  &types.AttributeValueMemberS{Value: "queued"},
			"code":    &types.AttributeValueMemberN{Value: "200"},
			"sources": &types.AttributeValueMemberL{Value: []types.AttributeValue{&types.AttributeValueMemberS{Value: source}}},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func TestTheFrontPlaysAFunctionURL(t *testing.T) {
	s := start(t)
	for _, tt := range []struct {
		name, method, contentType, body string
		status                          int
	}{
		{"a GET reaches the function and is refused", http.MethodGet, "", "", 405},
		{"a form body arrives as text and is refused", http.MethodPost, "application/x-www-form-urlencoded", "a=b", 415},
		{"an unsigned callback is refused", http.MethodPost, "application/json", `{"code":200,"data":{"taskId":"x"}}`, 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, s.CallbackURL, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("got %d %s, want %d", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status)
			}
		})
	}
	t.Run("a body over 6 MB is refused before the function, as Lambda does", func(t *testing.T) {
		resp, err := http.Post(s.CallbackURL, "application/json", bytes.NewReader(make([]byte, 6<<20+1)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("got %d", resp.StatusCode)
		}
	})
	t.Run("the token in the printed callback URL is the one the function wants", func(t *testing.T) {
		u, _ := url.Parse(s.CallbackURL)
		if u.Query().Get("token") == "" || s.Token != u.Query().Get("token") {
			t.Errorf("callback URL %s", s.CallbackURL)
		}
	})
}

func TestAFolderTheEmulatorCannotRunInIsRefusedClearly(t *testing.T) {
	_, err := stack.Start(context.Background(), stack.Options{Addr: "127.0.0.1:0", Dir: filepath.Join(t.TempDir(), "50%")})
	if err == nil || !strings.Contains(err.Error(), "cannot run in a path that holds %") {
		t.Errorf("error %v", err)
	}
}

func TestATestApartRunsInAChildOfTheTestBinaryOnWhatItBuilt(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	parent, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", os.Getppid()))
	if err != nil {
		t.Fatal(err)
	}
	if exe, _, _ := strings.Cut(string(parent), "\x00"); exe != os.Args[0] {
		t.Errorf("run by %q, not by the test binary %q", exe, os.Args[0])
	}
	if binaries == nil || binaries.RIE == "" || len(binaries.Bootstrap) != len(stack.Functions)+1 {
		t.Errorf("the child has not the parent's functions: %+v", binaries)
	}
}

func TestASubmissionThroughTheLocalStack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the functions")
	}
	s, err := stack.Start(context.Background(), stack.Options{Addr: "127.0.0.1:0", Dir: t.TempDir(), Binaries: binaries, Submissions: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx := context.Background()
	c := submitclient.New(s.SubmitURL, s.SubmitToken)
	input := map[string]any{"prompt": "a lighthouse at dusk", "taskType": "mj_txt2img"}
	first, err := c.Submit(ctx, "midjourney", input, map[string]string{"user": "7"}, "order-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Submit(ctx, "midjourney", input, map[string]string{"user": "7"}, "order-1")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a repeat of the key is the same submission", func(t *testing.T) {
		if again.SubmissionID != first.SubmissionID {
			t.Errorf("repeat made %s, first %s", again.SubmissionID, first.SubmissionID)
		}
	})
	tasks := waitFinished(t, s, 1)
	task := tasks[0]
	t.Run("the platform made one task, and it ended stored with the submission's id and labels", func(t *testing.T) {
		creates := s.Platform.Creates()
		if len(creates) != 1 || creates[0].TaskID != task.TaskID {
			t.Fatalf("platform creates %+v, stored task %s", creates, task.TaskID)
		}
		if task.Status != "stored" || task.Submission != first.SubmissionID || task.Labels["user"] != "7" || len(task.Objects) != 4 {
			t.Errorf("task %+v", task)
		}
	})
	t.Run("GET /submissions/<id> names the task", func(t *testing.T) {
		got, err := c.Get(ctx, first.SubmissionID)
		if err != nil || got.Status != "submitted" || got.TaskID != task.TaskID {
			t.Errorf("got %+v, %v", got, err)
		}
	})
	t.Run("the sample events submit, and a second delivery of the message creates nothing more", func(t *testing.T) {
		for _, tt := range []struct{ function, file, want string }{
			{"SubmitFunction", "submit-post.json", `"statusCode":202`},
			{"SubmitterFunction", "submitter-batch.json", `"batchItemFailures":null`},
		} {
			raw, _ := fs.ReadFile(sample.Files, tt.file)
			out, err := s.Invoke(ctx, tt.function, raw)
			if err != nil || !strings.Contains(string(out), tt.want) {
				t.Fatalf("%s: %s, %v; want %s", tt.file, out, err, tt.want)
			}
		}
		waitFinished(t, s, 2)
		if creates := s.Platform.Creates(); len(creates) != 2 {
			t.Errorf("%d creates for two submissions: %+v", len(creates), creates)
		}
	})
	t.Run("the bus heard it submitted, then stored, both with the submission's id", func(t *testing.T) {
		var seen []string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(seen) < 2; time.Sleep(50 * time.Millisecond) {
			seen = nil
			for _, ev := range s.Env.Events() {
				var d struct {
					SubmissionID string `json:"submissionId"`
				}
				json.Unmarshal(ev.Detail, &d)
				if d.SubmissionID == first.SubmissionID {
					seen = append(seen, ev.DetailType)
				}
			}
		}
		if strings.Join(seen, ", ") != "Task Submitted, Task Stored" {
			t.Errorf("events with the submission's id: %v", seen)
		}
	})
}
