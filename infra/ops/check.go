package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/platform"
)

// Caller is how a client reaches the stack: the platform its callback,
// an application its reader.
type Caller struct {
	CallbackURL string // with its ?token=
	Key         string // the webhook key
	ReaderURL   string
	ReadToken   string
	SubmitURL   string // "" where submitting is not deployed (no API key)
}

// PrintURLs shows what the platform and an application need: the callback
// URL with its token, the reader's URL with its bearer token, and the
// submit URL, which takes the same token. They are secrets: the output is
// for the one who configures the platform.
func (c Caller) PrintURLs(out io.Writer) {
	fmt.Fprintf(out, "callBackUrl  %s\nreader       %stasks/<taskId>\nread token   %s   (Authorization: Bearer <read token>)\n", c.CallbackURL, c.ReaderURL, c.ReadToken)
	if c.SubmitURL != "" {
		fmt.Fprintf(out, "submit       %ssubmissions   (the same token)\n", c.SubmitURL)
	}
}

// Check sends a signed callback to the stack as the platform would, then
// waits for the task to end and prints its record: with resultURL (a file
// of yours on the platform's hosts) a success to copy, which must end
// stored; without, a failure (code 501), which must end failed. Its task
// id, from checkTaskID, is new to each check.
func (r *Recovery) Check(ctx context.Context, c Caller, resultURL string, wait time.Duration, out io.Writer) error {
	id := checkTaskID(r.Now())
	body, want := map[string]any{"code": 501, "msg": "kiehook check: a failure, nothing to copy", "data": map[string]any{"taskId": id}}, schema.Failed
	if resultURL != "" {
		body, want = map[string]any{"code": 200, "msg": "kiehook check", "data": map[string]any{"taskId": id, "resultUrls": []string{resultURL}}}, schema.Stored
	}
	raw, _ := json.Marshal(body)
	client := &platform.Client{URL: withLabel(c.CallbackURL), Key: c.Key, Retries: 1}
	d := client.Send(ctx, id, raw)
	fmt.Fprintf(out, "POST %s (task %s) → %d %s\n", redacted(c.CallbackURL), id, d.Status, strings.TrimSpace(d.Body))
	if !d.OK() {
		// A network error (*url.Error) quotes the whole URL, token and all.
		reason := hideToken(fmt.Sprint(d.Err), c.CallbackURL)
		return fmt.Errorf("the callback answered %d: %s (see docs/operations.md, Troubleshooting)", d.Status, reason)
	}
	deadline := time.Now().Add(wait)
	for {
		rec, err := r.record(ctx, id)
		if err != nil {
			return err
		}
		if rec.Status == want || rec.Status == schema.CopyFailed || time.Now().After(deadline) {
			fmt.Fprintf(out, "task %s is %s %s%s\n", id, rec.Status, rec.Msg, rec.Error)
			for _, o := range rec.Objects {
				fmt.Fprintf(out, "  %s  %d bytes  sha256 %s\n", o.Key, o.Bytes, o.SHA256)
			}
			if rec.Status != want {
				return fmt.Errorf("task %s is %q, want %s", id, rec.Status, want)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// checkTaskID names a check's task kiehook-check-<unix time>-<random>: the
// time tells the operator which check it was, and the random part keeps
// two checks in one second from being one task, the second a repeat
// callback. It is a task id as the callback accepts one: 1-128 characters
// of A-Z a-z 0-9 . _ : -.
func checkTaskID(now time.Time) string {
	return fmt.Sprintf("kiehook-check-%d-%08x", now.Unix(), rand.Uint32())
}

func (r *Recovery) record(ctx context.Context, id string) (schema.Record, error) {
	out, err := r.DynamoDB.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.Table), Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return schema.Record{}, fmt.Errorf("read task %s: %w", id, err)
	}
	var rec schema.Record
	err = attributevalue.UnmarshalMap(out.Item, &rec)
	return rec, err
}

// withLabel marks the check's task with the label check=1, as an
// application marks its own.
func withLabel(callbackURL string) string {
	if strings.Contains(callbackURL, "?") {
		return callbackURL + "&check=1"
	}
	return callbackURL + "?check=1"
}

// hideToken is text with the callback URL's token hidden, in every form
// a URL may carry it.
func hideToken(text, callbackURL string) string {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "(an error that may quote the callback URL)"
	}
	token := u.Query().Get("token")
	if token == "" {
		return text
	}
	return strings.NewReplacer(url.QueryEscape(token), "…", token, "…").Replace(text)
}

// redacted is the URL with its token hidden, for the terminal.
func redacted(callbackURL string) string {
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "the callback URL"
	}
	if q := u.Query(); q.Has("token") {
		q.Set("token", "…")
		u.RawQuery = q.Encode()
	}
	return u.String()
}
