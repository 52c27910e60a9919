package copier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/kieapi"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/functions/taskevent"
	"github.com/kiehook/kiehook/infra/capture"
	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/esm"
	"github.com/kiehook/kiehook/infra/platform"
)

// files are generated-looking results: the right magic bytes, then filler.
// They are made on first use, so that the benchmarks, which never use
// them, do not carry their 10 MiB.
var files = sync.OnceValue(func() map[string][]byte {
	return map[string][]byte{
		"/img.png":   media("\x89PNG\r\n\x1a\n", 300<<10),
		"/img.jpg":   media("\xff\xd8\xff\xe0\x00\x10JFIF", 120<<10),
		"/clip.mp4":  media("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", 9<<20),
		"/song.mp3":  media("ID3\x04\x00\x00\x00\x00\x00\x00", 700<<10),
		"/page.html": []byte("<!DOCTYPE html><html>gone</html>"),
	}
})

func media(magic string, size int) []byte {
	b := make([]byte, size)
	copy(b, magic)
	for i := len(magic); i < size; i++ {
		b[i] = byte(i * 31)
	}
	return b
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// sourceServer serves files and failure modes, counting requests per path.
type sourceServer struct {
	*httptest.Server
	mu    sync.Mutex
	hits  map[string]int
	fails map[string]int // path -> how many more times to answer 503
	gate  chan struct{}  // /gated.mp4 sends the rest of its bytes once this closes
}

func newSource(tb testing.TB) *sourceServer {
	tb.Helper()
	s := &sourceServer{hits: map[string]int{}, fails: map[string]int{}, gate: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

func (s *sourceServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	failing := s.fails[r.URL.Path] > 0
	if failing {
		s.fails[r.URL.Path]--
	}
	s.mu.Unlock()
	if failing {
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/status/"):
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		w.WriteHeader(code)
	case r.URL.Path == "/huge.mp4":
		w.Write(files()["/clip.mp4"][:1<<20])
		for range 64 {
			if _, err := w.Write(make([]byte, 1<<20)); err != nil {
				return
			}
		}
	case r.URL.Path == "/gated.mp4":
		clip := files()["/clip.mp4"]
		w.Write(clip[:6<<20]) // more than a part: the upload is multipart
		w.(http.Flusher).Flush()
		select {
		case <-s.gate:
			w.Write(clip[6<<20:])
		case <-r.Context().Done():
		}
	case r.URL.Path == "/stall.png":
		w.Write(files()["/img.png"][:4096])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	case r.URL.Path == "/reset.png":
		w.Header().Set("Content-Length", "1000000")
		w.Write(files()["/img.png"][:8192])
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	default:
		b, ok := files()[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}
}

func (s *sourceServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *sourceServer) failNext(path string, n int) {
	s.mu.Lock()
	s.fails[path] = n
	s.mu.Unlock()
}

type harness struct {
	env     *emulators.Env
	src     *sourceServer
	store   *dynamo.Store
	copier  *Copier
	handler *Handler
	metrics *capture.Buffer
}

var testNow = time.Unix(1764300000, 0).UTC()

// testParts is the part budget of the tests' copiers: as many buffers as
// keep S3 busy, what the command's memory plan gives a 512 MB copier.
var testParts = objects.NewBudget(objects.PartsInFlight)

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	return newHarnessOn(tb, env)
}

// newHarnessOn is a harness on env, which the caller may share.
func newHarnessOn(tb testing.TB, env *emulators.Env) *harness {
	tb.Helper()
	h := &harness{env: env, src: newSource(tb), store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents), metrics: &capture.Buffer{}}
	h.copier = &Copier{
		Store: h.store,
		// The idle timeout is short for the stall tests, yet long enough for
		// a race build on two busy cores, where a source can starve for
		// hundreds of milliseconds while parts upload.
		Sources: download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, MaxBytes: 32 << 20, IdleTimeout: 1500 * time.Millisecond}),
		Objects: objects.New(env.S3, env.Bucket, testParts),
		Prefix:  "tasks/",
		Metrics: metrics.New(h.metrics, "kiehook", time.Now),
		Logger:  slog.New(slog.DiscardHandler),
		Now:     func() time.Time { return testNow },
	}
	h.handler = NewHandler(h.copier.Copy, h.copier.Logger)
	return h
}

func (h *harness) url(path string) string { return h.src.URL + path }

func (h *harness) seed(tb testing.TB, id string, status task.Status, paths ...string) {
	tb.Helper()
	if _, created, err := h.store.Create(context.Background(), h.task(id, status, paths...)); err != nil || !created {
		tb.Fatalf("seed %s: %v %v", id, created, err)
	}
}

func (h *harness) task(id string, status task.Status, paths ...string) task.Task {
	t := task.Task{ID: id, Status: status, Code: 200, Msg: "success", API: "midjourney", Deliveries: 1, ReceivedAt: testNow, UpdatedAt: testNow, ExpiresAt: testNow.Add(time.Hour)}
	for _, p := range paths {
		t.Sources = append(t.Sources, h.url(p))
	}
	return t
}

