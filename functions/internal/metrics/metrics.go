// Package metrics writes CloudWatch Embedded Metric Format (EMF) lines: one
// JSON object per event on the function's stdout, which Lambda's log
// pipeline turns into CloudWatch metrics with no API call and no latency.
package metrics

import (
	"io"
	"strconv"
	"sync"
	"time"
)

// Units used by kiehook's metrics.
const (
	Count        = "Count"
	Bytes        = "Bytes"
	Milliseconds = "Milliseconds"
)

// Metric is one named value.
type Metric struct {
	Name  string
	Unit  string
	Value int64
}

// Writer emits EMF lines under one namespace, each with one dimension,
// Outcome. It is safe for concurrent use.
type Writer struct {
	mu        sync.Mutex
	w         io.Writer
	namespace string
	now       func() time.Time
	buf       []byte
}

// New returns a Writer to w.
func New(w io.Writer, namespace string, now func() time.Time) *Writer {
	return &Writer{w: w, namespace: namespace, now: now}
}

// Emit writes one line recording metrics for outcome, or nothing when
// there are none. Names, units and outcomes are kiehook's own constants
// and need no JSON escaping.
func (w *Writer) Emit(outcome string, metrics ...Metric) {
	if w == nil || len(metrics) == 0 {
		return // no metrics wanted, or nothing to count
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	b := append(w.buf[:0], `{"_aws":{"Timestamp":`...)
	b = strconv.AppendInt(b, w.now().UnixMilli(), 10)
	b = append(b, `,"CloudWatchMetrics":[{"Namespace":`...)
	b = strconv.AppendQuote(b, w.namespace)
	b = append(b, `,"Dimensions":[["Outcome"]],"Metrics":[`...)
	for i, m := range metrics {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Name":"`...)
		b = append(b, m.Name...)
		b = append(b, `","Unit":"`...)
		b = append(b, m.Unit...)
		b = append(b, `"}`...)
	}
	b = append(b, `]}]},"Outcome":"`...)
	b = append(b, outcome...)
	b = append(b, '"')
	for _, m := range metrics {
		b = append(b, `,"`...)
		b = append(b, m.Name...)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, m.Value, 10)
	}
	b = append(b, "}\n"...)
	w.buf = b
	w.w.Write(b)
}

// NonZero keeps the metrics that counted something. CloudWatch charges a
// custom metric for every hour it receives a value, zero or not, so counts
// that are usually zero are written only when they are not; the alarms on
// them treat missing data as not breaching.
func NonZero(metrics ...Metric) []Metric {
	var kept []Metric // never the caller's array, which a passed slice would share
	for _, m := range metrics {
		if m.Value != 0 {
			kept = append(kept, m)
		}
	}
	return kept
}
