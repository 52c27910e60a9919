package metrics_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/metrics"
)

func TestEmitWritesOneValidEMFLine(t *testing.T) {
	var buf bytes.Buffer
	w := metrics.New(&buf, `kiehook/my "stack"`, func() time.Time { return time.UnixMilli(1764300000123) })
	w.Emit("stored", metrics.Metric{Name: "Copies", Unit: metrics.Count, Value: 1}, metrics.Metric{Name: "BytesCopied", Unit: metrics.Bytes, Value: 4096})
	var line struct {
		AWS struct {
			Timestamp         int64
			CloudWatchMetrics []struct {
				Namespace  string
				Dimensions [][]string
				Metrics    []struct{ Name, Unit string }
			}
		} `json:"_aws"`
		Outcome     string
		Copies      int64
		BytesCopied int64
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, buf.String())
	}
	cw := line.AWS.CloudWatchMetrics
	if line.AWS.Timestamp != 1764300000123 || len(cw) != 1 || cw[0].Namespace != `kiehook/my "stack"` || len(cw[0].Metrics) != 2 || cw[0].Dimensions[0][0] != "Outcome" {
		t.Errorf("metadata %+v", line.AWS)
	}
	if line.Outcome != "stored" || line.Copies != 1 || line.BytesCopied != 4096 || cw[0].Metrics[1].Unit != "Bytes" {
		t.Errorf("values %+v", line)
	}
	if bytes.Count(buf.Bytes(), []byte("\n")) != 1 {
		t.Error("want exactly one line")
	}
}

func TestNothingToCountWritesNothing(t *testing.T) {
	var buf bytes.Buffer
	w := metrics.New(&buf, "kiehook", time.Now)
	w.Emit("reconciled", metrics.NonZero(metrics.Metric{Name: "StaleQueued", Unit: metrics.Count}, metrics.Metric{Name: "EventsSwept", Unit: metrics.Count})...)
	if buf.Len() != 0 {
		t.Errorf("an idle run wrote %s: every custom metric written costs by the hour", buf.String())
	}
	w.Emit("reconciled", metrics.NonZero(metrics.Metric{Name: "StaleQueued", Unit: metrics.Count}, metrics.Metric{Name: "EventsSwept", Unit: metrics.Count, Value: 2})...)
	if got := buf.String(); strings.Contains(got, "StaleQueued") || !strings.Contains(got, `"EventsSwept":2`) {
		t.Errorf("wrote %s, want EventsSwept alone", got)
	}
}

func ExampleWriter_Emit() {
	w := metrics.New(os.Stdout, "kiehook", func() time.Time { return time.UnixMilli(1764300000000) })
	w.Emit("accepted", metrics.Metric{Name: "Callbacks", Unit: metrics.Count, Value: 1})
	// Output: {"_aws":{"Timestamp":1764300000000,"CloudWatchMetrics":[{"Namespace":"kiehook","Dimensions":[["Outcome"]],"Metrics":[{"Name":"Callbacks","Unit":"Count"}]}]},"Outcome":"accepted","Callbacks":1}
}