func message(id string) events.SQSMessage {
	return events.SQSMessage{MessageId: "msg-" + id, Body: fmt.Sprintf(`{"taskId":%q}`, id)}
}

func (h *harness) run(tb testing.TB, msgs ...events.SQSMessage) []string {
	tb.Helper()
	resp, err := h.handler.Handle(context.Background(), events.SQSEvent{Records: msgs})
	if err != nil {
		tb.Fatalf("Handle: %v", err)
	}
	var failed []string
	for _, f := range resp.BatchItemFailures {
		failed = append(failed, f.ItemIdentifier)
	}
	return failed
}

func (h *harness) record(tb testing.TB, id string) task.Task {
	tb.Helper()
	t, found, err := h.store.Get(context.Background(), id)
	if err != nil || !found {
		tb.Fatalf("record %s: %v %v", id, found, err)
	}
	return t
}

func (h *harness) keys(tb testing.TB, prefix string) []string {
	tb.Helper()
	out, err := h.env.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &h.env.Bucket, Prefix: &prefix})
	if err != nil {
		tb.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	return keys
}

func (h *harness) object(tb testing.TB, key string) emulators.Object {
	tb.Helper()
	obj, err := h.env.Object(context.Background(), key)
	if err != nil {
		tb.Fatalf("get %s: %v", key, err)
	}
	return obj
}

