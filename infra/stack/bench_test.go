package stack_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/platform"
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
	slices.Sort(took)
	ms := func(q float64) float64 { return float64(took[int(q*float64(len(took)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
