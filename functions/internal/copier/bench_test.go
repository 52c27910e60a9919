package copier

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

// benchIDs names tasks uniquely across a benchmark's runs.
var benchIDs atomic.Int64

// streamSource serves an MP4-looking file of size bytes, generated on the
// fly so that the server holds none of it; with a pace (bytes per second),
// each download starts 20 ms late and flows no faster, as from a CDN.
func streamSource(tb testing.TB, size int64, pace float64) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(streamHandler(size, pace))
	tb.Cleanup(srv.Close)
	return srv
}

// streamHandler serves streamSource's file.
func streamHandler(size int64, pace float64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		chunk := media("\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", 256<<10)
		start := time.Now()
		if pace > 0 {
			start = start.Add(20 * time.Millisecond)
			time.Sleep(20 * time.Millisecond)
		}
		for sent := int64(0); sent < size; {
			n := min(int64(len(chunk)), size-sent)
			if _, err := w.Write(chunk[:n]); err != nil {
				return
			}
			sent += n
			if pace > 0 {
				time.Sleep(time.Until(start.Add(time.Duration(float64(sent) / pace * float64(time.Second)))))
			}
		}
	})
}

// BenchmarkCopy compares the copier with what a user would write instead:
// transfermanager.UploadObject, with its default options, fed by the same
// HTTP stream into the same S3 emulator (no checks, no hash, no tags, no
// record). The two alternate in every iteration so that both meet the same
// machine and emulator state. It reports each side's MB/s and the copier's
// share of the transfer manager's throughput.
func BenchmarkCopy(b *testing.B) {
	for _, c := range []struct {
		name string
		size int64
	}{{"4 MiB image", 4 << 20}, {"256 MiB video", 256 << 20}} {
		b.Run(c.name, func(b *testing.B) { benchmarkCopy(b, c.size) })
	}
}

func benchmarkCopy(b *testing.B, size int64) {
	env := emulators.New(b, emulators.Options{})
	src := streamSource(b, size, 0)
	h := newHarnessOn(b, env)
	h.copier.Sources = download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, MaxBytes: size})
	tm := transfermanager.New(env.S3)
	bareOnce := func() time.Duration {
		key := fmt.Sprint("bare/", benchIDs.Add(1))
		start := time.Now()
		resp, err := http.Get(src.URL + "/v.mp4")
		if err != nil {
			b.Fatal(err)
		}
		_, err = tm.UploadObject(context.Background(), &transfermanager.UploadObjectInput{Bucket: aws.String(env.Bucket), Key: aws.String(key), Body: resp.Body})
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		settle(b, env, key)
		return took
	}
	var copier, bare time.Duration
	b.SetBytes(2 * size)
	for i := range b.N {
		if i%2 == 0 {
			copier += h.timedCopy(b, src.URL+"/v.mp4")
			bare += bareOnce()
		} else {
			bare += bareOnce()
			copier += h.timedCopy(b, src.URL+"/v.mp4")
		}
	}
	mbps := func(d time.Duration) float64 { return float64(size) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbps(copier), "copier-MB/s")
	b.ReportMetric(mbps(bare), "transfermanager-MB/s")
	b.ReportMetric(100*bare.Seconds()/copier.Seconds(), "copier-%-of-transfermanager")
}

// timedCopy copies a new task of sources and returns how long it took; its
// objects are then deleted.
func (h *harness) timedCopy(b *testing.B, sources ...string) time.Duration {
	b.Helper()
	id := fmt.Sprint("bench_", benchIDs.Add(1))
	rec := task.Task{ID: id, Status: task.StatusQueued, Code: 200, Deliveries: 1, Sources: sources}
	if _, _, err := h.store.Create(context.Background(), rec); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := h.copier.Copy(context.Background(), id, Delivery{Receives: 1, SentAt: testNow}); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	got := h.record(b, id)
	if got.Status != task.StatusStored {
		b.Fatalf("record %+v", got)
	}
	for _, o := range got.Objects {
		settle(b, h.env, o.Key)
	}
	return took
}

// BenchmarkTaskOfFourImages copies a task of four 4 MiB images from a
// source that serves each download at a CDN's pace (25 MB/s, 20 ms to the
// first byte), and the same four images as four tasks of one, one after
// another. It reports the task's time as a share of the one-by-one time.
func BenchmarkTaskOfFourImages(b *testing.B) {
	h := newHarness(b)
	src := streamSource(b, 4<<20, 25e6)
	h.copier.Sources = download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true})
	urls := []string{src.URL + "/1.png", src.URL + "/2.png", src.URL + "/3.png", src.URL + "/4.png"}
	var together, oneByOne time.Duration
	for range b.N {
		together += h.timedCopy(b, urls...)
		for _, u := range urls {
			oneByOne += h.timedCopy(b, u)
		}
	}
	b.ReportMetric(together.Seconds()/float64(b.N)*1000, "task-ms")
	b.ReportMetric(oneByOne.Seconds()/float64(b.N)*1000, "one-by-one-ms")
	b.ReportMetric(100*together.Seconds()/oneByOne.Seconds(), "task-%-of-one-by-one")
}

// settle deletes a benchmark's object and collects garbage, so that every
// iteration of either side meets the same emulator heap.
func settle(tb testing.TB, env *emulators.Env, key string) {
	tb.Helper()
	if _, err := env.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &env.Bucket, Key: &key}); err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
}