func TestCopiesEveryResultAndMarksTheTaskStored(t *testing.T) {
	h := newHarness(t)
	paths := []string{"/img.png", "/img.jpg", "/clip.mp4", "/song.mp3"}
	h.seed(t, "copy_all", task.StatusQueued, paths...)
	if failed := h.run(t, message("copy_all")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	rec := h.record(t, "copy_all")
	if rec.Status != task.StatusStored || !rec.StoredAt.Equal(testNow) || len(rec.Objects) != len(paths) {
		t.Fatalf("record %+v", rec)
	}
	wants := []struct{ key, ct string }{
		{"tasks/copy_all/0.png", "image/png"},
		{"tasks/copy_all/1.jpg", "image/jpeg"},
		{"tasks/copy_all/2.mp4", "video/mp4"},
		{"tasks/copy_all/3.mp3", "audio/mpeg"},
	}
	for i, want := range wants {
		src := files()[paths[i]]
		obj := rec.Objects[i]
		if obj.Key != want.key || obj.ContentType != want.ct || obj.Bytes != int64(len(src)) || obj.SHA256 != sum(src) || obj.Source != h.url(paths[i]) {
			t.Errorf("object %d = %+v", i, obj)
		}
		stored := h.object(t, want.key)
		if !bytes.Equal(stored.Body, src) {
			t.Errorf("%s: stored bytes differ from the source", want.key)
		}
		meta := stored.Metadata
		if stored.ContentType != want.ct || meta["task-id"] != "copy_all" || meta["source-url"] != h.url(paths[i]) || stored.Tags["sha256"] != sum(src) {
			t.Errorf("%s: content type %s, metadata %v, tags %v", want.key, stored.ContentType, meta, stored.Tags)
		}
	}
}

func TestFinishedTasksAreNotDownloadedAgain(t *testing.T) {
	for _, status := range []task.Status{task.StatusStored, task.StatusCopyFailed} {
		t.Run("a "+string(status)+" task is skipped", func(t *testing.T) {
			h := newHarness(t)
			h.seed(t, "done", status, "/img.png")
			if failed := h.run(t, message("done")); len(failed) != 0 {
				t.Errorf("failed %v", failed)
			}
			if n := h.src.count("/img.png"); n != 0 {
				t.Errorf("downloaded %d times", n)
			}
		})
	}
}

func TestAnOperatorsRequeueCopiesACopyFailedTaskAgain(t *testing.T) {
	h := newHarness(t)
	failed := h.task("again", task.StatusCopyFailed, "/img.png")
	failed.Error = "source answered 503"
	if _, _, err := h.store.Create(context.Background(), failed); err != nil {
		t.Fatal(err)
	}
	requeue := events.SQSMessage{MessageId: "msg-ops", Body: schema.CopyMessage{TaskID: "again", Generation: 1, Requeue: true}.Encode()}
	if failed := h.run(t, message("again"), requeue); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	h.assertStored(t, "again", "/img.png")
	if rec := h.record(t, "again"); rec.Error != "" || rec.Generation != 1 {
		t.Errorf("the stored record keeps the old error %q, or is of queueing %d, not 1", rec.Error, rec.Generation)
	}
}

func TestARequeueActsOnce(t *testing.T) {
	h := newHarness(t)
	failed := h.task("once", task.StatusCopyFailed, "/status/503")
	failed.Error = "copy retries exhausted"
	if _, _, err := h.store.Create(context.Background(), failed); err != nil {
		t.Fatal(err)
	}
	requeue := events.SQSMessage{MessageId: "msg-ops", Body: schema.CopyMessage{TaskID: "once", Generation: 1, Requeue: true}.Encode()}
	if failed := h.run(t, requeue); len(failed) != 1 {
		t.Fatalf("failed %v: a source answering 503 is retried", failed)
	}
	// The copy ends copy_failed again (the reconciler's give-up, here by
	// hand); the same request delivered once more must not start a third
	// queueing, nor announce the task again.
	rec := h.record(t, "once")
	l := task.Lease{Owner: "reconciler", Until: testNow.Add(time.Minute)}
	if _, err := h.store.Update(context.Background(), task.Seize("once", 1, l, testNow)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Update(context.Background(), task.MarkCopyFailed("once", "reconciler", "copy retries exhausted", testNow)); err != nil {
		t.Fatal(err)
	}
	if failed := h.run(t, requeue); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if got := h.record(t, "once"); got.Status != task.StatusCopyFailed || got.Generation != 1 || rec.Generation != 1 {
		t.Errorf("record %+v: the request began its queueing once", got)
	}
}

func TestAMessageOfAnOlderQueueingIsSpent(t *testing.T) {
	h := newHarness(t)
	rec := h.task("newer", task.StatusQueued, "/img.png")
	rec.Generation = 2
	if _, _, err := h.store.Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	if failed := h.run(t, message("newer")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if got := h.record(t, "newer"); got.Status != task.StatusQueued || h.src.count("/img.png") != 0 {
		t.Errorf("record %+v, %d downloads: the requeue's own message carries the copy", got, h.src.count("/img.png"))
	}
	if m := h.metrics.String(); !strings.Contains(m, `"Outcome":"spent"`) {
		t.Errorf("metrics %s", m)
	}
}

func TestPermanentFailuresMarkTheTaskAndDropTheMessage(t *testing.T) {
	tests := []struct {
		name, path, reason string
	}{
		{"a 404", "/status/404", "source 1: source answered 404 Not Found"},
		{"a 410", "/status/410", "source 1: source answered 410 Gone"},
		{"an html page", "/page.html", "not an image, video or audio file"},
		{"a file over MAX_OBJECT_BYTES", "/huge.mp4", "larger than MAX_OBJECT_BYTES"},
		{"a host outside SOURCE_HOSTS", "http://localhost/img.png", "not in SOURCE_HOSTS"},
		{"a URL that is not one", "::not a url", "not an absolute URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" ends copy_failed", func(t *testing.T) {
			h := newHarness(t)
			rec := task.Task{ID: "perm", Status: task.StatusQueued, Code: 200, Deliveries: 1, ExpiresAt: testNow}
			rec.Sources = []string{h.url("/img.png"), tt.path}
			if strings.HasPrefix(tt.path, "/") {
				rec.Sources[1] = h.url(tt.path)
			}
			h.store.Create(context.Background(), rec)
			if failed := h.run(t, message("perm")); len(failed) != 0 {
				t.Errorf("failed %v: a permanent failure must not be retried", failed)
			}
			got := h.record(t, "perm")
			if got.Status != task.StatusCopyFailed || !strings.Contains(got.Error, tt.reason) {
				t.Errorf("record %s %q, want copy_failed with %q", got.Status, got.Error, tt.reason)
			}
			// Source 0 was copied whole: no record names it now.
			if keys := h.keys(t, "tasks/perm/"); len(keys) != 0 {
				t.Errorf("left %v behind", keys)
			}
			h.assertNoOpenUploads(t)
		})
	}
}

// assertNoOpenUploads checks that no multipart upload was left open.
func (h *harness) assertNoOpenUploads(tb testing.TB) {
	tb.Helper()
	if n, err := h.env.OpenUploads(context.Background()); n != 0 || err != nil {
		tb.Errorf("%d multipart uploads left open, error %v", n, err)
	}
}

func TestTransientFailuresAreRetried(t *testing.T) {
	tests := []struct {
		name string
		path string
		fail func(t *testing.T, h *harness) // makes a dependency fail, if set
	}{
		{"a 503", "/status/503", nil},
		{"a 429", "/status/429", nil},
		{"a 408", "/status/408", nil},
		{"a stalled source", "/stall.png", nil},
		{"a connection reset", "/reset.png", nil},
		{"an S3 failure", "/img.png", func(t *testing.T, h *harness) {
			down := s3.NewFromConfig(emulators.Config(), func(o *s3.Options) {
				o.BaseEndpoint, o.UsePathStyle = aws.String("http://127.0.0.1:1"), true
			})
			h.copier.Objects = objects.New(down, h.env.Bucket, testParts)
		}},
		{"a DynamoDB failure", "/img.png", func(t *testing.T, h *harness) {
			down := dynamodb.NewFromConfig(emulators.Config(), func(o *dynamodb.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
			h.copier.Store = dynamo.New(down, h.env.Table, dynamo.WithEvents)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" returns the message to the queue", func(t *testing.T) {
			h := newHarness(t)
			if tt.fail != nil {
				tt.fail(t, h)
			}
			h.seed(t, "flaky", task.StatusQueued, tt.path)
			if failed := h.run(t, message("flaky")); len(failed) != 1 || failed[0] != "msg-flaky" {
				t.Errorf("failed %v, want [msg-flaky]", failed)
			}
			if rec := h.record(t, "flaky"); rec.Status != task.StatusQueued {
				t.Errorf("status %s, want queued", rec.Status)
			}
		})
	}
}

// flakyStored fails the first change to stored, as a copier that died
// after its uploads and before its update would.
type flakyStored struct {
	*dynamo.Store
	failed atomic.Bool
}

func (f *flakyStored) Update(ctx context.Context, c task.Change) (task.Task, error) {
	if c.Effect().Status == task.StatusStored && f.failed.CompareAndSwap(false, true) {
		return task.Task{}, errors.New("connection reset by peer")
	}
	return f.Store.Update(ctx, c)
}

func TestRedeliveryAfterACrashEndsWithTheSameObjects(t *testing.T) {
	t.Run("a crash between two sources", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "crash", task.StatusQueued, "/img.png", "/clip.mp4")
		h.src.failNext("/clip.mp4", 1)
		if failed := h.run(t, message("crash")); len(failed) != 1 {
			t.Fatalf("failed %v, want the message retried", failed)
		}
		if failed := h.run(t, message("crash")); len(failed) != 0 {
			t.Fatalf("redelivery failed %v", failed)
		}
		h.assertStored(t, "crash", "/img.png", "/clip.mp4")
	})
	t.Run("a crash after the uploads, before the record", func(t *testing.T) {
		h := newHarness(t)
		h.copier.Store = &flakyStored{Store: h.store}
		h.seed(t, "late", task.StatusQueued, "/img.png")
		if failed := h.run(t, message("late")); len(failed) != 1 {
			t.Fatalf("failed %v", failed)
		}
		h.run(t, message("late"))
		h.assertStored(t, "late", "/img.png")
	})
	t.Run("two messages of one task in a batch are one copy, and both are done with it", func(t *testing.T) {
		h := newHarness(t).withEvents()
		h.seed(t, "twice", task.StatusQueued, "/img.png", "/song.mp3")
		m := message("twice")
		m2 := m
		m2.MessageId = "msg-twice-2"
		if failed := h.run(t, m, m2); len(failed) != 0 {
			t.Fatalf("failed %v: the twin must not wait out a visibility timeout", failed)
		}
		if n := h.src.count("/img.png"); n != 1 {
			t.Errorf("/img.png downloaded %d times: one copy for both messages", n)
		}
		if strings.Contains(h.metrics.String(), `"Outcome":"leased"`) {
			t.Errorf("metrics %s: no delivery found the task leased", h.metrics.String())
		}
		h.assertStored(t, "twice", "/img.png", "/song.mp3")
		if evs := h.events(t); len(evs) != 1 || evs[0].Type != taskevent.Stored {
			t.Errorf("events %+v, want one Task Stored", evs)
		}
	})
}

func TestTwoCopiersOfOneTaskNeverRuinEachOther(t *testing.T) {
	h := newHarness(t).withEvents()
	// A waits on the gate for as long as the test takes: no stall.
	h.copier.Sources = download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, MaxBytes: 32 << 20})
	h.seed(t, "shared", task.StatusQueued, "/gated.mp4")
	// Copier A holds the task mid-upload: its multipart upload is open and
	// recorded, its source waits.
	a := make(chan []string)
	go func() { a <- h.run(t, message("shared")) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(h.record(t, "shared").Uploads) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("copier A never recorded its upload")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Copier B gets a second delivery of the task's message (SQS keeps
	// its id): it must come back, should A fail.
	second := message("shared")
	if failed := h.run(t, second); len(failed) != 1 {
		t.Errorf("copier B: failed %v, want its message left for later", failed)
	}
	// Copier C gets another message of the task, a repeat callback's: A's
	// message carries the copy, so C's is done with, never spending
	// deliveries towards the dead-letter queue while A copies.
	repeat := message("shared")
	repeat.MessageId = "msg-shared-repeat"
	if failed := h.run(t, repeat); len(failed) != 0 {
		t.Errorf("copier C: failed %v, want its redundant message dropped", failed)
	}
	if n, err := h.env.OpenUploads(context.Background()); n != 1 || err != nil {
		t.Errorf("%d uploads open (%v): copier B must leave copier A's upload alone", n, err)
	}
	// A duplicate delivery is no failure: counted apart, never alarming.
	if got := h.metrics.String(); !strings.Contains(got, `"Outcome":"leased"`) || !strings.Contains(got, `"Outcome":"redundant"`) || strings.Contains(got, `"Outcome":"retried"`) {
		t.Errorf("metrics %s", got)
	}
	close(h.src.gate)
	if failed := <-a; len(failed) != 0 {
		t.Fatalf("copier A failed %v", failed)
	}
	h.assertStored(t, "shared", "/clip.mp4") // the bytes /gated.mp4 sends
	if failed := h.run(t, second); len(failed) != 0 {
		t.Errorf("copier B's redelivery failed %v", failed)
	}
	if evs := h.events(t); len(evs) != 1 || evs[0].Type != taskevent.Stored {
		t.Errorf("events %+v, want one Task Stored", evs)
	}
	h.assertNoOpenUploads(t)
}

func TestTheMessagesOfOneTaskFollowItsCopy(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "flaky", task.StatusQueued, "/img.png")
	h.seed(t, "fine", task.StatusQueued, "/song.mp3")
	h.src.failNext("/img.png", 1)
	m, twin := message("flaky"), message("flaky")
	twin.MessageId = "msg-flaky-2"
	failed := h.run(t, m, message("fine"), twin)
	slices.Sort(failed)
	if !slices.Equal(failed, []string{"msg-flaky", "msg-flaky-2"}) {
		t.Errorf("failed %v: both messages of the failed copy come back, its neighbour's does not", failed)
	}
}

func sentAt(m events.SQSMessage, at time.Time) events.SQSMessage {
	m.Attributes = map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": strconv.FormatInt(at.UnixMilli(), 10)}
	return m
}

// copyWhile runs a message of id, sent just now, while write, 300 ms
// later, does what its callback does to the record, and wants the task's
// one source, /img.png, stored.
func (h *harness) copyWhile(t *testing.T, id string, write func() error) {
	t.Helper()
	written := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		written <- write()
	}()
	if failed := h.run(t, sentAt(message(id), testNow)); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	h.assertStored(t, id, "/img.png")
}

