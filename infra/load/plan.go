// Package load drives the local stack the way a busy platform would, then
// audits the outcome against what the platform was told: nothing lost,
// nothing stored twice, nothing stored that was never accepted.
package load

import (
	"fmt"
	"math/rand/v2"

	"github.com/kiehook/kiehook/infra/platform"
)

// Kind is what a task's scenario does.
type Kind int

const (
	Success     Kind = iota // one success callback
	Failure                 // one failure callback (400, 500 or 501)
	FailThenWin             // a failure, then later a success
)

// Task is one task of the scenario and what became of its deliveries.
type Task struct {
	ID       string
	API      string
	Kind     Kind
	Code     int      // the failure's code
	Files    []string // result file names on the source server, in order
	Dup      int      // 0 none, 1 a concurrent duplicate, 2 a late one
	Accepted bool     // some delivery of a success got 200
	Failed   bool     // some delivery of the failure got 200
	GaveUp   int      // deliveries the platform gave up on
}

// results are the kinds of file each API returns, in callback order.
var results = map[string][]string{
	"flux-kontext": {".jpg"},
	"4o-image":     {".png", ".png"},
	"midjourney":   {".png", ".png", ".png", ".png"},
	"veo":          {".mp4"},
	"runway":       {".mp4", ".png"},
	"runway-aleph": {".mp4", ".jpg"},
	"suno":         {".mp3", ".jpg", ".mp3", ".jpg"}, // two tracks: the first callback carries only one
	"market":       {".webp"},
}

// Plan makes a reproducible scenario of n tasks from seed.
func Plan(opts Options) []*Task {
	rng := rand.New(rand.NewPCG(opts.Seed, 1))
	tasks := make([]*Task, opts.Tasks)
	bigVideos := opts.BigVideos
	for i := range tasks {
		api := platform.APIs[i%len(platform.APIs)]
		t := &Task{ID: fmt.Sprintf("load-%d-%05d", opts.Seed, i), API: api}
		switch r := rng.Float64(); {
		case r < opts.Failures:
			t.Kind, t.Code = Failure, []int{400, 500, 501}[rng.IntN(3)]
		case r < opts.Failures+opts.FailThenWin:
			t.Kind, t.Code = FailThenWin, 500
		}
		if rng.Float64() < opts.Duplicates {
			t.Dup = 1 + rng.IntN(2)
		}
		for k, ext := range results[api] {
			size := fileSize(rng, ext, opts.MaxFile)
			if ext == ".mp4" && bigVideos > 0 && t.Kind != Failure {
				size, bigVideos = 100<<20+rng.Int64N(20<<20), bigVideos-1
			}
			t.Files = append(t.Files, fmt.Sprintf("%s-%d.%d%s", t.ID, k, size, ext))
		}
		tasks[i] = t
	}
	return tasks
}

// fileSize draws a realistic size: images mostly 100 KiB–1.5 MiB with a
// few up to 20 MiB, videos 1–20 MiB, songs 1–5 MiB; at most max.
func fileSize(rng *rand.Rand, ext string, max int64) int64 {
	var n int64
	switch ext {
	case ".mp4":
		n = 1<<20 + rng.Int64N(19<<20)
	case ".mp3":
		n = 1<<20 + rng.Int64N(4<<20)
	default:
		n = 100<<10 + rng.Int64N(1400<<10)
		if rng.Float64() < 0.03 {
			n = 2<<20 + rng.Int64N(18<<20)
		}
	}
	if max > 0 && n > max {
		n = max
	}
	return n
}
