package explore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/kie"
	"github.com/kiehook/kiehook/functions/internal/submission"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// The submissions' settings. The reconciler's two thresholds are its own
// (claimTimeout and lostMessageAfter in reconciler/submissions.go);
// SUBMIT_UNKNOWN_AFTER and the window are short, so that they act within
// a few clock advances.
const (
	subKey            = "order-1"
	subAPI            = kie.APIFluxKontext
	claimTimeout      = 2 * time.Minute
	lostMessageAfter  = 20 * time.Minute
	unknownAfter      = 30 * time.Minute
	submitWindow      = 10 * time.Second
	submitterDeadline = 60 * time.Second // the template's Timeout
)

// subStore is the submissions' part of the table: records by value, and
// submission.Apply the only rule that changes one, as in
// dynamo.Submissions. Its Open and Unannounced read the open index as
// dynamo's do.
type subStore struct {
	w       *world
	recs    map[string]submission.Submission
	history map[string][]subReached
}

// subReached is one status a submission reached.
type subReached struct {
	status string
	seq    int
}

func (s *subStore) Create(ctx context.Context, sub submission.Submission) (submission.Submission, bool, error) {
	c := s.w.call("CreateSubmission "+sub.ID, mayLose|mayRefuse, nil)
	if c.failed() {
		c.end("")
		return submission.Submission{}, false, c.err()
	}
	if existing, ok := s.recs[sub.ID]; ok {
		if c.lost() {
			c.end("exists")
			return submission.Submission{}, false, errLost
		}
		c.end("exists: "+briefSub(existing), fmt.Sprintf("%+v", existing))
		return existing, false, nil
	}
	s.put(submission.Submission{}, sub)
	if c.lost() {
		c.end("created")
		return submission.Submission{}, false, errLost
	}
	c.end("created")
	return submission.Submission{}, true, nil
}

func (s *subStore) Get(ctx context.Context, id string) (submission.Submission, bool, error) {
	c := s.w.call("GetSubmission "+id, 0, nil)
	if c.failed() {
		c.end("")
		return submission.Submission{}, false, c.err()
	}
	sub, ok := s.recs[id]
	if !ok {
		c.end("none", false)
		return submission.Submission{}, false, nil
	}
	c.end(briefSub(sub), fmt.Sprintf("%+v", sub))
	return sub, true, nil
}

func (s *subStore) Update(ctx context.Context, ch submission.Change) (submission.Submission, error) {
	c := s.w.call("UpdateSubmission "+ch.ID+" "+describeSub(ch), mayLose|mayRefuse|mayRetry, nil)
	if c.failed() {
		c.end("")
		return submission.Submission{}, c.err()
	}
	prev, ok := s.recs[ch.ID]
	if !ok {
		c.end("stale: no record")
		return submission.Submission{}, submission.ErrStale
	}
	next, ok := submission.Apply(prev, ch)
	if ok && reflect.DeepEqual(ch, submission.Abandon(prev, ch.Now)) {
		// Another attempt gives the claim up: the attempt that holds it
		// must have ended, its invocation returned or its process dead.
		// Only one that died, or sent its create call, may have made a
		// task unseen.
		owner := s.w.claimOwner(prev.ClaimedBy)
		s.w.abandoned = s.w.abandoned || owner.dead || slices.Contains(s.w.platform.callers, prev.ClaimedBy)
		if owner.live() && owner.claiming == prev.ClaimedBy {
			s.w.mu.Lock()
			s.w.fail(fmt.Errorf("%s made submission %s unknown while %s, whose attempt holds its claim, still runs", c.t.actor.name, ch.ID, owner.name))
			s.w.mu.Unlock()
		}
	}
	if !ok {
		if c.lost() {
			c.end("stale")
			return submission.Submission{}, errLost
		}
		c.end("stale: "+briefSub(prev), fmt.Sprintf("%+v", prev))
		return prev, submission.ErrStale
	}
	s.put(prev, next)
	if c.lost() {
		c.end("applied")
		return submission.Submission{}, errLost
	}
	if c.retried() {
		// The second send meets the first's effect, as the SDK's retry
		// of a write whose answer was lost does.
		again, ok := submission.Apply(next, ch)
		if !ok {
			c.end("stale: "+briefSub(next), fmt.Sprintf("%+v", next))
			return next, submission.ErrStale
		}
		s.put(next, again)
		next = again
	}
	c.end("applied: "+briefSub(next), fmt.Sprintf("%+v", next))
	return next, nil
}