func TestAMessageWithoutARecord(t *testing.T) {
	// The callback sends the message, then writes the record.
	t.Run("is copied when its record lands after the message is read", func(t *testing.T) {
		h := newHarness(t)
		h.copyWhile(t, "late", func() error {
			_, _, err := h.store.Create(context.Background(), h.task("late", task.StatusQueued, "/img.png"))
			return err
		})
	})
	t.Run("is dropped once no callback can write its record, and nothing is stored", func(t *testing.T) {
		h := newHarness(t)
		sent := testNow.Add(-task.AnswerBudget - recordGrace + 300*time.Millisecond)
		if failed := h.run(t, sentAt(message("orphan"), sent)); len(failed) != 0 {
			t.Fatalf("failed %v: the message would end in the dead-letter queue and raise its alarm", failed)
		}
		if keys := h.keys(t, "tasks/orphan"); len(keys) != 0 {
			t.Errorf("stored %v", keys)
		}
		if m := h.metrics.String(); !strings.Contains(m, `"Outcome":"unrecorded"`) {
			t.Errorf("metrics %s", m)
		}
	})
	for _, before := range []task.Status{task.StatusPending, task.StatusFailed} {
		t.Run("is copied when its callback moves a "+string(before)+" task to queued after the message is read", func(t *testing.T) {
			// Suno's final callback, after its progress ones made the
			// record pending; a success after a failure.
			h := newHarness(t)
			h.seed(t, "moving", before, "/img.png")
			h.copyWhile(t, "moving", func() error {
				success := task.Callback{TaskID: "moving", Code: 200, API: "veo", Sources: []string{h.url("/img.png")}}
				c, _, _ := task.Repeat(h.record(t, "moving"), success, testNow, time.Hour)
				_, err := h.store.Update(context.Background(), c)
				return err
			})
		})
	}
	t.Run("sent long ago is dropped at once", func(t *testing.T) {
		h := newHarness(t)
		start := time.Now()
		if failed := h.run(t, sentAt(message("old_orphan"), testNow.Add(-time.Minute))); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		if waited := time.Since(start); waited > task.AnswerBudget {
			t.Errorf("waited %v for a record no callback can write any more", waited)
		}
	})
}

