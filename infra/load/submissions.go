package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/kiehook/kiehook/functions/submitclient"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

// SubmitOptions shape a submissions run: an application's clients submit
// through kiehook, each key twice, while the platform holds its create
// limit and loses some of its answers.
type SubmitOptions struct {
	Submissions int     // keys; default 500
	Clients     int     // concurrent clients; default 20
	Ambiguous   float64 // share of the platform's creates whose answer is lost; default 0.05
	// Limit creates per Window is the platform's rule (20 per 10 s),
	// scaled by default to 20 per second so that a run takes seconds.
	Limit  int
	Window time.Duration
	// Rate is the submitter's SUBMIT_RATE per Window; default Limit − 2,
	// as the deployed 18 of the platform's 20.
	Rate int
	// Direct creates per Window are the application's own, made beside
	// kiehook with the same API key, as an account's other tools do: they
	// share the limit, so kiehook meets 429s.
	Direct   int
	Wait     time.Duration // longest wait for every submission to end; default twice the drain at Rate, at least 5 min
	Seed     uint64
	Progress *progress.Progress
}

// Defaults fills the zero fields.
func (o *SubmitOptions) Defaults() {
	if o.Submissions == 0 {
		o.Submissions = 500
	}
	if o.Clients == 0 {
		o.Clients = 20
	}
	if o.Ambiguous == 0 {
		o.Ambiguous = 0.05
	}
	if o.Limit == 0 {
		o.Limit = platform.DefaultCreateLimit
	}
	if o.Window == 0 {
		o.Window = time.Second
	}
	if o.Rate == 0 {
		o.Rate = o.Limit - 2
	}
	if o.Wait == 0 {
		o.Wait = max(5*time.Minute, 2*time.Duration(o.Submissions/o.Rate+1)*o.Window)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().Unix())
	}
}

// Stack is opts with submissions on, and the submitter paced as the run
// expects.
func (o SubmitOptions) Stack(opts stack.Options) stack.Options {
	o.Defaults()
	opts.Submissions = true
	submitter := map[string]string{"SUBMIT_RATE": fmt.Sprint(o.Rate), "SUBMIT_WINDOW": o.Window.String()}
	for k, v := range opts.Submitter {
		submitter[k] = v
	}
	opts.Submitter = submitter
	return opts
}

// SubmitReport is what a submissions run did and found, most of it from
// the platform's own log of create calls.
type SubmitReport struct {
	Options SubmitOptions
	// Sends are the POSTs; Accepted the keys kiehook answered 202 or 200;
	// Split the keys whose two sends got two submission ids.
	Sends, Accepted, SendErrors, Split int

	// From the platform's log: create calls, tasks made, answers lost,
	// calls refused 429; Doubled are the submissions that made two tasks.
	Creates, Made, Lost, Refused, Doubled int
	MostInWindow                          int
	DirectCreates                         int     // Direct's calls, not counted in the others
	DrainSeconds                          float64 // first to last task made

	// What each submission became, and of the submitted ones, their tasks.
	Submitted, SubmitFailed, SubmitUnknown, Open int
	LostLinked, RefusedSubmitted                 int
	refused                                      int // submissions with a create refused 429
	Stored, Failed, NotEnded                     int
	DeadLetters                                  int
	// Unannounced are the ended submissions whose event never reached the
	// bus (the reconciler's sweep puts the ones a callback linked).
	Unannounced int

	objects Report // the stored tasks' objects, checked as a load run's are
	Notes   []string
}

// PerWindow is how many tasks the platform made per Window, on average,
// while the backlog drained.
func (r *SubmitReport) PerWindow() float64 {
	if r.Made < 2 || r.DrainSeconds == 0 {
		return float64(r.Made)
	}
	return float64(r.Made-1) / r.DrainSeconds * r.Options.Window.Seconds()
}

