package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/recovery"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// TestRecoveryOnTheLocalStack fails copies the way the reconciler leaves
// them (copy_failed, their Task Copy Failed event accepted, the message in
// the dead-letter queue), recovers them with the commands, and checks that
// the copier stores them and that Task Stored arrives for each.
func TestRecoveryOnTheLocalStack(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	ctx := context.Background()
	s, files, r := localStack(t)
	failed := func(id string) {
		t.Helper()
		item := map[string]types.AttributeValue{
			"taskId": str(id), "status": str("copy_failed"), "api": str("veo"), "code": &types.AttributeValueMemberN{Value: "200"}, "msg": str("success"),
			"sources":  &types.AttributeValueMemberL{Value: []types.AttributeValue{str(files.URL(id + ".png"))}},
			"receives": &types.AttributeValueMemberN{Value: "5"}, "error": str("copy retries exhausted"),
			"updatedAt": str("2026-11-30T00:00:00Z"), "notifiedAt": str("2026-11-30T00:01:00Z"), "expiresAt": &types.AttributeValueMemberN{Value: "4102444800"},
		}
		if _, err := s.Env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Env.Table, Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("requeue stores a copy_failed task and puts its Task Stored", func(t *testing.T) {
		failed("ops_requeued")
		var out bytes.Buffer
		if err := run(ctx, r, []string{"requeue", "ops_requeued"}, &out); err != nil {
			t.Fatal(err)
		}
		waitStored(t, s, "ops_requeued")
	})
	t.Run("redrive requeues every task of the dead-letter queue", func(t *testing.T) {
		failed("ops_redriven")
		if _, err := s.Env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.Env.DLQURL, MessageBody: aws.String(`{"taskId":"ops_redriven"}`)}); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := run(ctx, r, []string{"redrive"}, &out); err != nil || !strings.Contains(out.String(), " moved: requeued from copy_failed") {
			t.Fatalf("%v: %s", err, out.String())
		}
		waitStored(t, s, "ops_redriven")
	})
	queued := func(id string, leaseUntil time.Time) {
		t.Helper()
		item := map[string]types.AttributeValue{
			"taskId": str(id), "status": str("queued"), "openStatus": str("queued"), "api": str("veo"), "code": &types.AttributeValueMemberN{Value: "200"}, "msg": str("success"),
			"sources":    &types.AttributeValueMemberL{Value: []types.AttributeValue{str(files.URL(id + ".png"))}},
			"receives":   &types.AttributeValueMemberN{Value: "5"},
			"leaseOwner": str("copier-" + id), "leaseUntil": &types.AttributeValueMemberN{Value: fmt.Sprint(leaseUntil.UnixMilli())},
			"updatedAt": str("2026-11-30T00:00:00Z"), "expiresAt": &types.AttributeValueMemberN{Value: "4102444800"},
		}
		if _, err := s.Env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Env.Table, Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a redrive of a task still queued with its deliveries used up holds: its new message stores it", func(t *testing.T) {
		queued("ops_exhausted", time.Now().Add(-time.Minute))
		if _, err := s.Env.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.Env.DLQURL, MessageBody: aws.String(`{"taskId":"ops_exhausted"}`)}); err != nil {
			t.Fatal(err)
		}
		if letters, _, err := r.Redrive(ctx); err != nil || !slices.Contains(letters, recovery.Letter{TaskID: "ops_exhausted", Action: recovery.Moved, Why: "requeued from queued"}) {
			t.Fatalf("letters %+v, error %v", letters, err)
		}
		waitStored(t, s, "ops_exhausted")
	})
	t.Run("an unknown task and an unknown command are errors", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(ctx, r, []string{"requeue", "ops_nobody"}, &out); err == nil || !strings.Contains(err.Error(), "no record") {
			t.Errorf("error %v", err)
		}
		if err := run(ctx, r, []string{"requeue"}, &out); err == nil {
			t.Error("requeue without a task id must fail")
		}
	})
}

// localStack is a stack, a server of result files, and the commands'
// Recovery on them.
func localStack(t *testing.T) (*stack.Stack, *platform.Files, *Recovery) {
	t.Helper()
	return localStackIn(t, t.TempDir())
}