func TestADeliveryRecordsItsReceiveCountAndReleasesItsLease(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "counted", task.StatusQueued, "/img.png")
	h.src.failNext("/img.png", 1)
	m := message("counted")
	m.Attributes = map[string]string{"ApproximateReceiveCount": "3"}
	if failed := h.run(t, m); len(failed) != 1 {
		t.Fatalf("failed %v", failed)
	}
	rec := h.record(t, "counted")
	if rec.Receives != 3 || rec.Lease.Owner != "" {
		t.Errorf("receives %d, lease %+v: a failed copy records its delivery and gives its lease back", rec.Receives, rec.Lease)
	}
	if failed := h.run(t, m); len(failed) != 0 {
		t.Fatalf("the retry failed %v", failed)
	}
	if rec := h.record(t, "counted"); rec.Status != task.StatusStored || rec.Lease.Owner != "" {
		t.Errorf("status %s, lease %+v", rec.Status, rec.Lease)
	}
}

func (h *harness) assertStored(tb testing.TB, id string, paths ...string) {
	tb.Helper()
	rec := h.record(tb, id)
	if rec.Status != task.StatusStored || len(rec.Objects) != len(paths) {
		tb.Fatalf("record %+v", rec)
	}
	if keys := h.keys(tb, "tasks/"+id+"/"); len(keys) != len(paths) {
		tb.Errorf("keys %v, want one per source", keys)
	}
	for i, p := range paths {
		obj := h.object(tb, rec.Objects[i].Key)
		if !bytes.Equal(obj.Body, files()[p]) || obj.Tags["sha256"] != sum(files()[p]) || rec.Objects[i].SHA256 != sum(files()[p]) {
			tb.Errorf("%s is not intact", rec.Objects[i].Key)
		}
	}
}

