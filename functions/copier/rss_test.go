package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// The peak RSS benchmark stays with main: it measures the function as
// main builds it, memory plan and all. The throughput benchmarks are
// functions/internal/copier's.

// benchIDs names tasks uniquely across a benchmark's runs.
var benchIDs atomic.Int64

// BenchmarkCopyPeakRSS copies in a child process built from the real main
// wiring (this test binary, run again as TestCopyInChildProcess), and
// reports that process's peak RSS and the batch's time: one file of each
// size from one part to 256 MiB, and the worst batch, 4 tasks of 4
// sources of 24 MiB each into an S3 that takes 48 MiB/s in all, slower
// than the sources, at the template's memory size and at half of it. The
// emulators stay in this process, so the figure is the copier's alone.
func BenchmarkCopyPeakRSS(b *testing.B) {
	for _, size := range []int64{4 << 20, 16 << 20, 64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%d MiB", size>>20), func(b *testing.B) { benchmarkPeakRSS(b, 1, 1, size, 0, 256) })
	}
	for _, memoryMB := range []int{256, 512} {
		b.Run(fmt.Sprintf("4 tasks x 4 sources x 24 MiB, S3 at 48 MiB per s, %d MB", memoryMB), func(b *testing.B) {
			benchmarkPeakRSS(b, 4, 4, 24<<20, 48<<20, memoryMB)
		})
	}
}

// throttledS3 is a proxy before target that takes request bodies at most
// at rate bytes a second, every upload together, as a busy S3 or a full
// network link does.
func throttledS3(tb testing.TB, target string, rate float64) string {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	var mu sync.Mutex
	var next time.Time
	pace := func(n int) {
		mu.Lock()
		next = later(next, time.Now()).Add(time.Duration(float64(n) / rate * float64(time.Second)))
		wait := time.Until(next)
		mu.Unlock()
		time.Sleep(wait)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = pacedBody{r.Body, pace}
		proxy.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

type pacedBody struct {
	io.ReadCloser
	pace func(n int)
}

func (p pacedBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b[:min(len(b), 64<<10)])
	p.pace(n)
	return n, err
}

func benchmarkPeakRSS(b *testing.B, tasks, sources int, size int64, s3Rate float64, memoryMB int) {
	s := newStage(b)
	src := serveMP4(b, size)
	vars := s.env.Vars()
	if s3Rate > 0 {
		vars["AWS_ENDPOINT_URL_S3"] = throttledS3(b, s.env.S3URL, s3Rate)
	}
	for range b.N {
		var ids []string
		for range tasks {
			id := fmt.Sprint("rss_", benchIDs.Add(1))
			rec := task.Task{ID: id, Status: task.StatusQueued, Code: 200, Deliveries: 1}
			for i := range sources {
				rec.Sources = append(rec.Sources, fmt.Sprintf("%s/%d.mp4", src.URL, i))
			}
			s.store.Create(context.Background(), rec)
			ids = append(ids, id)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCopyInChildProcess$", "-test.v")
		cmd.Env = append(os.Environ(), "KIEHOOK_COPY_CHILD="+strings.Join(ids, ","), "ALLOW_PRIVATE_SOURCES=true", "SOURCE_HOSTS=127.0.0.1",
			"MAX_OBJECT_BYTES="+fmt.Sprint(size), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+fmt.Sprint(memoryMB))
		for k, v := range vars {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		took := time.Since(start)
		kib := peakRSS(b, out)
		b.ReportMetric(float64(kib)/1024, "peak-RSS-MiB")
		b.ReportMetric(100*float64(kib)/1024/float64(memoryMB), "%-of-MemorySize")
		b.ReportMetric(took.Seconds(), "s")
		b.ReportMetric(took.Seconds()*float64(memoryMB)/1024, "GB-s")
		for _, id := range ids {
			if got := s.record(b, id); got.Status != task.StatusStored || len(got.Objects) != sources || got.Objects[0].Bytes != size {
				b.Fatalf("record %+v", got)
			}
		}
	}
}

func peakRSS(tb testing.TB, out []byte) int64 {
	tb.Helper()
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "peak-rss-kib "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatalf("child reported no peak RSS:\n%s", out)
	return 0
}

// TestCopyInChildProcess is BenchmarkCopyPeakRSS's child: it copies the
// tasks KIEHOOK_COPY_CHILD names, as one batch. It does nothing in an
// ordinary test run.
func TestCopyInChildProcess(t *testing.T) {
	ids := os.Getenv("KIEHOOK_COPY_CHILD")
	if ids == "" {
		t.Skip("runs only as BenchmarkCopyPeakRSS's child process")
	}
	h, err := build(context.Background(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var batch events.SQSEvent
	for _, id := range strings.Split(ids, ",") {
		batch.Records = append(batch.Records, message(id))
	}
	resp, _ := h.Handle(context.Background(), batch)
	if len(resp.BatchItemFailures) != 0 {
		t.Fatal("copy failed")
	}
	// VmHWM belongs to this process's own memory map; getrusage's maxrss
	// would carry the parent's high-water mark across fork and exec.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			fmt.Printf("peak-rss-kib %s\n", strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}

	}
}
