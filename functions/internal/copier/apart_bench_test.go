package copier

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/internal/download"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

// serverChildEnv makes the test binary BenchmarkCopyOnItsOwn's S3 and
// source, in a process of their own, serving a file of the size it holds.
const serverChildEnv = "KIEHOOK_COPIER_BENCH_SERVE"

func TestMain(m *testing.M) {
	if size := os.Getenv(serverChildEnv); size != "" {
		os.Exit(serveForBenchmark(size))
	}
	os.Exit(m.Run())
}

// serveForBenchmark starts an S3, the emulator or (for "null:<size>")
// nullS3, and a source of a file of size bytes, writes their addresses to
// stdout as JSON, and serves until stdin closes.
func serveForBenchmark(spec string) int {
	kind, size, _ := strings.Cut(spec, ":")
	n, err := strconv.ParseInt(size, 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	env, err := emulators.Start(context.Background(), emulators.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	s3URL := env.S3URL
	if kind == "null" {
		null := httptest.NewServer(newNullS3(n))
		defer null.Close()
		s3URL = null.URL
	}
	src := httptest.NewServer(streamHandler(n, 0))
	defer src.Close()
	json.NewEncoder(os.Stdout).Encode(map[string]string{"s3": s3URL, "bucket": env.Bucket, "source": src.URL + "/v.mp4"})
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// BenchmarkCopyOnItsOwn copies one 256 MiB video with the copier and with a
// default transfermanager.UploadObject of the same stream, alternating, b.N
// pairs, from a source and into an S3 that run in a process of their own,
// so that this process's CPU time is the uploaders' alone: the S3 emulator
// the tests use, and nullS3, which shows the uploaders' own ceiling. It
// reports the median and the lowest of the pairs' speed ratios (the
// transfer manager's time over the copier's: above 1, the copier is
// faster) and each side's CPU seconds per GiB, the copier's SHA-256
// included.
func BenchmarkCopyOnItsOwn(b *testing.B) {
	for _, s3 := range []string{"emulator", "null"} {
		b.Run(s3+" S3", func(b *testing.B) { copyOnItsOwn(b, s3) })
	}
}

func copyOnItsOwn(b *testing.B, kind string) {
	const size = 256 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serverChildEnv+"="+kind+":"+strconv.Itoa(size))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	var child struct{ S3, Bucket, Source string }
	if err := json.NewDecoder(stdout).Decode(&child); err != nil {
		b.Fatal(err)
	}
	client := s3.NewFromConfig(emulators.Config(), func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle = aws.String(child.S3), true
	})
	h := newHarnessOn(b, emulators.New(b, emulators.Options{})) // its DynamoDB keeps the records
	h.copier.Objects = objects.New(client, child.Bucket, testParts)
	h.copier.Sources = download.New(download.Options{Hosts: download.ParseHosts("127.0.0.1"), AllowPrivate: true, MaxBytes: size})
	tm := transfermanager.New(client)
	// Each side starts with its object gone and the heap collected, so
	// that neither pays for the other's garbage.
	del := func(key string) {
		if _, err := client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &child.Bucket, Key: &key}); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
	}
	copierOnce := func() (time.Duration, time.Duration) {
		id := fmt.Sprint("apart_", benchIDs.Add(1))
		rec := task.Task{ID: id, Status: task.StatusQueued, Code: 200, Deliveries: 1, Sources: []string{child.Source}}
		if _, _, err := h.store.Create(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
		cpu, start := cpuTime(), time.Now()
		if err := h.copier.Copy(context.Background(), id, Delivery{Receives: 1, SentAt: testNow}); err != nil {
			b.Fatal(err)
		}
		took, used := time.Since(start), cpuTime()-cpu
		got := h.record(b, id)
		if got.Status != task.StatusStored || len(got.Objects) != 1 || got.Objects[0].Bytes != size {
			b.Fatalf("record %+v", got)
		}
		del(got.Objects[0].Key)
		return took, used
	}
	managerOnce := func() (time.Duration, time.Duration) {
		key := fmt.Sprint("bare/", benchIDs.Add(1))
		cpu, start := cpuTime(), time.Now()
		resp, err := http.Get(child.Source)
		if err != nil {
			b.Fatal(err)
		}
		_, err = tm.UploadObject(context.Background(), &transfermanager.UploadObjectInput{Bucket: aws.String(child.Bucket), Key: aws.String(key), Body: resp.Body})
		resp.Body.Close()
		took, used := time.Since(start), cpuTime()-cpu
		if err != nil {
			b.Fatal(err)
		}
		del(key)
		return took, used
	}
	var ratios []float64
	var copierCPU, managerCPU time.Duration
	b.SetBytes(2 * size)
	for i := range b.N {
		var c, cc, m, mc time.Duration
		if i%2 == 0 {
			c, cc = copierOnce()
			m, mc = managerOnce()
		} else {
			m, mc = managerOnce()
			c, cc = copierOnce()
		}
		ratios = append(ratios, m.Seconds()/c.Seconds())
		copierCPU += cc
		managerCPU += mc
	}
	slices.Sort(ratios)
	gib := float64(size) * float64(b.N) / (1 << 30)
	b.ReportMetric(ratios[len(ratios)/2], "median-speed-ratio")
	b.ReportMetric(ratios[0], "lowest-speed-ratio")
	b.ReportMetric(copierCPU.Seconds()/gib, "copier-cpu-s/GiB")
	b.ReportMetric(managerCPU.Seconds()/gib, "transfermanager-cpu-s/GiB")
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