func TestOneBadRecordNeverFailsItsNeighbours(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "good1", task.StatusQueued, "/img.png")
	h.seed(t, "good2", task.StatusQueued, "/song.mp3")
	h.seed(t, "busy", task.StatusQueued, "/status/503")
	h.seed(t, "gone", task.StatusQueued, "/status/404")
	foreign := events.SQSMessage{MessageId: "msg-foreign", Body: "hello"}
	orphan := sentAt(message("no_such_task"), testNow.Add(-time.Minute)) // dropped
	failed := h.run(t, message("good1"), foreign, message("busy"), message("good2"), orphan, message("gone"))
	want := map[string]bool{"msg-foreign": true, "msg-busy": true}
	if len(failed) != len(want) {
		t.Errorf("failed %v, want exactly %v", failed, want)
	}
	for _, id := range failed {
		if !want[id] {
			t.Errorf("%s failed", id)
		}
	}
	for id, status := range map[string]task.Status{"good1": task.StatusStored, "good2": task.StatusStored, "busy": task.StatusQueued, "gone": task.StatusCopyFailed} {
		if rec := h.record(t, id); rec.Status != status {
			t.Errorf("%s is %s, want %s", id, rec.Status, status)
		}
	}
}

func TestTheLambdaDeadlineLeavesAMargin(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "slow", task.StatusQueued, "/stall.png")
	h.copier.Sources = download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, IdleTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), copyMargin+300*time.Millisecond)
	defer cancel()
	start := time.Now()
	resp, _ := h.handler.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{message("slow")}})
	if len(resp.BatchItemFailures) != 1 {
		t.Errorf("failures %v", resp.BatchItemFailures)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("took %v: the copy must stop %v before the deadline", elapsed, copyMargin)
	}
}

// leaseSeen keeps the lease a copier takes.
type leaseSeen struct {
	*dynamo.Store
	lease task.Lease
}

func (l *leaseSeen) Update(ctx context.Context, c task.Change) (task.Task, error) {
	if lease := c.Effect().Lease; lease != nil {
		l.lease = *lease
	}
	return l.Store.Update(ctx, c)
}

// updated is the error of an update whose record the test does not need.
func updated(_ task.Task, err error) error { return err }

func TestTheLeaseOutlastsTheInvocation(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "leased", task.StatusQueued, "/img.png")
	seen := &leaseSeen{Store: h.store}
	h.copier.Store = seen
	deadline := time.Now().Add(time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if resp, err := h.handler.Handle(ctx, events.SQSEvent{Records: []events.SQSMessage{message("leased")}}); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v, %v", resp.BatchItemFailures, err)
	}
	// The copier's clock is testNow: the lease ends that long after it.
	outlasts := seen.lease.Until.Sub(testNow) - time.Until(deadline)
	if outlasts < leaseMargin-time.Second {
		t.Errorf("the lease ends %v after Lambda's deadline, want %v: the holder's last writes would run unprotected", outlasts, leaseMargin)
	}
}

