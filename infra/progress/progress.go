// Package progress shows where a long command (a load, the scenarios, the
// demo, the stack's start-up) is: its phase, tasks sent, accepted and
// stored out of the total, copy throughput and an estimate of the time
// left. On a terminal it is one line redrawn about once a second
// (github.com/schollz/progressbar); elsewhere (CI, a pipe) a plain line
// every 10 s, so that logs stay readable.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Counts are where a run is; Total zero means the phase counts nothing.
// Ended tasks are stored, failed or copy_failed: the run is done when
// every task has ended.
type Counts struct {
	Total, Sent, Accepted, Stored, Ended int
	Bytes                                int64 // copied so far
}

// Progress reports a command's phases. Its methods are safe for
// concurrent use; a nil Progress reports nothing.
type Progress struct {
	out   io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex
	label   string // what runs, e.g. a scenario's name
	phase   string
	counts  func() Counts
	started time.Time // of the phase
	base    Counts    // at the phase's start, for its pace
	bar     *progressbar.ProgressBar
	stop    chan struct{}
	done    sync.WaitGroup
}

// New reports to out: redrawn in place when out is a terminal, else a
// line every 10 s (every, when not zero).
func New(out io.Writer, every time.Duration) *Progress {
	p := &Progress{out: out, every: every, now: time.Now, stop: make(chan struct{})}
	if f, ok := out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.tty = true
		p.every = time.Second
	} else if p.every == 0 {
		p.every = 10 * time.Second
	}
	p.done.Go(p.loop)
	return p
}

// Label names what the next phases belong to (a scenario), "" for none.
func (p *Progress) Label(label string) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label = label
}

// Phase starts a phase (building, starting, driving, draining the queue,
// auditing); counts, when not nil, says where it is at each report.
func (p *Progress) Phase(name string, counts func() Counts) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		// The finished phase keeps its line; the new one starts below.
		p.bar.Exit()
		fmt.Fprintln(p.out)
		p.bar = nil
	}
	p.phase, p.counts, p.started = name, counts, p.now()
	p.base = p.sample()
	if p.tty {
		p.redrawLocked()
	} else {
		fmt.Fprintln(p.out, p.lineLocked())
	}
}

// Stop ends the reports; on a terminal the last line is cleared.
func (p *Progress) Stop() {
	if p == nil {
		return
	}
	close(p.stop)
	p.done.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Exit()
		fmt.Fprintln(p.out)
	}
}

func (p *Progress) loop() {
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		if p.tty {
			p.redrawLocked()
		} else if p.phase != "" {
			fmt.Fprintln(p.out, p.lineLocked())
		}
		p.mu.Unlock()
	}
}

// redrawLocked draws the phase's line in place: tasks ended out of the
// total as a bar, with progressbar's own time left, or a spinner.
func (p *Progress) redrawLocked() {
	c := p.sample()
	if p.bar == nil {
		max := int64(c.Total)
		if max == 0 {
			max = -1 // a spinner
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(p.out),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(20),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			// The spinner turns on each report, not on a goroutine of its
			// own that would outlive the phase.
			progressbar.OptionSetSpinnerChangeInterval(0))
	}
	p.bar.Describe(p.describe(c))
	if c.Total > 0 {
		p.bar.Set(c.Ended)
	} else {
		p.bar.Add(1)
	}
}

// lineLocked is the plain report of the phase.
func (p *Progress) lineLocked() string {
	c := p.sample()
	line := p.describe(c)
	if left, ok := p.left(c); ok {
		line += fmt.Sprintf(", about %v left", left)
	}
	return line + fmt.Sprintf(" (%v in this phase)", p.now().Sub(p.started).Round(time.Second))
}

func (p *Progress) sample() Counts {
	if p.counts == nil {
		return Counts{}
	}
	return p.counts()
}

// describe is the phase with its counts and throughput.
func (p *Progress) describe(c Counts) string {
	s := p.phase
	if p.label != "" {
		s = p.label + ": " + s
	}
	if c.Total == 0 {
		return s + "…"
	}
	s += fmt.Sprintf(": sent %d/%d, accepted %d, stored %d, ended %d/%d", c.Sent, c.Total, c.Accepted, c.Stored, c.Ended, c.Total)
	if elapsed := p.now().Sub(p.started).Seconds(); c.Bytes > p.base.Bytes && elapsed >= 1 {
		s += fmt.Sprintf(", %.1f MB/s copied", float64(c.Bytes-p.base.Bytes)/elapsed/1e6)
	}
	return s
}

// left estimates the time for the rest to end at the phase's pace.
func (p *Progress) left(c Counts) (time.Duration, bool) {
	elapsed := p.now().Sub(p.started)
	done := c.Ended - p.base.Ended
	if c.Total == 0 || done <= 0 || c.Ended >= c.Total || elapsed < time.Second {
		return 0, false
	}
	perTask := elapsed / time.Duration(done)
	return (perTask * time.Duration(c.Total-c.Ended)).Round(time.Second), true
}