// Problems are the audit's failures; a clean run has none.
func (r *SubmitReport) Problems() []string {
	var p []string
	check := func(bad bool, format string, args ...any) {
		if bad {
			p = append(p, fmt.Sprintf(format, args...))
		}
	}
	check(r.SendErrors > 0, "%d sends failed after the client's retries", r.SendErrors)
	check(r.Split > 0, "%d keys got two submission ids", r.Split)
	check(r.Doubled > 0, "%d submissions made two platform tasks", r.Doubled)
	check(r.MostInWindow > r.Options.Rate, "%d tasks made within one %v, more than SUBMIT_RATE %d", r.MostInWindow, r.Options.Window, r.Options.Rate)
	check(r.SubmitUnknown > 0 || r.Open > 0, "%d submit_unknown and %d still open", r.SubmitUnknown, r.Open)
	check(r.LostLinked != r.Lost, "%d of %d lost answers linked by their callback", r.LostLinked, r.Lost)
	check(r.RefusedSubmitted != r.refused, "%d of %d submissions refused 429 ended submitted", r.RefusedSubmitted, r.refused)
	check(r.NotEnded > 0, "%d submitted tasks neither stored nor failed", r.NotEnded)
	check(r.Submitted+r.SubmitFailed != r.Accepted, "%d submitted and %d submit_failed of %d accepted", r.Submitted, r.SubmitFailed, r.Accepted)
	check(r.objects.Corrupt > 0, "%d objects not as the platform made them", r.objects.Corrupt)
	check(r.DeadLetters > 0, "%d submission messages dead-lettered", r.DeadLetters)
	check(r.Unannounced > 0, "%d ended submissions without their event on the bus", r.Unannounced)
	return p
}

// String is the report a person reads.
func (r *SubmitReport) String() string {
	var b strings.Builder
	o := r.Options
	fmt.Fprintf(&b, "kiehook submissions: %d keys sent twice each by %d clients; the platform makes %d tasks per %v and loses %.0f%% of its answers; SUBMIT_RATE %d; %d direct creates per %v beside kiehook\n",
		o.Submissions, o.Clients, o.Limit, o.Window, 100*o.Ambiguous, o.Rate, o.Direct, o.Window)
	fmt.Fprintf(&b, "  sends             %d (%d accepted keys, %d failed, %d keys split)\n", r.Sends, r.Accepted, r.SendErrors, r.Split)
	fmt.Fprintf(&b, "  platform          %d create calls from kiehook: %d tasks made, %d answers lost, %d refused 429; %d submissions made two tasks (and %d direct calls)\n", r.Creates, r.Made, r.Lost, r.Refused, r.Doubled, r.DirectCreates)
	fmt.Fprintf(&b, "  pacing            at most %d tasks made in any %v (SUBMIT_RATE %d, the platform's limit %d); %.1f per %v while the backlog drained (%.0f%% of SUBMIT_RATE) over %.1f s\n",
		r.MostInWindow, o.Window, o.Rate, o.Limit, r.PerWindow(), o.Window, 100*r.PerWindow()/float64(o.Rate), r.DrainSeconds)
	fmt.Fprintf(&b, "  submissions       %d submitted, %d submit_failed, %d submit_unknown, %d open; %d of %d lost answers linked by their callback; %d of %d refused 429 ended submitted\n",
		r.Submitted, r.SubmitFailed, r.SubmitUnknown, r.Open, r.LostLinked, r.Lost, r.RefusedSubmitted, r.refused)
	fmt.Fprintf(&b, "  tasks             %d stored (%d objects intact, %d corrupt), %d failed, %d not ended; %d dead letters; %d ends without their event\n",
		r.Stored, r.objects.Objects, r.objects.Corrupt, r.Failed, r.NotEnded, r.DeadLetters, r.Unannounced)
	for _, p := range r.Problems() {
		fmt.Fprintf(&b, "  PROBLEM           %s\n", p)
	}
	for _, n := range append(r.Notes, r.objects.Notes...) {
		fmt.Fprintf(&b, "  note              %s\n", n)
	}
	return b.String()
}