func TestATransientFailureEndsInTheDeadLetterQueue(t *testing.T) {
	env := emulators.New(t, emulators.Options{VisibilityTimeout: time.Second, MaxReceiveCount: 2})
	h := newHarnessOn(t, env)
	h.seed(t, "doomed", task.StatusQueued, "/status/503")
	h.seed(t, "fine", task.StatusQueued, "/img.png")
	q := queue.New(env.SQS, env.QueueURL)
	for _, id := range []string{"doomed", "fine"} {
		if err := q.Enqueue(context.Background(), id, 0); err != nil {
			t.Fatal(err)
		}
	}
	p := &esm.Poller{SQS: env.SQS, QueueURL: env.QueueURL, Invoke: h.handler.Handle}
	deadline := time.Now().Add(15 * time.Second)
	for emulators.QueueDepth(env.DLQName) == 0 && time.Now().Before(deadline) {
		if _, err := p.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if emulators.QueueDepth(env.DLQName) != 1 || emulators.QueueDepth(env.QueueName) != 0 {
		t.Fatalf("DLQ %d, queue %d", emulators.QueueDepth(env.DLQName), emulators.QueueDepth(env.QueueName))
	}
	if n := h.src.count("/status/503"); n != 2 {
		t.Errorf("tried %d times, want maxReceiveCount (2)", n)
	}
	if rec := h.record(t, "doomed"); rec.Status != task.StatusQueued {
		t.Errorf("doomed is %s: a task in the DLQ stays queued for redrive", rec.Status)
	}
	if rec := h.record(t, "fine"); rec.Status != task.StatusStored {
		t.Errorf("fine is %s", rec.Status)
	}
}

func TestEveryCopyIsCountedByOutcome(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "m_stored", task.StatusQueued, "/img.png", "/song.mp3")
	h.seed(t, "m_gone", task.StatusQueued, "/status/404")
	h.seed(t, "m_busy", task.StatusQueued, "/status/503")
	h.seed(t, "m_done", task.StatusStored, "/img.png")
	for _, id := range []string{"m_stored", "m_gone", "m_busy", "m_done"} {
		h.run(t, message(id))
	}
	type line struct {
		Outcome                          string
		Copies, BytesCopied, CopyLatency int64
		AWS                              *json.RawMessage `json:"_aws"`
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(h.metrics.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil || l.AWS == nil || l.Copies != 1 {
			t.Fatalf("line %q is not an EMF Copies count: %v", raw, err)
		}
		got = append(got, l)
	}
	if len(got) != 4 || got[0].Outcome != "stored" || got[1].Outcome != "copy_failed" || got[2].Outcome != "retried" || got[3].Outcome != "skipped" {
		t.Fatalf("outcomes %+v", got)
	}
	if want := int64(len(files()["/img.png"]) + len(files()["/song.mp3"])); got[0].BytesCopied != want || got[0].CopyLatency < 0 {
		t.Errorf("stored line %+v, want %d bytes", got[0], want)
	}
}

func TestVerifyingWithThePlatform(t *testing.T) {
	setup := func(t *testing.T) (*harness, *platform.API, *capture.Buffer) {
		h := newHarness(t)
		api := platform.ServeAPI("api-key")
		t.Cleanup(api.Close)
		logs := &capture.Buffer{}
		h.copier.Logger = slog.New(slog.NewJSONHandler(logs, nil))
		h.copier.Verifier = kieapi.New(api.URL, "api-key")
		return h, api, logs
	}
	t.Run("a task of an API with no record endpoint fails for good at once, saying why", func(t *testing.T) {
		h, _, _ := setup(t)
		rec := h.task("v_unknown", task.StatusQueued, "/img.png")
		rec.API = "unknown"
		if _, _, err := h.store.Create(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if failed := h.run(t, message("v_unknown")); len(failed) != 0 {
			t.Fatalf("failed %v: retrying until the dead-letter queue cannot help", failed)
		}
		if got := h.record(t, "v_unknown"); got.Status != task.StatusCopyFailed || !strings.Contains(got.Error, "no record endpoint") {
			t.Errorf("record %s %q", got.Status, got.Error)
		}
	})
	t.Run("URLs the platform reports are copied", func(t *testing.T) {
		h, api, _ := setup(t)
		h.seed(t, "v_ok", task.StatusQueued, "/img.png", "/song.mp3")
		api.Set("midjourney", "v_ok", platform.Success, h.url("/song.mp3"), h.url("/img.png")) // order does not matter
		if failed := h.run(t, message("v_ok")); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		h.assertStored(t, "v_ok", "/img.png", "/song.mp3")
	})
	for _, tt := range []struct {
		name  string
		state string
		urls  []string
	}{
		{"other URLs are refused", platform.Success, []string{"/img.jpg"}},
		{"one URL more than reported is refused", platform.Success, []string{"/img.png"}},
		{"a task the platform reports failed is refused", platform.Failure, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, api, logs := setup(t)
			h.seed(t, "v_bad", task.StatusQueued, "/img.png", "/song.mp3")
			if tt.state != "" {
				var urls []string
				for _, p := range tt.urls {
					urls = append(urls, h.url(p))
				}
				api.Set("midjourney", "v_bad", tt.state, urls...)
			}
			if failed := h.run(t, message("v_bad")); len(failed) != 0 {
				t.Fatalf("failed %v", failed)
			}
			if rec := h.record(t, "v_bad"); rec.Status != task.StatusCopyFailed || rec.Error != "result URLs not confirmed by the platform" {
				t.Errorf("record %s %q", rec.Status, rec.Error)
			}
			if n := h.src.count("/img.png") + h.src.count("/song.mp3"); n != 0 {
				t.Errorf("downloaded %d files of an unconfirmed task", n)
			}
			if !strings.Contains(logs.String(), `"security":true`) || !strings.Contains(logs.String(), "v_bad") {
				t.Errorf("no security event logged: %s", logs.String())
			}
		})
	}
	for _, tt := range []struct{ name, state string }{
		{"a task the platform still generates is retried, and copied once it reports it", platform.Generating},
		{"a task the platform does not know yet is retried, and copied once it reports it", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, api, _ := setup(t)
			h.seed(t, "v_early", task.StatusQueued, "/img.png")
			if tt.state != "" {
				api.Set("midjourney", "v_early", tt.state)
			}
			if failed := h.run(t, message("v_early")); len(failed) != 1 {
				t.Fatalf("failed %v: the message must come back", failed)
			}
			if rec := h.record(t, "v_early"); rec.Status != task.StatusQueued || h.src.count("/img.png") != 0 {
				t.Fatalf("status %s after %d downloads", rec.Status, h.src.count("/img.png"))
			}
			api.Set("midjourney", "v_early", platform.Success, h.url("/img.png"))
			if failed := h.run(t, message("v_early")); len(failed) != 0 {
				t.Fatalf("failed %v", failed)
			}
			h.assertStored(t, "v_early", "/img.png")
		})
	}
	t.Run("a rate-limited platform returns the message to the queue", func(t *testing.T) {
		h, api, _ := setup(t)
		h.seed(t, "v_wait", task.StatusQueued, "/img.png")
		api.RateLimit(true)
		if failed := h.run(t, message("v_wait")); len(failed) != 1 {
			t.Errorf("failed %v", failed)
		}
		if rec := h.record(t, "v_wait"); rec.Status != task.StatusQueued {
			t.Errorf("status %s", rec.Status)
		}
	})
}

