package stack_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/infra/emulators"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/stack"
)

// BenchmarkReader asks the local stack's reader for a stored task of two
// objects, one request at a time, as an application does, and reports the
// latency's median and 99th percentile: the Function URL front, the
// function under the Runtime Interface Emulator, a GetItem and two
// presigned links.
func BenchmarkReader(b *testing.B) {
	s := start(b)
	files := platform.ServeFiles()
	defer files.Close()
	client := &platform.Client{URL: s.CallbackURL, Key: s.Key, Retries: 1}
	body := []byte(`{"code":200,"msg":"success","data":{"taskId":"bench_read","info":{"resultUrls":["` + files.URL("a.png") + `","` + files.URL("b.jpg") + `"]}}}`)
	if d := client.Send(context.Background(), "bench_read", body); !d.OK() {
		b.Fatalf("callback: %d %s %v", d.Status, d.Body, d.Err)
	}
	waitFinished(b, s, 1)
	req, _ := http.NewRequest(http.MethodGet, s.ReaderURL+"/tasks/bench_read", nil)
	req.Header.Set("Authorization", "Bearer "+s.ReadToken)
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("reader answered %d", resp.StatusCode)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	b.ReportMetric(quantile(took, 0.5), "p50-ms")
	b.ReportMetric(quantile(took, 0.99), "p99-ms")
}

// quantile is the q-quantile of took, in milliseconds; it sorts took.
func quantile(took []time.Duration, q float64) float64 {
	slices.Sort(took)
	return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000
}

// BenchmarkCallback sends the success callback of a new task, signed and
// with the token, through the local Function URL front to the callback
// function under the Runtime Interface Emulator, on the in-process
// emulators, side by side with a hello-world handler (againstHello): the
// ratio of medians is the figure docs/benchmarks.md holds to at most 2.
// Copies are paused: only the answer's path runs.
func BenchmarkCallback(b *testing.B) {
	s := startBaseline(b, stack.Options{})
	s.PauseCopies()
	againstHello(b, s, http.StatusOK, func(i int) *http.Request {
		return newTaskCallback(s, fmt.Sprintf("bench_cb_%d_%d", b.N, i))
	})
}

// newTaskCallback is the success callback of a new task id, signed and
// with the token, as the platform sends it to the stack's front.
func newTaskCallback(s *stack.Stack, id string) *http.Request {
	body := platform.Body("midjourney", id, 200, []string{"http://127.0.0.1:1/a.png"})
	req, _ := http.NewRequest(http.MethodPost, s.CallbackURL, bytes.NewReader(body))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Webhook-Timestamp", ts)
	req.Header.Set("X-Webhook-Signature", platform.Sign(s.Key, id, ts))
	return req
}