// RunSubmissions plays o against s, a stack started with o.Stack, then
// audits the outcome; the error says what the audit found wrong.
func RunSubmissions(ctx context.Context, s *stack.Stack, o SubmitOptions) (*SubmitReport, error) {
	o.Defaults()
	if s.Platform == nil {
		return nil, errors.New("the stack takes no submissions: start it with SubmitOptions.Stack")
	}
	s.Platform.SetCreateLimit(o.Limit, o.Window)
	s.Platform.SetAmbiguous(o.Ambiguous)
	rep := &SubmitReport{Options: o}
	directCtx, stopDirect := context.WithCancel(ctx)
	defer stopDirect()
	if o.Direct > 0 {
		go createDirectly(directCtx, s, o.Window/time.Duration(o.Direct))
	}

	// Every key twice, in an order drawn from the seed: a repeat may come
	// at once, from another client, or long after.
	rng := rand.New(rand.NewPCG(o.Seed, 35))
	sends := make([]int, 0, 2*o.Submissions)
	for i := range o.Submissions {
		sends = append(sends, i, i)
	}
	rng.Shuffle(len(sends), func(i, j int) { sends[i], sends[j] = sends[j], sends[i] })
	ids := make([][]string, o.Submissions)
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	client := submitclient.New(s.SubmitURL, s.SubmitToken)
	o.Progress.Phase("submitting", func() progress.Counts { return submitProgress(ctx, s, o.Submissions, &mu, &rep.Sends) })
	for range o.Clients {
		wg.Go(func() {
			for i := range work {
				api := platform.APIs[i%len(platform.APIs)]
				sub, err := client.Submit(ctx, api, map[string]any{"prompt": fmt.Sprintf("load %d", i)}, map[string]string{"run": fmt.Sprint(o.Seed)}, fmt.Sprintf("load-%d-%d", o.Seed, i))
				mu.Lock()
				rep.Sends++
				if err != nil {
					rep.SendErrors++
					rep.note("send of key %d: %v", i, err)
				} else {
					ids[i] = append(ids[i], sub.SubmissionID)
				}
				mu.Unlock()
			}
		})
	}
	for _, i := range sends {
		work <- i
	}
	close(work)
	wg.Wait()
	want := map[string]bool{}
	for _, got := range ids {
		if len(got) > 0 {
			rep.Accepted++
			want[got[0]] = true
		}
		if len(got) == 2 && got[0] != got[1] {
			rep.Split++
		}
	}

	o.Progress.Phase("waiting for the platform, its callbacks and the copies", func() progress.Counts { return submitProgress(ctx, s, o.Submissions, &mu, &rep.Sends) })
	if err := settleSubmissions(ctx, s, want, o.Wait); err != nil {
		return rep, err
	}
	stopDirect()
	o.Progress.Phase("auditing", nil)
	if err := rep.audit(ctx, s, want); err != nil {
		return rep, err
	}
	if p := rep.Problems(); len(p) > 0 {
		return rep, errors.New(strings.Join(p, "; "))
	}
	return rep, nil
}

// createDirectly creates a Market task every period with the stack's API
// key, as the application's own tools do beside kiehook, until ctx ends.
func createDirectly(ctx context.Context, s *stack.Stack, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		body := fmt.Sprintf(`{"model":"google/nano-banana","input":{"prompt":"direct"},"callBackUrl":%q}`, s.CallbackURL)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.Platform.URL+"/api/v1/jobs/createTask", strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+s.APIKey)
		req.Header.Set("Content-Type", "application/json")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// submitProgress counts the sends so far and the submissions' stored tasks.
func submitProgress(ctx context.Context, s *stack.Stack, total int, mu *sync.Mutex, sends *int) progress.Counts {
	mu.Lock()
	c := progress.Counts{Total: total, Sent: min(total, *sends/2)}
	mu.Unlock()
	subs, _ := s.Submissions(ctx)
	tasks, _ := s.TasksByID(ctx)
	for _, sub := range subs {
		c.Accepted++
		if t, ok := tasks[sub.Task]; ok && (t.Status == "stored" || t.Status == "failed") || sub.Status == "submit_failed" {
			c.Ended++
			if t.Status == "stored" {
				c.Stored++
			}
		}
	}
	return c
}