// LinkTask is dynamo's: the link, unless the submission has ended. The
// platform's task learns whether its callback found its submission ended
// other than submitted, the one way its task may stay unlinked.
func (s *subStore) LinkTask(ctx context.Context, id, taskID string, now time.Time) error {
	current, err := s.Update(ctx, submission.Link(id, taskID, now))
	if !errors.Is(err, submission.ErrStale) {
		return err
	}
	if t := s.w.platform.task(taskID); t != nil && submission.Final(current.Status) && current.Status != submission.Submitted {
		t.foundEnded = true
	}
	return nil
}

// Open lists the submissions in status updated before before, oldest
// first.
func (s *subStore) Open(ctx context.Context, status string, before time.Time, limit int32) ([]submission.Submission, error) {
	return s.list("OpenSubmissions "+status, before, limit, func(sub submission.Submission) bool { return sub.Status == status })
}

// Unannounced lists the ended submissions whose event the bus has not
// taken, ended before before, oldest first.
func (s *subStore) Unannounced(ctx context.Context, before time.Time, limit int32) ([]submission.Submission, error) {
	return s.list("UnannouncedSubmissions", before, limit, submission.Submission.Unannounced)
}

// list is one query of the open index, a step named label.
func (s *subStore) list(label string, before time.Time, limit int32, listed func(submission.Submission) bool) ([]submission.Submission, error) {
	c := s.w.call(label, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	var out []submission.Submission
	for _, id := range sortedKeys(s.recs) {
		if sub := s.recs[id]; listed(sub) && sub.UpdatedAt.Unix() < before.Unix() {
			out = append(out, sub)
		}
	}
	slices.SortStableFunc(out, func(a, b submission.Submission) int { return a.UpdatedAt.Compare(b.UpdatedAt) })
	out = out[:min(len(out), int(limit))]
	names := make([]string, len(out))
	for i, sub := range out {
		names[i] = sub.ID
	}
	c.end(orNone(strings.Join(names, ",")), fmt.Sprintf("%+v", out))
	return out, nil
}

// put writes next over prev, holding it to the one-way doors and keeping
// the history of statuses each submission reached.
func (s *subStore) put(prev, next submission.Submission) {
	w := s.w
	s.recs[next.ID] = next
	var err error
	switch {
	case submission.Final(prev.Status) && !sameButNotified(prev, next):
		err = fmt.Errorf("submission %s went from %+v to %+v: an end never changes, but for the mark of its event", next.ID, prev, next)
	case next.Status == submission.Submitted && !slices.Contains(w.platform.madeFor(next.ID), next.TaskID):
		err = fmt.Errorf("submission %s is submitted as task %q, which the platform never made for it", next.ID, next.TaskID)
	}
	if err != nil {
		w.mu.Lock()
		w.fail(err)
		w.mu.Unlock()
	}
	if h := s.history[next.ID]; len(h) == 0 || h[len(h)-1].status != next.Status {
		w.seq++
		s.history[next.ID] = append(h, subReached{status: next.Status, seq: w.seq})
	}
}

// sameButNotified reports whether a and b differ at most in when their
// event was taken.
func sameButNotified(a, b submission.Submission) bool {
	a.NotifiedAt, b.NotifiedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

// describeSub names a change by the constructor that made it, for traces.
func describeSub(c submission.Change) string {
	switch {
	case c.Notified:
		return "MarkNotified " + c.From
	case c.Claim != "":
		return "Claim for " + c.Claim
	case c.To == "" && c.DropClaim:
		return "Release by " + c.ClaimedBy
	case c.To == "":
		return "Touch"
	case c.OrFrom != "":
		return "Link " + c.TaskID
	case c.ClaimedBy != "":
		return c.From + "→" + c.To + " by " + c.ClaimedBy
	}
	return c.From + "→" + c.To
}

// briefSub is a submission in a few words, for traces.
func briefSub(s submission.Submission) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s attempts %d", s.Status, s.Attempts)
	if s.ClaimedBy != "" {
		fmt.Fprintf(&b, " claimed by %s", s.ClaimedBy)
	}
	if s.TaskID != "" {
		fmt.Fprintf(&b, " task %s", s.TaskID)
	}
	if !s.NotifiedAt.IsZero() {
		b.WriteString(" notified")
	}
	return b.String()
}

// openAccount is the pacing and credits of the account, which the
// explorer leaves out (their stores have tests of their own): every slot
// is free at once, and the account never runs out of credits.
type openAccount struct{}

func (openAccount) TakeSlot(ctx context.Context, account string, rate int, window, hold time.Duration, clock func() time.Time) (time.Duration, time.Time, error) {
	return 0, clock(), nil
}

func (openAccount) Redate(ctx context.Context, account string, from, to time.Time) error {
	return nil
}

func (openAccount) Credits(ctx context.Context, account string) (submission.Credits, error) {
	return submission.Credits{}, nil
}

func (openAccount) Pause(ctx context.Context, account string, now time.Time) error { return nil }

func (openAccount) Resume(ctx context.Context, account string) error { return nil }

func (openAccount) ClaimCheck(ctx context.Context, account string, c submission.Credits, now time.Time) (bool, error) {
	return false, nil
}

// platformFake is the platform's create call: its answers are the
// scenario's codes, one a call, the last for good; a 200 makes a task. A
// lost answer is a call that made its task and timed out; a refused one,
// a call that failed before its request was written.
type platformFake struct {
	w          *world
	answers    []int
	calls      int
	tasks      []*madeTask
	callers    []string // the attempts that sent a create call
	answerLost bool     // a create call's answer was lost
}

// madeTask is a task the platform made, and what became of its callback.
type madeTask struct {
	id, sub  string
	attempts int  // callbacks sent
	answered bool // a callback was answered 200
	// foundEnded: a callback found its submission already ended (and
	// could not link it).
	foundEnded bool
}

func (p *platformFake) Create(ctx context.Context, api string, body []byte) submission.Answer {
	c := p.w.call("create on the platform", mayLose|mayRefuse, nil)
	if c.failed() {
		c.end("")
		return submission.Answer{Err: c.err()}
	}
	sid := kie.SubmissionFromQuery(callbackQuery(body))
	if sub, owner := p.w.subs.recs[sid], c.t.actor.claiming; sub.Status != submission.Accepted || sub.ClaimedBy != owner {
		p.w.mu.Lock()
		p.w.fail(fmt.Errorf("%s sent a create call for submission %s (%s) without its claim (%s)", c.t.actor.name, sid, briefSub(sub), owner))
		p.w.mu.Unlock()
	}
	code := p.answers[min(p.calls, len(p.answers)-1)]
	p.calls++
	p.callers = append(p.callers, c.t.actor.claiming)
	a := submission.Answer{Code: code, Msg: http.StatusText(code)}
	if code == http.StatusOK {
		t := &madeTask{id: fmt.Sprintf("task%d", len(p.tasks)+1), sub: sid}
		p.tasks = append(p.tasks, t)
		a.TaskID = t.id
		if n := len(p.madeFor(t.sub)); n > 1 {
			p.w.mu.Lock()
			p.w.fail(fmt.Errorf("the platform made %d tasks for submission %s", n, t.sub))
			p.w.mu.Unlock()
		}
	}
	if c.lost() {
		p.answerLost = true
		c.end(fmt.Sprintf("%d %s", code, a.TaskID))
		return submission.Answer{Written: true, Err: errLost}
	}
	c.end(fmt.Sprintf("%d %s", code, a.TaskID), a)
	return a
}

// Record is the platform's record-info of a task: every task it made
// failed to generate, as its callback says.
func (p *platformFake) Record(ctx context.Context, api, id string) (kie.Record, error) {
	c := p.w.call("record-info "+id, mayRefuse, nil)
	if c.failed() {
		c.end("")
		return kie.Record{}, c.err()
	}
	if p.task(id) == nil {
		c.end("no such task")
		return kie.Record{}, fmt.Errorf("record-info %s: no such task", id)
	}
	c.end("failed 501")
	return kie.Record{State: kie.Failed, Code: 501, Msg: "generation failed"}, nil
}

// Credits is never asked: the account never runs out.
func (p *platformFake) Credits(ctx context.Context) (float64, error) { return 1, nil }

// madeFor lists the tasks made for submission sid.
func (p *platformFake) madeFor(sid string) []string {
	var out []string
	for _, t := range p.tasks {
		if t.sub == sid {
			out = append(out, t.id)
		}
	}
	return out
}

// task is the made task id, or nil.
func (p *platformFake) task(id string) *madeTask {
	for _, t := range p.tasks {
		if t.id == id {
			return t
		}
	}
	return nil
}

// due is the next task to call back: the first whose callback was never
// answered and was sent fewer than limit times (the platform calls a
// refused callback again).
func (p *platformFake) due(limit int) *madeTask {
	for _, t := range p.tasks {
		if !t.answered && t.attempts < limit {
			return t
		}
	}
	return nil
}

// callbackQuery is the query of the create body's callBackUrl.
func callbackQuery(body []byte) string {
	var in struct {
		CallBackURL string `json:"callBackUrl"`
	}
	if json.Unmarshal(body, &in) != nil {
		return ""
	}
	u, err := url.Parse(in.CallBackURL)
	if err != nil {
		return ""
	}
	return u.RawQuery
}

// The actors.

// submit is the application's POST /submissions, through the real
// handler, whose message is sent while its submission is written
// (sendGroup). A 200 or 202 answered is a submission that must never be
// lost.
func (w *world) submit(name string) {
	w.spawn(name, callbackDeadline, func(ctx context.Context, a *actor) {
		resp, err := w.submitH.Handle(ctx, events.LambdaFunctionURLRequest{
			RawPath: "/submissions",
			Headers: map[string]string{"idempotency-key": subKey, "content-type": "application/json"},
			Body:    `{"api":"` + subAPI + `","input":{"prompt":"a lighthouse at dusk"}}`,
			RequestContext: events.LambdaFunctionURLRequestContext{
				HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: http.MethodPost},
			},
		})
		a.note = fmt.Sprintf("answered %d %v", resp.StatusCode, err)
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusAccepted {
			w.mu.Lock()
			w.subAnswered = true
			w.mu.Unlock()
		}
	})
}

