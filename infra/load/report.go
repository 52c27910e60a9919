package load

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/kiehook/kiehook/infra/forward"
)

// Report is what a load run did and found.
type Report struct {
	Options Options
	Tasks   int
	Planned struct{ Success, Failure, FailThenWin int }

	FirstDeliveries, Deliveries, Retries, GaveUp, FinalNon200 int
	DuplicatesAbsorbed                                        int

	Stored, FailedOK, CopyFailed, InDLQ, NeverAccepted, Objects int
	// StoredUnanswered are the tasks stored whose success the platform was
	// never answered 200 for: a refused callback wrote their record.
	StoredUnanswered                             int
	Lost, Corrupt, QueueLeft, DLQ, DLQUnexpected int
	// DeadLettersOfStored are the dead letters of stored tasks, with
	// Options.StoredDeadLetters.
	DeadLettersOfStored int
	BytesCopied         int64

	// Counted from the table, the copy queue and the bucket alone: records
	// short of final with no message on its way, objects no stored record
	// names, multipart uploads left open; records the reconciler gave up,
	// and records whose copy message it sent again.
	Stranded, UnnamedObjects, OpenUploads int
	CopiesGivenUp, Resent                 int

	Events, EventsMissing, EventsWrong, EventsForOpen, EventRepeats int
	// Forwarded are the details the forwarding endpoint took; missing are
	// ended tasks whose detail never reached it; refused are the calls it
	// answered 503 on purpose, which had to be retried.
	Forwarded, ForwardedMissing, ForwardedForOpen, ForwardRefused int
	forwarded                                                     *forward.Receiver

	SendSeconds, DrainSeconds, CopySeconds float64
	PeakRSS                                map[string]int64
	Faults                                 string
	Notes                                  []string

	latencies, toStored []time.Duration // each sorted once collected
}

