package samcli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/stack"
)

// samVars are the variables the SAM CLI itself gives a function: the
// region and the caller's credentials.
var samVars = map[string]string{
	"AWS_REGION": emulators.Region, "AWS_DEFAULT_REGION": emulators.Region,
	"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
}

// docsInvocations are the `sam local invoke` commands of docs/local.md, in
// order: the function and the event file of each.
func docsInvocations(tb testing.TB) [][2]string {
	tb.Helper()
	var out [][2]string
	for _, m := range regexp.MustCompile(`(?m)^sam local invoke (\w+) -e events/(\S+)`).FindAllStringSubmatch(string(readFile(tb, "../../docs/local.md")), -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	if len(out) == 0 {
		tb.Fatal("docs/local.md lists no sam local invoke command")
	}
	return out
}

// TestTheDocumentedSamLocalInvokeCommands runs each command of docs/local.md's
// `sam local invoke` section as the SAM CLI would: the built bootstrap under
// the Runtime Interface Emulator, with exactly the environment the SAM CLI
// gives it from template.yaml and events/env.json, against the local stack
// at the addresses env.json names.
func TestTheDocumentedSamLocalInvokeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the functions")
	}
	ctx := context.Background()
	opts := stack.SamLocal()
	opts.Addr, opts.Dir, opts.Binaries = "127.0.0.1:0", t.TempDir(), binaries
	s, err := stack.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start the local stack at env.json's addresses (is go run ./infra/local running?): %v", err)
	}
	defer s.Close()
	tpl := kiehookTemplate(t)
	envJSON := readFile(t, "../../events/env.json")

	// What docs/local.md promises each command does.
	checks := map[string]func(t *testing.T, out []byte){
		"callback-success.json": func(t *testing.T, out []byte) {
			answered(t, out, 200, `"status":"accepted"`)
			if st := status(t, s, "fluxk_7f3a9c2e"); st != "queued" && st != "stored" {
				t.Errorf("fluxk_7f3a9c2e is %q, want queued (or stored by the stack's own poller)", st)
			}
		},
		"callback-duplicate.json": func(t *testing.T, out []byte) { answered(t, out, 200, `"status":"duplicate"`) },
		"callback-failure.json": func(t *testing.T, out []byte) {
			answered(t, out, 200, `"status":"accepted"`)
			if st := status(t, s, "fluxk_5e77f0c1"); st != "failed" {
				t.Errorf("fluxk_5e77f0c1 is %q, want failed", st)
			}
			eventOf(t, s, "fluxk_5e77f0c1", "Task Failed")
		},
		"callback-bad-signature.json": func(t *testing.T, out []byte) { answered(t, out, 401, `invalid X-Webhook-Signature`) },
		"copier-batch.json": func(t *testing.T, out []byte) {
			var resp events.SQSEventResponse
			// The batch's second delivery of the task finds the first's
			// lease and comes back, unless the stack's own poller had
			// stored the task already.
			if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) > 1 {
				t.Errorf("answer %s: %v", out, err)
			}
			if st := status(t, s, "fluxk_7f3a9c2e"); st != "stored" {
				t.Errorf("fluxk_7f3a9c2e is %q, want stored", st)
			}
			eventOf(t, s, "fluxk_7f3a9c2e", "Task Stored")
		},
		"reader-get.json": func(t *testing.T, out []byte) {
			answered(t, out, 200, `"taskId":"fluxk_7f3a9c2e"`)
			if st := status(t, s, "fluxk_7f3a9c2e"); st == "stored" && !strings.Contains(string(out), `links`) {
				t.Errorf("a stored task without links: %s", out)
			}
		},
		"submit-post.json": func(t *testing.T, out []byte) { answered(t, out, 202, `"status":"accepted"`) },
		"submitter-batch.json": func(t *testing.T, out []byte) {
			// The stack's own submitters may hold the submission: then this
			// delivery leaves it to them, and it is submitted a moment later.
			var resp events.SQSEventResponse
			if err := json.Unmarshal(out, &resp); err != nil || len(resp.BatchItemFailures) != 0 {
				t.Errorf("answer %s: %v", out, err)
			}
			const id = "sub_ca29c5dad9537c2a41cd6107" // submit-post.json's Idempotency-Key's
			within(t, 5*time.Second, func() string {
				subs, err := s.Submissions(ctx)
				if err != nil {
					return err.Error()
				}
				for _, sub := range subs {
					if sub.SubmissionID == id && (sub.Status != "submitted" || sub.Task == "") {
						return fmt.Sprintf("%s is %s, task %q: want submitted", id, sub.Status, sub.Task)
					}
				}
				made := 0
				for _, c := range s.Platform.Creates() {
					if strings.Contains(c.CallBackURL, "sid="+id) && c.TaskID != "" {
						made++
					}
				}
				if made != 1 {
					return fmt.Sprintf("the platform made %d tasks for %s, want 1", made, id)
				}
				return ""
			})
		},
		"reconciler-schedule.json": func(t *testing.T, out []byte) {
			if strings.TrimSpace(string(out)) != "null" {
				t.Errorf("answer %s, want null: a pass without error", out)
			}
		},
	}
	for _, inv := range docsInvocations(t) {
		function, file := inv[0], inv[1]
		t.Run(fmt.Sprintf("sam local invoke %s -e events/%s", function, file), func(t *testing.T) {
			check, ok := checks[file]
			if !ok {
				t.Fatalf("docs/local.md promises something of %s that no check holds it to", file)
			}
			env, dropped, err := tpl.Environment(function, envJSON)
			if err != nil || len(dropped) != 0 {
				t.Fatalf("environment: %v, dropped %v", err, dropped)
			}
			for k, v := range samVars {
				env[k] = v
			}
			event, err := sample.Files.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(ctx, function, env, event)
			if err != nil {
				t.Fatal(err)
			}
			check(t, out)
		})
	}
}

func answered(tb testing.TB, out []byte, code int, body string) {
	tb.Helper()
	var resp events.LambdaFunctionURLResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != code || !strings.Contains(resp.Body, body) {
		tb.Errorf("answer %s, want %d with %s", out, code, body)
	}
}

func status(tb testing.TB, s *stack.Stack, id string) string {
	tb.Helper()
	tasks, err := s.Tasks(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, t := range tasks {
		if t.TaskID == id {
			return t.Status
		}
	}
	return ""
}

// eventOf waits a moment for the event of id's final status.
func eventOf(tb testing.TB, s *stack.Stack, id, detailType string) {
	tb.Helper()
	within(tb, 5*time.Second, func() string {
		for _, ev := range s.Env.Events() {
			if ev.DetailType == detailType && strings.Contains(string(ev.Detail), `"taskId":"`+id+`"`) {
				return ""
			}
		}
		return fmt.Sprintf("no %s event for %s", detailType, id)
	})
}

// within fails tb unless unmet, what is still unmet, comes to say nothing
// before d has passed.
func within(tb testing.TB, d time.Duration, unmet func() string) {
	tb.Helper()
	why := unmet()
	for deadline := time.Now().Add(d); why != "" && time.Now().Before(deadline); why = unmet() {
		time.Sleep(50 * time.Millisecond)
	}
	if why != "" {
		tb.Error(why)
	}
}