// submitter is the submission queue's event source mapping with the
// real submitter, for batches invocations.
func (w *world) submitter(name string, batches int) {
	w.mapping(name, batches, submitURL, submitVisibility, submitterDeadline, w.submitterFn.Handle)
}

// platformCalls is the platform calling back the tasks it made, one
// callback invocation after another, each task until its callback is
// answered or has been sent limit times. The task failed to generate, so
// that its callback starts no copy: what matters here is the submission
// the real receiver links it to.
func (w *world) platformCalls(name string, limit int) {
	w.spawn(name, 0, func(ctx context.Context, a *actor) {
		for {
			c := w.park(pending{label: "the platform calls back", noCrash: true,
				ready: func() bool { return w.platform.due(limit) != nil }})
			t := w.platform.due(limit)
			t.attempts++
			w.mu.Lock()
			a.deadline = w.now.Add(callbackDeadline)
			w.mu.Unlock()
			c.end(t.id)
			_, err := w.receiver.Receive(ctx, task.Callback{TaskID: t.id, Code: 501, Msg: "generation failed", API: subAPI, SubmissionID: t.sub})
			a.note = fmt.Sprint(err)
			t.answered = t.answered || err == nil
			w.mu.Lock()
			a.deadline = time.Time{}
			w.mu.Unlock()
		}
	})
}

