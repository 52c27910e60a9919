package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

// demoResults are the files each API's demo task generates.
var demoResults = map[string][]string{
	"flux-kontext": {"kontext.jpg"},
	"4o-image":     {"4o-1.png", "4o-2.png"},
	"midjourney":   {"mj-1.png", "mj-2.png", "mj-3.png", "mj-4.png"},
	"veo":          {"veo.mp4"},
	"runway":       {"runway.mp4", "runway.png"},
	"runway-aleph": {"aleph.mp4", "aleph.jpg"},
	"suno":         {"track-1.mp3", "cover-1.jpg", "track-2.mp3", "cover-2.jpg"},
	"market":       {"banana.webp"},
}

// runDemo plays the platform once: a success for every API, a failure and
// a duplicate, then it waits for the copies and prints every task.
func runDemo(ctx context.Context, s *stack.Stack, out io.Writer) error {
	files := platform.ServeFiles()
	defer files.Close()
	// Suno's text, first and complete callbacks come at a fiftieth of the
	// platform's usual gaps.
	// The callback URL carries the application's own label, as a user's
	// would (?uid=…&job=…): it comes back in every event.
	run := time.Now().Format("150405")
	client := &platform.Client{URL: s.CallbackURL + "&job=demo-" + run, Key: s.Key, Pace: 0.02}
	send := func(api, id string, code int, names []string) error {
		var urls []string
		for _, n := range names {
			urls = append(urls, files.URL(id+"-"+n))
		}
		stages := platform.Stages(api, id, code, urls)
		for i, d := range client.SendStages(ctx, id, stages) {
			label := api
			if len(stages) > 1 {
				label += " " + stages[i].Type
			}
			fmt.Fprintf(out, "  %-21s %-33s → %d %s\n", label, id, d.Status, strings.TrimSpace(d.Body))
			if d.Err != nil {
				return d.Err
			}
		}
		return nil
	}
	fmt.Fprintln(out, "\nthe platform calls back:")
	var waiting []string
	for _, api := range platform.APIs {
		id := fmt.Sprintf("demo-%s-%s", api, run)
		if err := send(api, id, 200, demoResults[api]); err != nil {
			return err
		}
		waiting = append(waiting, id)
	}
	if err := send("midjourney", fmt.Sprintf("demo-midjourney-%s", run), 200, demoResults["midjourney"]); err != nil {
		return err
	}
	if err := send("flux-kontext", "demo-failed-"+run, 501, nil); err != nil {
		return err
	}

	p := progress.New(out, 0)
	p.Phase("waiting for the copies", func() progress.Counts { return demoCounts(ctx, s, run, len(waiting)) })
	tasks, err := waitStored(ctx, s, waiting, time.Minute)
	p.Stop()
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "\ntasks:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TASK\tAPI\tSTATUS\tDELIVERIES\tOBJECTS")
	for _, t := range tasks {
		if !strings.HasSuffix(t.TaskID, run) {
			continue
		}
		var keys []string
		for _, o := range t.Objects {
			keys = append(keys, fmt.Sprintf("%s (%s, %d B)", o.Key, o.ContentType, o.Bytes))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\n", t.TaskID, t.API, t.Status, t.Deliveries, strings.Join(keys, ", "))
	}
	tw.Flush()

	// The copier puts a task's event just after marking it stored.
	fmt.Fprintln(out, "\nevents on the bus:")
	for _, ev := range waitEvents(ctx, s, run, len(waiting)+1, 10*time.Second) {
		var d struct {
			TaskID  string `json:"taskId"`
			Objects []struct{ Key string }
			Msg     string `json:"msg"`
			Labels  map[string]string
		}
		json.Unmarshal(ev.Detail, &d)
		what := fmt.Sprintf("%d objects", len(d.Objects))
		if len(d.Objects) == 0 {
			what = d.Msg
		}
		fmt.Fprintf(out, "  %-17s %-33s %s, labels %v\n", ev.DetailType, d.TaskID, what, d.Labels)
	}
	if err := showReader(ctx, s, out, waiting[0]); err != nil {
		return err
	}
	if s.SubmitURL != "" {
		if err := runSubmitDemo(ctx, s, out, run); err != nil {
			return err
		}
	}
	if f := s.Forwarder; f != nil {
		fmt.Fprintf(out, "\nforwarded to %s: %d events so far, %d calls retried\n", f.Target.URL, f.Delivered.Load(), f.Retries.Load())
	}
	fmt.Fprintf(out, "\nsee them at %s/_local/tasks, %s/_local/submissions and %s/_local/events\n", s.URL, s.URL, s.URL)
	return nil
}

// demoCounts are where this run's tasks are.
func demoCounts(ctx context.Context, s *stack.Stack, run string, total int) progress.Counts {
	c := progress.Counts{Total: total, Sent: total, Accepted: total}
	tasks, _ := s.Tasks(ctx)
	for _, t := range tasks {
		if strings.HasSuffix(t.TaskID, run) && t.Status == "stored" {
			c.Stored++
			c.Ended++
			for _, o := range t.Objects {
				c.Bytes += o.Bytes
			}
		}
	}
	return c
}

// showReader asks the reader for a stored task, as an application
// outside AWS does, and prints its download links.
func showReader(ctx context.Context, s *stack.Stack, out io.Writer, id string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.ReaderURL+"/tasks/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.ReadToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the reader: %w", err)
	}
	defer resp.Body.Close()
	var answer struct {
		Status string
		Links  []struct{ Key, URL, ExpiresAt string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the reader answered %s (%v)", resp.Status, err)
	}
	fmt.Fprintf(out, "\nthe reader: GET %s/tasks/%s → %s, %d download links, for example\n  %s\n", s.ReaderURL, id, answer.Status, len(answer.Links), answer.Links[0].URL)
	return nil
}

// waitEvents polls until n events of this run's tasks arrived, or limit.
func waitEvents(ctx context.Context, s *stack.Stack, run string, n int, limit time.Duration) []emulators.Event {
	deadline := time.Now().Add(limit)
	for {
		var mine []emulators.Event
		for _, ev := range s.Env.Events() {
			if bytes.Contains(ev.Detail, []byte(run+`"`)) {
				mine = append(mine, ev)
			}
		}
		if len(mine) >= n || time.Now().After(deadline) {
			return mine
		}
		select {
		case <-ctx.Done():
			return mine
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitStored polls until every task in ids has finished copying.
func waitStored(ctx context.Context, s *stack.Stack, ids []string, limit time.Duration) ([]stack.Task, error) {
	deadline := time.Now().Add(limit)
	for {
		tasks, err := s.Tasks(ctx)
		if err != nil {
			return nil, err
		}
		done := 0
		for _, t := range tasks {
			for _, id := range ids {
				if t.TaskID == id && (t.Status == "stored" || t.Status == "copy_failed") {
					done++
				}
			}
		}
		if done == len(ids) || time.Now().After(deadline) {
			return tasks, nil
		}
		select {
		case <-ctx.Done():
			return tasks, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