func TestARedeliveryAbortsTheUploadsADeadCopierLeftOpen(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "dead", task.StatusQueued, "/img.png")
	// The copier that died had taken the lease, started a multipart upload
	// and recorded it; its lease has since expired.
	dead := task.Lease{Owner: "dead-copier", Until: testNow.Add(-time.Minute)}
	if err := updated(h.store.Update(context.Background(), task.TakeLease("dead", dead, 1, testNow.Add(-time.Hour)))); err != nil {
		t.Fatal(err)
	}
	key := "tasks/dead/0.mp4"
	started, err := h.env.S3.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: &h.env.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if err := updated(h.store.Update(context.Background(), task.RecordUpload("dead", dead.Owner, task.Upload{Key: key, ID: *started.UploadId}))); err != nil {
		t.Fatal(err)
	}
	if failed := h.run(t, message("dead")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	h.assertStored(t, "dead", "/img.png")
	h.assertNoOpenUploads(t)
	if rec := h.record(t, "dead"); len(rec.Uploads) != 0 {
		t.Errorf("uploads %v are still recorded", rec.Uploads)
	}
}

func TestTheSourcesOfATaskAreCopiedAtOnce(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "four", task.StatusQueued, "/stall.png", "/img.png", "/img.jpg", "/song.mp3")
	// /stall.png stalls: were the sources copied one by one, the others would
	// wait behind it; at once, they are all copied before it gives up.
	if failed := h.run(t, message("four")); len(failed) != 1 {
		t.Fatalf("failed %v, want the stalled task retried", failed)
	}
	for _, p := range []string{"/img.png", "/img.jpg", "/song.mp3"} {
		if n := h.src.count(p); n != 1 {
			t.Errorf("%s downloaded %d times, want once, beside the stalled source", p, n)
		}
	}
	t.Run("a permanent failure of one source wins over another's transient one: the task ends copy_failed", func(t *testing.T) {
		h := newHarness(t)
		h.seed(t, "perm4", task.StatusQueued, "/stall.png", "/status/404")
		if failed := h.run(t, message("perm4")); len(failed) != 0 {
			t.Fatalf("failed %v", failed)
		}
		if rec := h.record(t, "perm4"); rec.Status != task.StatusCopyFailed || !strings.Contains(rec.Error, "source 1") {
			t.Errorf("record %s %q", rec.Status, rec.Error)
		}
		h.assertNoOpenUploads(t)
	})
}

func TestEveryCopyOfABatchStartsAtOnce(t *testing.T) {
	// Each copy waits until every one of the batch has started: copies that
	// waited for a slot would never start, and fail at the deadline.
	const n = 4
	var started sync.WaitGroup
	started.Add(n)
	copyAll := func(ctx context.Context, _ string, _ Delivery) error {
		started.Done()
		done := make(chan struct{})
		go func() { started.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), copyMargin+2*time.Second)
	defer cancel()
	var batch events.SQSEvent
	for i := range n {
		batch.Records = append(batch.Records, message(fmt.Sprint("at_once_", i)))
	}
	resp, err := NewHandler(copyAll, slog.New(slog.DiscardHandler)).Handle(ctx, batch)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Errorf("failures %v, error %v: a copy waited for another", resp.BatchItemFailures, err)
	}
}

func TestObjectMetadataStaysWithinS3sLimit(t *testing.T) {
	h := newHarness(t)
	short := "/img.png"
	long := "/img.jpg?sig=" + strings.Repeat("a", 2048-len(h.url("/img.jpg?sig=")))
	h.seed(t, "meta", task.StatusQueued, short, long)
	if failed := h.run(t, message("meta")); len(failed) != 0 {
		t.Fatalf("failed %v", failed)
	}
	rec := h.record(t, "meta")
	if rec.Status != task.StatusStored || rec.Sources[1] != h.url(long) || len(rec.Sources[1]) != 2048 {
		t.Fatalf("record %+v", rec)
	}
	for i, o := range rec.Objects {
		meta := h.object(t, o.Key).Metadata
		size := 0
		for k, v := range meta {
			size += len(k) + len(v)
		}
		if size > 2048 {
			t.Errorf("object %d: %d bytes of user metadata, over S3's 2 KB", i, size)
		}
		if meta["task-id"] != "meta" {
			t.Errorf("object %d: metadata %v", i, meta)
		}
	}
	if got := h.object(t, rec.Objects[0].Key).Metadata["source-url"]; got != h.url(short) {
		t.Errorf("a short source URL is kept in the metadata, got %q", got)
	}
}

func TestALeaseNamesTheMessagesItCopiesFor(t *testing.T) {
	owner := leaseOwner([]string{"m1", "m2"})
	for _, tt := range []struct {
		name    string
		holder  string
		ids     []string
		carries bool
	}{
		{"a redelivery of one of the holder's messages is carried by it", owner, []string{"m2"}, true},
		{"another message of the task is not", owner, []string{"m3"}, false},
		{"a holder named by an earlier release carries every message", "3f2a9c0d1e4b5a6978c0d1e2", []string{"m3"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&leasedError{task: "t", holder: tt.holder}).carries(tt.ids); got != tt.carries {
				t.Errorf("holder %q carries %v: %v", tt.holder, tt.ids, got)
			}
		})
	}
}
