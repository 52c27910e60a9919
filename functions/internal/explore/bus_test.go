package explore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// event is one event the bus accepted: a task's, or a submission's.
type event struct {
	task, submission string
	status           task.Status
	objects          []taskevent.Object
	seq              int // when, among the records' changes
}

// busFake is EventBridge: it keeps every event put.
type busFake struct {
	w      *world
	events []event
}

func (b *busFake) PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	var d struct {
		taskevent.Detail
		SubmissionID string `json:"submissionId"`
	}
	if len(in.Entries) != 1 || json.Unmarshal([]byte(aws.ToString(in.Entries[0].Detail)), &d) != nil {
		return nil, fmt.Errorf("explore: an event that is not one task's or submission's detail")
	}
	var ev event
	switch detailType := aws.ToString(in.Entries[0].DetailType); detailType {
	case taskevent.Submitted, taskevent.SubmitFailed, taskevent.SubmitUnknown:
		ev = event{submission: d.SubmissionID, status: task.Status(d.Status)}
		if rec := b.w.subs.recs[d.SubmissionID]; d.TaskID != rec.TaskID {
			b.w.mu.Lock()
			b.w.fail(fmt.Errorf("%s event of submission %s names task %q, its record %q", detailType, d.SubmissionID, d.TaskID, rec.TaskID))
			b.w.mu.Unlock()
		}
	default:
		ev = event{task: d.TaskID, status: task.Status(d.Status), objects: d.Objects}
	}
	c := b.w.call("PutEvents "+aws.ToString(in.Entries[0].DetailType)+" "+ev.task+ev.submission, mayRefuse, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	w := b.w
	w.seq++
	ev.seq = w.seq
	b.events = append(b.events, ev)
	if err := b.check(ev); err != nil {
		w.mu.Lock()
		w.fail(err)
		w.mu.Unlock()
	}
	c.end("put")
	return &eventbridge.PutEventsOutput{Entries: []ebtypes.PutEventsResultEntry{{EventId: aws.String("e" + strconv.Itoa(len(b.events)))}}}, nil
}

// check holds an event to what its task really reached: a status it
// reached, and for a stored task the objects its record names.
func (b *busFake) check(ev event) error {
	w := b.w
	if ev.submission != "" {
		if !slices.ContainsFunc(w.subs.history[ev.submission], func(r subReached) bool { return r.status == string(ev.status) }) {
			return fmt.Errorf("event %s of submission %s put, and the submission never was %s", ev.status, ev.submission, ev.status)
		}
		return nil
	}
	reachedIt := false
	for _, r := range w.history[ev.task] {
		reachedIt = reachedIt || r.status == ev.status
	}
	if !reachedIt {
		return fmt.Errorf("event %s of task %s put, and the task never was %s", ev.status, ev.task, ev.status)
	}
	if ev.status != task.StatusStored {
		return nil
	}
	rec := w.store.recs[ev.task]
	if rec.Status != task.StatusStored || len(rec.Objects) != len(ev.objects) {
		return fmt.Errorf("stored event of task %s names %d objects, its record %d", ev.task, len(ev.objects), len(rec.Objects))
	}
	for i, o := range ev.objects {
		if o.Key != rec.Objects[i].Key || o.SHA256 != rec.Objects[i].SHA256 {
			return fmt.Errorf("stored event of task %s names %s (%s), its record %s (%s)", ev.task, o.Key, o.SHA256, rec.Objects[i].Key, rec.Objects[i].SHA256)
		}
	}
	return nil
}

// source is the platform's file host: a loopback server whose paths
// script what it answers. /seq/<codes>/<name>.png answers the codes in
// turn, one a request in this execution, the last for good; a 200 is a
// small PNG of its own for each name.
type source struct {
	srv    *httptest.Server
	mu     sync.Mutex
	served map[string]int // requests per path, this execution
}

func newSource() *source {
	s := &source{served: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

func (s *source) url(codes, name string) string {
	return s.srv.URL + "/seq/" + codes + "/" + name + ".png"
}

func (s *source) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.served)
}

func (s *source) serve(rw http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/seq/"), "/")
	if len(parts) != 2 {
		http.NotFound(rw, r)
		return
	}
	codes := strings.Split(parts[0], ",")
	s.mu.Lock()
	n := s.served[r.URL.Path]
	s.served[r.URL.Path]++
	s.mu.Unlock()
	code, _ := strconv.Atoi(codes[min(n, len(codes)-1)])
	if code != http.StatusOK {
		http.Error(rw, http.StatusText(code), code)
		return
	}
	body := pngOf(strings.TrimSuffix(parts[1], ".png"))
	rw.Header().Set("Content-Type", "image/png")
	rw.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rw.Write(body)
}

// state is what the source will answer next, for the state hash.
func (s *source) state() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.served)
}

var (
	pngMu    sync.Mutex
	pngCache = map[string][]byte{}
)

// pngOf is a 4×4 PNG whose pixels spell name: each file has its own
// bytes, so a copy of the wrong one shows in its SHA-256.
func pngOf(name string) []byte {
	pngMu.Lock()
	defer pngMu.Unlock()
	if b, ok := pngCache[name]; ok {
		return b
	}
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	for i := range 16 {
		var c byte
		if i < len(name) {
			c = name[i]
		}
		img.Set(i%4, i/4, color.NRGBA{R: c, G: byte(i), B: 0x80, A: 0xff})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		panic(err)
	}
	pngCache[name] = buf.Bytes()
	return buf.Bytes()
}

// opener is the copier's download of a source: the real downloader,
// whose Open is a step.
type opener struct {
	w  *world
	dl *download.Downloader
}

func (o opener) Open(ctx context.Context, rawURL string) (*download.Download, error) {
	path := rawURL[strings.Index(rawURL, "/seq/"):]
	c := o.w.call("Open "+path, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	d, err := o.dl.Open(ctx, rawURL)
	if err != nil {
		c.end(err.Error(), err.Error())
		return nil, err
	}
	c.end("200 "+d.ContentType, d.ContentType)
	return d, nil
}