// settleSubmissions waits until every submission in want has ended, and
// the tasks of the submitted ones too, or wait has passed.
func settleSubmissions(ctx context.Context, s *stack.Stack, want map[string]bool, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		subs, err := s.Submissions(ctx)
		if err != nil {
			return err
		}
		tasks, _ := s.TasksByID(ctx)
		ended := 0
		for _, sub := range subs {
			t := tasks[sub.Task]
			if want[sub.SubmissionID] && (sub.Status == "submit_failed" || sub.Status == "submit_unknown" || t.Status == "stored" || t.Status == "failed") {
				ended++
			}
		}
		if ended == len(want) || time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// audit checks the platform's log, the submissions and their tasks.
func (r *SubmitReport) audit(ctx context.Context, s *stack.Stack, want map[string]bool) error {
	creates := s.Platform.Creates()
	var kiehooks []platform.CreateCall // the submitter's, not Direct's
	made := map[string][]string{}      // submission id → tasks made for it
	lost := map[string]string{}        // submission id → the task whose answer was lost
	refused := map[string]bool{}
	var first, last time.Time
	for _, c := range creates {
		sid := submissionOf(c.CallBackURL)
		if sid == "" {
			r.DirectCreates++
			continue
		}
		r.Creates++
		kiehooks = append(kiehooks, c)
		switch {
		case c.TaskID != "":
			r.Made++
			made[sid] = append(made[sid], c.TaskID)
			if first.IsZero() {
				first = c.At
			}
			last = c.At
			if c.Lost {
				r.Lost++
				lost[sid] = c.TaskID
			}
		case c.Code == 429:
			r.Refused++
			refused[sid] = true
		}
	}
	r.DrainSeconds = last.Sub(first).Seconds()
	r.MostInWindow = platform.MostInWindow(kiehooks, r.Options.Window)
	r.refused = len(refused)
	for sid, tasks := range made {
		if len(tasks) > 1 {
			r.Doubled++
			r.note("%s made tasks %v", sid, tasks)
		}
	}

	subs, err := s.Submissions(ctx)
	if err != nil {
		return err
	}
	tasks, _ := s.TasksByID(ctx)
	objects, err := listObjects(ctx, s)
	if err != nil {
		return err
	}
	announced := awaitAnnounced(ctx, s, subs, time.Now().Add(30*time.Second))
	for _, sub := range subs {
		if !want[sub.SubmissionID] {
			continue
		}
		if !announced[sub.SubmissionID] && sub.Status != "accepted" && sub.Status != "unknown" {
			r.Unannounced++
			r.note("%s ended %s, and no event of it reached the bus", sub.SubmissionID, sub.Status)
		}
		switch sub.Status {
		case "submitted":
			r.Submitted++
		case "submit_failed":
			r.SubmitFailed++
			r.note("%s submit_failed: %d %s %s", sub.SubmissionID, sub.Code, sub.Msg, sub.Error)
			continue
		case "submit_unknown":
			r.SubmitUnknown++
			continue
		default:
			r.Open++
			r.note("%s still %s", sub.SubmissionID, sub.Status)
			continue
		}
		if id, ok := lost[sub.SubmissionID]; ok && sub.Task == id {
			r.LostLinked++
		}
		if refused[sub.SubmissionID] {
			r.RefusedSubmitted++
		}
		t := tasks[sub.Task]
		switch t.Status {
		case "stored":
			r.Stored++
			var names []string
			for _, u := range platform.ResultURLs(s.Files, sub.API, sub.Task) {
				names = append(names, strings.TrimPrefix(u, s.Files.URL("")))
			}
			r.objects.checkObjects(s, &Task{ID: sub.Task, Files: names}, t, objects)
		case "failed":
			r.Failed++
		default:
			r.NotEnded++
			r.note("%s: task %s is %q", sub.SubmissionID, sub.Task, t.Status)
		}
	}
	r.DeadLetters = emulators.QueueDepth(s.Env.SubmitDLQName)
	return nil
}

// awaitAnnounced polls the bus until every ended submission of subs has an
// event, or deadline; it returns the submissions that have one.
func awaitAnnounced(ctx context.Context, s *stack.Stack, subs []stack.Submission, deadline time.Time) map[string]bool {
	for {
		announced := map[string]bool{}
		for _, ev := range s.Env.Events() {
			if strings.HasPrefix(ev.DetailType, "Task Submit") { // Submitted, Submit Failed, Submit Unknown
				var d struct {
					SubmissionID string `json:"submissionId"`
				}
				json.Unmarshal(ev.Detail, &d)
				announced[d.SubmissionID] = true
			}
		}
		missing := 0
		for _, sub := range subs {
			if !announced[sub.SubmissionID] && sub.Status != "accepted" && sub.Status != "unknown" {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return announced
		}
		select {
		case <-ctx.Done():
			return announced
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// submissionOf is the submission id a create's callBackUrl carries, in the
// parameter the callback reads it from.
func submissionOf(callBackURL string) string {
	u, err := url.Parse(callBackURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("sid")
}

func (r *SubmitReport) note(format string, args ...any) {
	if len(r.Notes) < 50 {
		r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
	}
}