// localStackIn is localStack with its logs under dir/logs.
func localStackIn(t *testing.T, dir string) (*stack.Stack, *platform.Files, *Recovery) {
	t.Helper()
	s, err := stack.Start(context.Background(), stack.Options{Addr: "127.0.0.1:0", Dir: dir, Binaries: binaries, CopierTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	files := platform.ServeFiles()
	t.Cleanup(files.Close)
	r, err := recoveryAt(context.Background(), s.Env.DynamoDBURL, s.Env.SQSURL, recovery.Resources{Table: s.Env.Table, QueueURL: s.Env.QueueURL, DLQURL: s.Env.DLQURL})
	if err != nil {
		t.Fatal(err)
	}
	return s, files, r
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// waitStored waits for id to be stored and its Task Stored event put.
func waitStored(tb testing.TB, s *stack.Stack, id string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range s.Env.Events() {
			var d struct{ TaskID, Status string }
			json.Unmarshal(ev.Detail, &d)
			if ev.DetailType == "Task Stored" && d.TaskID == id && d.Status == "stored" {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	tasks, _ := s.Tasks(context.Background())
	tb.Fatalf("%s: no Task Stored within 30 s; records %+v", id, tasks)
}

func TestCheckSendsASignedCallbackAndShowsTheTaskEnded(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	ctx := context.Background()
	s, files, r := localStack(t)
	caller := Caller{CallbackURL: s.CallbackURL, Key: s.Key}
	for _, tt := range []struct{ name, url, want string }{
		{"without a result URL it sends a failure, which ends failed", "", " is failed "},
		{"with a result URL it sends a success, which ends stored", files.URL("check.png"), " is stored "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := r.Check(ctx, caller, tt.url, 30*time.Second, &out); err != nil || !strings.Contains(out.String(), tt.want) {
				t.Errorf("%v:\n%s", err, out.String())
			}
			if strings.Contains(out.String(), s.Token) {
				t.Errorf("the token is shown:\n%s", out.String())
			}
		})
	}
	t.Run("a wrong key is an error that says where to look", func(t *testing.T) {
		var out bytes.Buffer
		err := r.Check(ctx, Caller{CallbackURL: s.CallbackURL, Key: "wrong"}, "", time.Second, &out)
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "Troubleshooting") {
			t.Errorf("error %v", err)
		}
	})
}

func TestURLsShowWhatThePlatformAndAnApplicationNeed(t *testing.T) {
	var out bytes.Buffer
	Caller{CallbackURL: "https://cb.example/?token=t0k", ReaderURL: "https://rd.example/", ReadToken: "r34d"}.PrintURLs(&out)
	for _, want := range []string{"callBackUrl  https://cb.example/?token=t0k\n", "https://rd.example/tasks/<taskId>", "read token   r34d "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "submit") {
		t.Errorf("a stack without submitting shows a submit URL:\n%s", out.String())
	}
	t.Run("a stack that takes submissions shows the submit URL", func(t *testing.T) {
		var out bytes.Buffer
		Caller{CallbackURL: "https://cb.example/?token=t0k", ReaderURL: "https://rd.example/", ReadToken: "r34d", SubmitURL: "https://sb.example/"}.PrintURLs(&out)
		if !strings.Contains(out.String(), "submit       https://sb.example/submissions") {
			t.Errorf("output\n%s", out.String())
		}
	})
}

func TestACheckThatCannotConnectShowsNoToken(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	const token = "s3cr3t+t0k/en"
	r := &Recovery{Recovery: &recovery.Recovery{Now: time.Now}}
	var out bytes.Buffer
	err := r.Check(context.Background(), Caller{CallbackURL: closed.URL + "/?token=" + url.QueryEscape(token), Key: "k"}, "", time.Second, &out)
	if err == nil {
		t.Fatal("a callback URL nobody answers must be an error")
	}
	for _, shown := range []string{err.Error(), out.String()} {
		if strings.Contains(shown, token) || strings.Contains(shown, url.QueryEscape(token)) {
			t.Errorf("the token is shown: %s", shown)
		}
	}
}

// TestNoCommandAndNoFunctionShowsASecret runs the commands against the
// local stack, whose key and tokens are known, through successes and
// failures, and reads every line they printed and every function logged.
func TestNoCommandAndNoFunctionShowsASecret(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	s, files, r := localStackIn(t, dir)
	var shown bytes.Buffer
	show := func(err error) {
		if err != nil {
			fmt.Fprintln(&shown, err)
		}
	}
	caller := Caller{CallbackURL: s.CallbackURL, Key: s.Key}
	show(r.Check(ctx, caller, "", 30*time.Second, &shown))
	show(r.Check(ctx, caller, files.URL("shown.png"), 30*time.Second, &shown))
	show(r.Check(ctx, Caller{CallbackURL: s.CallbackURL, Key: "wrong"}, "", time.Second, &shown))
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	show(r.Check(ctx, Caller{CallbackURL: closed.URL + "/?token=" + url.QueryEscape(s.Token), Key: s.Key}, "", time.Second, &shown))
	show(run(ctx, r, []string{"requeue", "ops_nobody"}, &shown))
	show(run(ctx, r, []string{"redrive"}, &shown))
	logs, err := filepath.Glob(filepath.Join(dir, "logs", "*"))
	if err != nil || len(logs) == 0 {
		t.Fatalf("no function logs in %s: %v", dir, err)
	}
	texts := map[string]string{"the commands' output": shown.String()}
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		texts[filepath.Base(path)] = string(b)
	}
	for what, text := range texts {
		for name, secret := range map[string]string{"the webhook key": s.Key, "the callback token": s.Token, "the read token": s.ReadToken} {
			if secret == "" {
				t.Fatalf("the local stack has no %s to look for", name)
			}
			if strings.Contains(text, secret) || strings.Contains(text, url.QueryEscape(secret)) {
				t.Errorf("%s shows %s", what, name)
			}
		}
	}
}

// TestDeliveriesUsedUpBehindABacklogAreGivenUpAndRedriveStoresThem is
// the dead-letter path end to end: 60 tasks use up their deliveries while
// 50 older records wait queued, more than a run lists; all 60 end
// copy_failed with their event, and once the source is back, redrive
// stores them all.
func TestDeliveriesUsedUpBehindABacklogAreGivenUpAndRedriveStoresThem(t *testing.T) {
	if !stack.Apart(t, binaries) {
		return
	}
	ctx := context.Background()
	opts := stack.Options{Addr: "127.0.0.1:0", Dir: t.TempDir(), Binaries: binaries, CopierTimeout: 20 * time.Second}
	// Five quick deliveries of each message.
	opts.Emulators.VisibilityTimeout, opts.Emulators.MaxReceiveCount = time.Second, 5
	s, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	files := platform.ServeFiles()
	t.Cleanup(files.Close)
	r, err := recoveryAt(ctx, s.Env.DynamoDBURL, s.Env.SQSURL, recovery.Resources{Table: s.Env.Table, QueueURL: s.Env.QueueURL, DLQURL: s.Env.DLQURL})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		item := map[string]types.AttributeValue{
			"taskId": str(fmt.Sprintf("waiting_%02d", i)), "status": str("queued"), "openStatus": str("queued"), "api": str("veo"),
			"code": &types.AttributeValueMemberN{Value: "200"}, "msg": str("success"),
			"updatedAt": str("2026-11-01T00:00:00Z"), "expiresAt": &types.AttributeValueMemberN{Value: "4102444800"},
		}
		if _, err := s.Env.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.Env.Table, Item: item}); err != nil {
			t.Fatal(err)
		}
	}
	files.SetFaults(1) // every download answers 503
	client := &platform.Client{URL: s.CallbackURL, Key: s.Key}
	var ids []string
	for i := range 60 {
		id := fmt.Sprintf("exhausted_%02d", i)
		body, _ := json.Marshal(map[string]any{"code": 200, "msg": "success", "data": map[string]any{"taskId": id, "resultUrls": []string{files.URL(id + ".png")}}})
		if d := client.Send(ctx, id, body); !d.OK() {
			t.Fatalf("%s: %d %v", id, d.Status, d.Err)
		}
		ids = append(ids, id)
	}
	status := func(id string) string {
		rec, err := r.record(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Status
	}
	waitAll := func(want string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for _, id := range ids {
			for status(id) != want {
				if time.Now().After(deadline) {
					t.Fatalf("%s is %s, want %s", id, status(id), want)
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	waitAll("copy_failed")
	// Each event is put once its status is durable: the last ones may
	// still be on their way when the status is read, or due to the sweep.
	failedEvents := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); len(failedEvents) < len(ids) && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, ev := range s.Env.Events() {
			var d struct{ TaskID string }
			json.Unmarshal(ev.Detail, &d)
			if ev.DetailType == "Task Copy Failed" && slices.Contains(ids, d.TaskID) {
				failedEvents[d.TaskID] = true
			}
		}
	}
	for _, id := range ids {
		if !failedEvents[id] {
			t.Errorf("%s: no Task Copy Failed", id)
		}
	}
	files.SetFaults(0) // the cause is fixed
	letters, _, err := r.Redrive(ctx)
	moved := slices.DeleteFunc(slices.Clone(letters), func(l recovery.Letter) bool { return l.Action != recovery.Moved })
	if err != nil || len(moved) != len(ids) {
		t.Fatalf("redrive moved %d of %d (%+v): %v", len(moved), len(ids), letters, err)
	}
	for _, id := range ids {
		waitStored(t, s, id)
	}
	// Its copy never started, so the reconciler may have sent it again
	// and had it stored; it must never be given up.
	if got := status("waiting_00"); got == "copy_failed" {
		t.Errorf("a waiting task became %s: waiting is no reason to give up", got)
	}
}