// The checks.

// submissionsQuiescent holds the submissions, once nothing can happen
// any more, to what must be true at the end: each ended, and its end
// announced; one answered 200 or 202 kept; a task made for one linked to
// it, unless its callback came after the submission had ended
// submit_unknown.
func (w *world) submissionsQuiescent() error {
	if w.subAnswered && len(w.subs.recs) == 0 {
		return fmt.Errorf("a submission was answered 200 or 202, and no submission is kept")
	}
	for _, id := range sortedKeys(w.subs.recs) {
		sub := w.subs.recs[id]
		if !submission.Final(sub.Status) {
			return fmt.Errorf("submission %s is stuck %s: no message, claim or run will move it (%s)", id, sub.Status, briefSub(sub))
		}
		for _, r := range w.subs.history[id] {
			if submission.Final(r.status) && !slices.ContainsFunc(w.bus.events, func(e event) bool {
				return e.submission == id && string(e.status) == r.status && e.seq > r.seq
			}) {
				return fmt.Errorf("submission %s ended %s, and no event announced it", id, r.status)
			}
		}
	}
	for _, t := range w.platform.tasks {
		// kiehook learns a task from its create call's answer, its
		// callback, or its pending record's poll; of one it never learned
		// (its submitter died before its record, its callback never
		// came), submit_unknown is all it can say.
		sub := w.subs.recs[t.sub]
		_, learned := w.store.recs[t.id]
		if sub.Status != submission.Submitted && !(sub.Status == submission.SubmitUnknown && (t.foundEnded || !learned)) {
			return fmt.Errorf("the platform made task %s for submission %s, which ended %s (%s)", t.id, t.sub, sub.Status, briefSub(sub))
		}
	}
	if n := len(w.sqs.queues[submitURL].msgs); n > 0 {
		return fmt.Errorf("%d messages left in the submission queue", n)
	}
	return nil
}

// submittedOnce expects the submission, if kept, to end submitted as one
// task; or submit_unknown, when the platform may have made its task
// unseen: a create call's answer was lost, or an attempt that died or
// sent its call ended holding its claim (then its task, if any, is linked
// unless its callback came after the end). The platform refuses none for
// good here.
func submittedOnce(w *world) error {
	sub, ok := w.subs.recs[submission.IDOf(subKey)]
	switch made := w.platform.madeFor(sub.ID); {
	case !ok:
		return nil // never answered 200 or 202 (submissionsQuiescent): the application posts again
	case sub.Status == submission.Submitted && len(made) == 1:
		return nil
	case sub.Status == submission.SubmitUnknown && (w.platform.answerLost || w.abandoned):
		return nil
	default:
		return fmt.Errorf("submission ended %s with tasks %v made (answer lost %t, claim abandoned %t), want submitted with one",
			sub.Status, made, w.platform.answerLost, w.abandoned)
	}
}
