package submission

import "time"

// Verdict is what one answer of the platform's create call does to a
// submission.
type Verdict int

const (
	// Created: the platform made a task (code 200 with a task id).
	Created Verdict = iota
	// Retry: the call can pass later (429, 455, 500 and the other 5xx but
	// 505, or a failure before the request was written); it waits,
	// accepted, with backoff.
	Retry
	// Pause: the account has no credits (402); this and every later
	// submission of the account wait until the platform reports credits.
	Pause
	// Refused: the platform refused it for good (400, 401, 404, 422, 505,
	// and any other 4xx): submit_failed with its code and msg.
	Refused
	// Ambiguous: the request was written and no usable answer came; the
	// platform may have made the task, so it is never sent again.
	Ambiguous
)

// Answer is what came back of one create call.
type Answer struct {
	Written bool   // the whole request reached the connection
	Err     error  // no answer, or one that could not be read
	Code    int    // the body's code, else the HTTP status
	Msg     string // the platform's message
	TaskID  string // data.taskId
}

// Judge decides what an answer does.
func Judge(a Answer) Verdict {
	switch {
	case a.Err != nil && !a.Written:
		return Retry
	case a.Err != nil:
		return Ambiguous
	case a.Code == 200 && a.TaskID != "":
		return Created
	case a.Code == 200:
		return Ambiguous // a success that names no task cannot be linked but by its callback
	case a.Code == 402:
		return Pause
	case a.Code == 429 || a.Code == 455 || a.Code >= 500 && a.Code != 505:
		return Retry
	default:
		return Refused
	}
}

// Backoff is how long a submission waits before its next try after
// attempts tries: doubling from 2 s up to 5 minutes, half of it drawn by
// jitter (a random duration in [0, n), as rand.N gives) so that a crowd of
// retries spreads out; a 429 waits at least window.
func Backoff(attempts int, code int, window time.Duration, jitter func(n time.Duration) time.Duration) time.Duration {
	d := min(2*time.Second<<min(max(attempts-1, 0), 8), 5*time.Minute)
	d = d/2 + jitter(d/2+1)
	if code == 429 {
		d = max(d, window)
	}
	return d
}

// Credits is what kiehook knows of an account's credits: whether the
// platform answered 402 (PausedAt) and when its credit endpoint was last
// asked (CheckedAt).
type Credits struct {
	PausedAt  time.Time
	CheckedAt time.Time
}

// Paused reports whether PausedAt is set.
func (c Credits) Paused() bool { return !c.PausedAt.IsZero() }
