package load

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiehook/kiehook/infra/forward"
	"github.com/kiehook/kiehook/infra/platform"
	"github.com/kiehook/kiehook/infra/progress"
	"github.com/kiehook/kiehook/infra/stack"
)

// Options shape a load run.
type Options struct {
	Tasks       int           // default 2000
	Concurrency int           // deliveries in flight; default 32
	Duplicates  float64       // share of tasks delivered twice (half at once, half late)
	Failures    float64       // share of tasks that fail (400, 500, 501)
	FailThenWin float64       // share of tasks that fail, then succeed
	BigVideos   int           // videos of 100 MiB or more
	MaxFile     int64         // cap on every other file's size; 0 for none
	Backoff     time.Duration // the platform's wait between retries; default 1 s
	Pace        float64       // share of the platform's gaps between a task's callbacks (Suno's stages) to wait
	Wait        time.Duration // longest wait for the copies; default 15 min
	Seed        uint64
	// During, when set, runs from the first delivery until the copies have
	// settled (fault scenarios); its context ends then.
	// It may rotate the platform's webhook key through the client.
	During func(ctx context.Context, platform *platform.Client)
	// Forwarded, when set, is the endpoint the stack forwards the task
	// events to: the audit checks that each ended task's event reached it.
	Forwarded *forward.Receiver
	// Progress, when set, hears the run's phases and counts.
	Progress *progress.Progress
	// StoredDeadLetters says that a stored task may keep a dead letter: the
	// run's copies outlast the visibility timeout, or twins of a message
	// copy its task, so a message may use up its deliveries while its task
	// is stored.
	StoredDeadLetters bool
}

// Defaults fills the zero fields.
func (o *Options) Defaults() {
	if o.Tasks == 0 {
		o.Tasks = 2000
	}
	if o.Concurrency == 0 {
		o.Concurrency = 32
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.Wait == 0 {
		o.Wait = 15 * time.Minute
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().Unix())
	}
}

// delivery is one callback the platform must deliver.
type delivery struct {
	task *Task
	code int
}

// attempt is one HTTP request the platform made.
type attempt struct {
	latency time.Duration
	status  int
}

// Run plays opts against s, with the result files served by files, then
// audits the outcome.
func Run(ctx context.Context, s *stack.Stack, files *platform.Files, opts Options) (*Report, error) {
	opts.Defaults()
	tasks := Plan(opts)
	client := &platform.Client{URL: s.CallbackURL, Key: s.Key, Backoff: opts.Backoff, Pace: opts.Pace,
		HTTP: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: opts.Concurrency}}}
	rep := &Report{Options: opts, Tasks: len(tasks), forwarded: opts.Forwarded}

	var mu sync.Mutex
	var attempts []attempt
	var sent, accepted atomic.Int64
	firstOK := map[string]time.Time{}
	deliver := func(d delivery) {
		defer sent.Add(1)
		var urls []string
		for _, f := range d.task.Files {
			urls = append(urls, files.URL(f))
		}
		// Suno's progress callbacks go first; the last stage decides.
		stages := client.SendStages(ctx, d.task.ID, platform.Stages(d.task.API, d.task.ID, d.code, urls))
		mu.Lock()
		defer mu.Unlock()
		for _, res := range stages {
			for i, l := range res.Latency {
				status := 0
				if i == len(res.Latency)-1 {
					status = res.Status
				}
				attempts = append(attempts, attempt{latency: l, status: status})
			}
			rep.Deliveries++
			rep.Retries += res.Attempts - 1
			if !res.OK() {
				rep.GaveUp++
			}
		}
		res := stages[len(stages)-1]
		if !res.OK() {
			d.task.GaveUp++
			return
		}
		if strings.Contains(res.Body, `"duplicate"`) {
			rep.DuplicatesAbsorbed++
		}
		if d.code == 200 {
			d.task.Accepted = true
			if _, seen := firstOK[d.task.ID]; !seen {
				firstOK[d.task.ID] = time.Now()
				accepted.Add(1)
			}
		} else {
			d.task.Failed = true
		}
	}

	// First the deliveries of every task, concurrent duplicates side by
	// side; then the late ones: duplicates and successes after failures.
	var first, late [][]delivery
	for _, t := range tasks {
		d := delivery{task: t, code: 200}
		if t.Kind != Success {
			d.code = t.Code
		}
		batch := []delivery{d}
		if t.Dup == 1 {
			batch = append(batch, d)
		}
		first = append(first, batch)
		if t.Dup == 2 {
			late = append(late, []delivery{d})
		}
		if t.Kind == FailThenWin {
			late = append(late, []delivery{{task: t, code: 200}})
		}
	}
	duringCtx, stopDuring := context.WithCancel(ctx)
	var during sync.WaitGroup
	if opts.During != nil {
		during.Go(func() { opts.During(duringCtx, client) })
	}
	counts := func() progress.Counts {
		c := progress.Counts{Total: len(tasks), Sent: int(min(sent.Load(), int64(len(tasks)))), Accepted: int(accepted.Load())}
		records, err := s.Tasks(ctx)
		if err != nil {
			return c
		}
		for _, r := range records {
			if detailTypes[r.Status] != "" {
				c.Ended++
			}
			if r.Status == "stored" {
				c.Stored++
				for _, o := range r.Objects {
					c.Bytes += o.Bytes
				}
			}
		}
		return c
	}
	opts.Progress.Phase("driving", counts)
	start := time.Now()
	run(ctx, first, opts.Concurrency, deliver)
	rep.SendSeconds = time.Since(start).Seconds()
	rep.FirstDeliveries = len(first)
	run(ctx, late, opts.Concurrency, deliver)

	for _, a := range attempts {
		rep.latencies = append(rep.latencies, a.latency)
		if a.status != 0 && a.status != 200 {
			rep.FinalNon200++
		}
	}
	slices.Sort(rep.latencies)
	opts.Progress.Phase("draining the queue", counts)
	err := audit(ctx, s, tasks, firstOK, start, opts.Wait, rep)
	stopDuring()
	during.Wait()
	if err != nil {
		return rep, err
	}
	rep.PeakRSS = s.PeakRSS()
	return rep, nil
}

// run hands batches to n workers; the deliveries of one batch go at once.
func run(ctx context.Context, batches [][]delivery, n int, deliver func(delivery)) {
	work := make(chan []delivery)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for batch := range work {
				var inner sync.WaitGroup
				for _, d := range batch {
					inner.Go(func() { deliver(d) })
				}
				inner.Wait()
			}
		})
	}
	for _, b := range batches {
		select {
		case work <- b:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}