// helloRequest is what the benchmarks send the hello-world handler.
func helloRequest(s *stack.Stack) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.BaselineURL, strings.NewReader(`{"code":200}`))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// BenchmarkSubmit posts a new submission, with its bearer token and a key
// of its own, to submit's local Function URL, side by side with a
// hello-world handler (againstHello): the ratio of medians is the figure
// docs/benchmarks.md holds to at most 2. The submitters are paused: only
// the answer's path runs (a GetItem, a conditional PutItem, a SendMessage).
func BenchmarkSubmit(b *testing.B) {
	s := startBaseline(b, stack.Options{Submissions: true})
	s.PauseSubmitters()
	againstHello(b, s, http.StatusAccepted, func(i int) *http.Request {
		body := `{"api":"veo","input":{"prompt":"waves at sunrise","model":"veo3_fast"},"labels":{"user":"7"}}`
		req, _ := http.NewRequest(http.MethodPost, s.SubmitURL+"/submissions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.SubmitToken)
		req.Header.Set("Idempotency-Key", fmt.Sprintf("bench-%d-%d", b.N, i))
		return req
	})
}

// startBaseline starts a stack with opts and the hello-world handler.
func startBaseline(b *testing.B, opts stack.Options) *stack.Stack {
	if testing.Short() {
		b.Skip("runs the stack")
	}
	opts.Addr, opts.Dir, opts.Binaries, opts.Baseline = "127.0.0.1:0", b.TempDir(), binaries, true
	s, err := stack.Start(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// againstHello times request(i), expecting status, each right after a
// request to a hello-world handler served the same way (infra/hello), so
// that both meet the same machine, and reports both medians, the
// request's 99th percentile, and the ratio of medians. Negative i are the
// warm-up's.
func againstHello(b *testing.B, s *stack.Stack, status int, request func(i int) *http.Request) {
	client := &http.Client{}
	do := func(req *http.Request, want int) time.Duration {
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			b.Fatalf("%s answered %d, want %d", req.URL.Host, resp.StatusCode, want)
		}
		return time.Since(start)
	}
	for i := range 20 { // warm sandboxes and connections
		do(helloRequest(s), http.StatusOK)
		do(request(-1-i), status)
	}
	took, hellos := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		h, r := helloRequest(s), request(i)
		b.StartTimer()
		hellos = append(hellos, do(h, http.StatusOK))
		took = append(took, do(r, status))
	}
	b.StopTimer()
	p50, hello50 := quantile(took, 0.5), quantile(hellos, 0.5)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(quantile(took, 0.99), "p99-ms")
	b.ReportMetric(hello50, "hello-p50-ms")
	b.ReportMetric(p50/hello50, "p50/hello")
	b.ReportMetric(quantile(took, 0.99)/quantile(hellos, 0.99), "p99/hello")
}

// BenchmarkColdStart starts the callback and the hello-world handler
// afresh, five times each, alternating, and reports the median time from
// the process's start to the first answer of each, and their ratio: a new
// task's callback against a plain answer. Run it with -benchtime 1x.
func BenchmarkColdStart(b *testing.B) {
	s := startBaseline(b, stack.Options{})
	s.PauseCopies()
	const starts = 5
	var calls, hellos []time.Duration
	for i := range starts * b.N {
		cb, hello := newTaskCallback(s, fmt.Sprintf("bench_cold_%d", i)), helloRequest(s)
		for _, run := range []struct {
			function string
			req      *http.Request
			took     *[]time.Duration
		}{{"HelloFunction", hello, &hellos}, {"CallbackFunction", cb, &calls}} {
			d, err := s.ColdStart(context.Background(), run.function, run.req)
			if err != nil {
				b.Fatal(err)
			}
			*run.took = append(*run.took, d)
		}
	}
	cold, helloCold := quantile(calls, 0.5), quantile(hellos, 0.5)
	b.ReportMetric(cold, "cold-ms")
	b.ReportMetric(helloCold, "hello-cold-ms")
	b.ReportMetric(cold/helloCold, "cold/hello")
}

// BenchmarkTimeToResult sends a new task's success callback through the
// local stack and times it to its Task Stored event on the bus: the answer,
// the copier's receipt of the message (polled every 2 ms, as AWS's long
// poll hands a message over at once; goaws's looks every 100 ms), and the
// event. After each task, in the same run, the floor: a plain program
// that downloads the same files from the same source and uploads them to
// the same S3, all at once, each with PutObject (the video with a default
// transfermanager.UploadObject). Run with -benchtime 100x (20x for the
// video): b.N tasks, one at a time.
func BenchmarkTimeToResult(b *testing.B) {
	for _, shape := range []struct {
		name, api string
		files     []string
	}{
		{"one 2 MiB image", "flux-kontext", []string{"image.2097152.png"}},
		{"four 4 MiB images", "midjourney", []string{"1.4194304.png", "2.4194304.png", "3.4194304.png", "4.4194304.png"}},
		{"one 64 MiB video", "veo", []string{"video.67108864.mp4"}},
	} {
		b.Run(shape.name, func(b *testing.B) {
			s := startBaseline(b, stack.Options{Poll: 2 * time.Millisecond, CopierBatchSize: 1, Emulators: emulators.Options{Timeline: true}})
			files := platform.ServeFiles()
			defer files.Close()
			client := &platform.Client{URL: s.CallbackURL, Key: s.Key, Retries: 1}
			tm := transfermanager.New(s.Env.S3)
			var total, answer, toCopier, fromCopier, floors, firstByte, lastPart, record []time.Duration
			seen := 0
			b.ResetTimer()
			for i := range b.N {
				id := fmt.Sprintf("ttr_%d_%d", b.N, i)
				var urls []string
				for _, f := range shape.files {
					urls = append(urls, files.URL(id+"-"+f))
				}
				start := time.Now()
				if d := client.Send(context.Background(), id, platform.Body(shape.api, id, 200, urls)); !d.OK() {
					b.Fatalf("callback: %d %s %v", d.Status, d.Body, d.Err)
				}
				answered := time.Now()
				var stored time.Time
				for stored.IsZero() {
					evs := s.Env.Events()
					for _, ev := range evs[seen:] {
						if ev.DetailType == "Task Stored" && bytes.Contains(ev.Detail, []byte(`"`+id+`"`)) {
							stored = ev.Received
						}
					}
					seen = len(evs)
					if stored.IsZero() {
						if time.Since(start) > time.Minute {
							b.Fatalf("%s not stored within a minute", id)
						}
						time.Sleep(200 * time.Microsecond)
					}
				}
				total = append(total, stored.Sub(start))
				answer = append(answer, answered.Sub(start))
				toCopier = append(toCopier, s.HandedAt(id).Sub(start))
				fromCopier = append(fromCopier, stored.Sub(s.HandedAt(id)))
				first, last, rec := stages(s, files, id, shape.files)
				firstByte, lastPart, record = append(firstByte, first.Sub(start)), append(lastPart, last.Sub(start)), append(record, rec.Sub(start))
				b.StopTimer()
				floors = append(floors, floor(b, s, tm, urls, strings.HasSuffix(shape.files[0], ".mp4")))
				b.StartTimer()
			}
			b.StopTimer()
			copier50, floor50 := quantile(fromCopier, 0.5), quantile(floors, 0.5)
			b.ReportMetric(quantile(total, 0.5), "p50-ms")
			b.ReportMetric(quantile(total, 0.99), "p99-ms")
			b.ReportMetric(quantile(answer, 0.5), "answer-p50-ms")
			b.ReportMetric(quantile(toCopier, 0.5), "to-copier-p50-ms")
			b.ReportMetric(copier50, "copier-p50-ms")
			b.ReportMetric(quantile(fromCopier, 0.99), "copier-p99-ms")
			b.ReportMetric(floor50, "floor-p50-ms")
			b.ReportMetric(copier50/floor50, "copier/floor")
			b.ReportMetric(copier50-floor50, "copier-floor-ms")
			// Where the time goes, in ms from the callback's first byte.
			b.ReportMetric(quantile(firstByte, 0.5), "first-byte-p50-ms")
			b.ReportMetric(quantile(lastPart, 0.5), "last-part-p50-ms")
			b.ReportMetric(quantile(record, 0.5), "record-p50-ms")
		})
	}
}

// stages are when task id's first result byte left the source, its last
// object's upload ended in S3, and its stored record was written: the
// first update of its item after that upload.
func stages(s *stack.Stack, files *platform.Files, id string, names []string) (first, last, record time.Time) {
	for _, n := range names {
		if at := files.FirstByte(id + "-" + n); !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	spans := s.Env.Timeline()
	prefix := s.Env.Bucket + "/tasks/" + id + "/"
	for _, sp := range spans {
		if sp.Service == "s3" && (sp.Op == http.MethodPut || sp.Op == http.MethodPost) && strings.HasPrefix(sp.Key, prefix) && sp.End.After(last) {
			last = sp.End
		}
	}
	for _, sp := range spans {
		if sp.Service == "dynamodb" && sp.Op == "UpdateItem" && sp.Key == id && !sp.Start.Before(last) {
			return first, last, sp.End
		}
	}
	return first, last, record
}

// floor downloads every URL and uploads it to the stack's bucket, all at
// once, as a user's plain program would, and returns how long it took.
func floor(b *testing.B, s *stack.Stack, tm *transfermanager.Client, urls []string, stream bool) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(urls))
	for i, u := range urls {
		wg.Go(func() {
			resp, err := http.Get(u)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			key := "floor/" + path.Base(u)
			if stream {
				_, errs[i] = tm.UploadObject(context.Background(), &transfermanager.UploadObjectInput{Bucket: aws.String(s.Env.Bucket), Key: aws.String(key), Body: resp.Body})
				return
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = s.Env.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(s.Env.Bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		})
	}
	wg.Wait()
	took := time.Since(start)
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	return took
}
