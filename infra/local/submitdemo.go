package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/kiehook/kiehook/functions/submitclient"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

// demoInputs are what an application would ask each API for, in the
// platform's create bodies (kiehook adds callBackUrl).
var demoInputs = map[string]map[string]any{
	"flux-kontext": {"prompt": "a paper boat on a pond", "aspectRatio": "16:9"},
	"4o-image":     {"prompt": "a fox in a library", "size": "1:1", "nVariants": 2},
	"midjourney":   {"taskType": "mj_txt2img", "prompt": "a lighthouse at dusk"},
	"veo":          {"prompt": "waves at sunrise", "model": "veo3_fast"},
	"runway":       {"prompt": "a city in the rain", "duration": 5, "quality": "720p"},
	"runway-aleph": {"prompt": "make it snow", "videoUrl": "https://example.com/in.mp4"},
	"suno":         {"prompt": "a calm piano piece", "customMode": false, "instrumental": true, "model": "V4_5"},
	"market":       {"model": "google/nano-banana", "input": map[string]any{"prompt": "a banana in space"}},
}

// runSubmitDemo creates a task of every API through kiehook's submit
// function, as an application does, one of them twice with the same key,
// waits until the platform's callbacks have them stored, and prints each
// submission with its task.
func runSubmitDemo(ctx context.Context, s *stack.Stack, out io.Writer, run string) error {
	c := submitclient.New(s.SubmitURL, s.SubmitToken)
	labels := map[string]string{"job": "demo-" + run}
	fmt.Fprintf(out, "\nthe application submits through kiehook (POST %s/submissions):\n", s.SubmitURL)
	var ids []string
	for _, api := range platform.APIs {
		key := "demo-" + run + "-" + api
		sub, err := c.Submit(ctx, api, demoInputs[api], labels, key)
		if err != nil {
			return fmt.Errorf("submit %s: %w", api, err)
		}
		fmt.Fprintf(out, "  %-13s Idempotency-Key %-30s → %s %s\n", api, key, sub.Status, sub.SubmissionID)
		ids = append(ids, sub.SubmissionID)
	}
	key := "demo-" + run + "-midjourney"
	again, err := c.Submit(ctx, "midjourney", demoInputs["midjourney"], labels, key)
	if err != nil {
		return fmt.Errorf("submit midjourney again: %w", err)
	}
	fmt.Fprintf(out, "  %-13s Idempotency-Key %-30s → %s %s (the same submission: no second task)\n", "midjourney", key, again.Status, again.SubmissionID)

	p := progress.New(out, 0)
	p.Phase("waiting for the platform, its callbacks and the copies", func() progress.Counts { return submitCounts(ctx, s, ids) })
	subs, tasks, err := waitSubmitted(ctx, s, c, ids, time.Minute)
	p.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\nsubmissions:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SUBMISSION\tAPI\tSTATUS\tTASK\tTASK STATUS\tOBJECTS")
	for _, sub := range subs {
		t := tasks[sub.TaskID]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\n", sub.SubmissionID, sub.API, sub.Status, sub.TaskID, t.Status, len(t.Objects))
	}
	tw.Flush()
	fmt.Fprintf(out, "the platform was asked to create %d tasks for %d submissions\n", len(s.Platform.Creates()), len(ids))
	return nil
}

// submitCounts are where the demo's submissions are: accepted, sent, and
// their tasks stored.
func submitCounts(ctx context.Context, s *stack.Stack, ids []string) progress.Counts {
	c := progress.Counts{Total: len(ids), Sent: len(ids)}
	subs, _ := s.Submissions(ctx)
	tasks, _ := s.TasksByID(ctx)
	for _, sub := range subs {
		for _, id := range ids {
			if sub.SubmissionID == id && sub.Task != "" {
				c.Accepted++
				if t, ok := tasks[sub.Task]; ok && t.Status == "stored" {
					c.Stored++
					c.Ended++
				}
			}
		}
	}
	return c
}

// waitSubmitted polls, as an application would, until every submission
// in ids names its task and that task is stored, or limit.
func waitSubmitted(ctx context.Context, s *stack.Stack, c *submitclient.Client, ids []string, limit time.Duration) ([]submitclient.Submission, map[string]stack.Task, error) {
	deadline := time.Now().Add(limit)
	for {
		var subs []submitclient.Submission
		tasks, _ := s.TasksByID(ctx)
		done := 0
		for _, id := range ids {
			sub, err := c.Get(ctx, id)
			if err != nil {
				return nil, nil, err
			}
			subs = append(subs, sub)
			if t, ok := tasks[sub.TaskID]; ok && t.Status == "stored" {
				done++
			}
		}
		if done == len(ids) {
			return subs, tasks, nil
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%d of %d submitted tasks stored after %v: %+v", done, len(ids), limit, subs)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