// Problems are the audit's failures; a clean run has none.
func (r *Report) Problems() []string {
	var p []string
	for _, c := range []struct {
		n    int
		what string
	}{
		{r.Lost, "lost tasks"}, {r.Corrupt, "objects that differ from their source"},
		{r.QueueLeft, "messages left in the queue"}, {r.Stranded, "stranded tasks"},
		{r.UnnamedObjects, "objects no record names"}, {r.OpenUploads, "multipart uploads left open"},
		{r.DLQUnexpected, "dead-letter messages the scenario did not cause"},
		{r.EventsMissing, "ended tasks without their event"}, {r.EventsWrong, "events that do not describe their task"},
		{r.EventsForOpen, "events of tasks that have not ended"},
		{r.ForwardedMissing, "ended tasks whose event was never forwarded"}, {r.ForwardedForOpen, "forwarded events of tasks that have not ended"},
	} {
		if c.n != 0 {
			p = append(p, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	return p
}

// CallbacksPerSecond is the first deliveries over the send phase.
func (r *Report) CallbacksPerSecond() float64 { return float64(r.FirstDeliveries) / r.SendSeconds }

// Latency is the q-quantile of the platform's HTTP attempts.
func (r *Report) Latency(q float64) time.Duration { return quantile(r.latencies, q) }

// MaxLatency is the slowest answer the platform waited for.
func (r *Report) MaxLatency() time.Duration { return quantile(r.latencies, 1) }

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (r *Report) String() string {
	var b strings.Builder
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	fmt.Fprintf(&b, "kiehook load report\n")
	if r.Faults != "" {
		fmt.Fprintf(&b, "  faults           %s\n", r.Faults)
	}
	fmt.Fprintf(&b, "  tasks            %d (success %d, failure %d, failure then success %d)\n", r.Tasks, r.Planned.Success, r.Planned.Failure, r.Planned.FailThenWin)
	fmt.Fprintf(&b, "  deliveries       %d (%d first), HTTP attempts %d, retries %d, given up %d\n", r.Deliveries, r.FirstDeliveries, len(r.latencies), r.Retries, r.GaveUp)
	fmt.Fprintf(&b, "  outcome          stored %d, failed %d, copy_failed %d, in DLQ %d, never accepted %d (%d of them stored: their records were written)\n", r.Stored, r.FailedOK, r.CopyFailed, r.InDLQ, r.NeverAccepted, r.StoredUnanswered)
	fmt.Fprintf(&b, "  lost             %d\n", r.Lost)
	fmt.Fprintf(&b, "  duplicates       %d absorbed\n", r.DuplicatesAbsorbed)
	fmt.Fprintf(&b, "  audit            %d objects intact, %d corrupt, %d no record names, %d uploads open, %d left in queue, %d in DLQ (%d unexpected, %d of stored tasks)\n", r.Objects, r.Corrupt, r.UnnamedObjects, r.OpenUploads, r.QueueLeft, r.DLQ, r.DLQUnexpected, r.DeadLettersOfStored)
	fmt.Fprintf(&b, "  table            %d stranded; %d given up by the reconciler, %d sent again by it\n", r.Stranded, r.CopiesGivenUp, r.Resent)
	fmt.Fprintf(&b, "  task events      %d put, %d missing, %d wrong, %d of unended tasks, %d repeats (at least once)\n", r.Events, r.EventsMissing, r.EventsWrong, r.EventsForOpen, r.EventRepeats)
	if r.forwarded != nil {
		fmt.Fprintf(&b, "  forwarded        %d details taken by the endpoint, %d missing, %d of unended tasks; %d calls refused on purpose and retried\n", r.Forwarded, r.ForwardedMissing, r.ForwardedForOpen, r.ForwardRefused)
	}
	fmt.Fprintf(&b, "  throughput       %.0f callbacks/s; %.1f MB/s copied (%.0f MiB in %.0f s)\n", r.CallbacksPerSecond(), float64(r.BytesCopied)/1e6/math.Max(r.CopySeconds, 1), mib(r.BytesCopied), r.CopySeconds)
	fmt.Fprintf(&b, "  callback latency p50 %v, p95 %v, p99 %v, max %v\n", ms(r.Latency(0.5)), ms(r.Latency(0.95)), ms(r.Latency(0.99)), ms(r.MaxLatency()))
	fmt.Fprintf(&b, "  callback→stored  p50 %v, p99 %v (storedAt has 1 s resolution)\n", quantile(r.toStored, 0.5), quantile(r.toStored, 0.99))
	fmt.Fprintf(&b, "  peak RSS         callback %.0f MiB, copier %.0f MiB\n", mib(r.PeakRSS["CallbackFunction"]), mib(r.PeakRSS["CopierFunction"]))
	if p := r.Problems(); len(p) > 0 {
		fmt.Fprintf(&b, "  PROBLEMS         %s\n", strings.Join(p, "; "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "    %s\n", n)
	}
	return b.String()
}

func ms(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }

// WriteSVG draws the callback latency distribution: a histogram over
// logarithmic buckets from 1 ms to 16 s.
func (r *Report) WriteSVG(w io.Writer) error {
	title := fmt.Sprintf("Callback latency, %d HTTP attempts (p50 %v, p99 %v)", len(r.latencies), ms(r.Latency(0.5)), ms(r.Latency(0.99)))
	return histogram(w, title, "attempts", r.latencies, time.Millisecond, 16*time.Second)
}

// WriteStoredSVG draws the callback → stored latency distribution: from
// the first accepted callback to storedAt, over logarithmic buckets from
// 1 s (storedAt's resolution) to 64 min.
func (r *Report) WriteStoredSVG(w io.Writer) error {
	title := fmt.Sprintf("Callback to stored, %d tasks (p50 %v, p99 %v)", len(r.toStored), quantile(r.toStored, 0.5), quantile(r.toStored, 0.99))
	return histogram(w, title, "tasks", r.toStored, time.Second, 64*time.Minute)
}

// histogram draws samples in buckets doubling from first to last, the
// first bucket holding everything below first.
func histogram(w io.Writer, title, what string, samples []time.Duration, first, last time.Duration) error {
	const width, height, left, bottom = 720, 320, 60, 40
	edges := []time.Duration{0}
	for d := first; d <= last; d = d * 2 {
		edges = append(edges, d)
	}
	counts := make([]int, len(edges))
	for _, l := range samples {
		i := len(edges) - 1
		for i > 0 && l < edges[i] {
			i--
		}
		counts[i]++
	}
	peak := 1
	for _, c := range counts {
		peak = max(peak, c)
	}
	bar := float64(width-left-20) / float64(len(counts))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="18" font-size="14">%s</text>`+"\n", left, title)
	plot := float64(height - bottom - 40)
	for i, c := range counts {
		h := plot * float64(c) / float64(peak)
		x := float64(left) + float64(i)*bar
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3b6ea5"><title>%d</title></rect>`+"\n", x+1, float64(height-bottom)-h, bar-2, h, c)
		if i%2 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, height-bottom+14, label(edges[i]))
		}
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", left, height-bottom, width-20, height-bottom)
	fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">latency (bucket lower bound, log scale)</text>`+"\n", width/2, height-6)
	fmt.Fprintf(&b, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">%s (max %d)</text>`+"\n", height/2, height/2, what, peak)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func label(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// tableCounts are the four counts a fault under load must leave at 0.
func (r *Report) tableCounts() string {
	return fmt.Sprintf("lost %d, stranded %d, objects named by no record %d, open multipart uploads %d", r.Lost, r.Stranded, r.UnnamedObjects, r.OpenUploads)
}
