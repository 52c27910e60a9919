package secret

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// MinReload is the shortest gap between two reads that a request asked
// for, per sandbox: a flood of forged calls must not become a flood of
// Secrets Manager calls.
const MinReload = 30 * time.Second

// Watched is a secret's value, read again every refresh and, on demand,
// when a caller finds the value held out of date (a rotated key). A read
// that fails, or a value that apply refuses, keeps the value held: it is
// logged and never fails the caller. A nil Watched is a plain value, held
// for good: its methods do nothing and it is always ready.
type Watched struct {
	read    func(context.Context) (string, error)
	apply   func(string) error
	refresh time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu        sync.Mutex
	held      bool      // a value has been installed
	due       time.Time // when the value is read again
	reloaded  time.Time // when a caller last asked for a read
	refreshes sync.WaitGroup
	reading   bool // a periodic read is under way
}

// ReadTimeout bounds each read of the secret, whatever time the request
// that caused it has left: a slow Secrets Manager must not spend a
// callback's budget.
const ReadTimeout = 2 * time.Second

// startBackoff are the waits between the reads a cold start tries: a
// throttled or briefly unreachable Secrets Manager must not crash every
// new sandbox.
var startBackoff = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond}

// MinRetry is the shortest gap between two reads while no value is held.
const MinRetry = time.Second

// Watch reads the secret, trying again with backoff, installs its value
// with apply, and returns the Watched that keeps it fresh. When no read
// succeeds it logs why and returns all the same: Ready is false, and each
// Refresh tries again (at most every MinRetry) until a value is held, so
// that the function answers "unavailable" meanwhile rather than crash.
func Watch(ctx context.Context, read func(context.Context) (string, error), apply func(string) error, refresh time.Duration, now func() time.Time, logger *slog.Logger) *Watched {
	w := &Watched{read: read, apply: apply, refresh: refresh, now: now, logger: logger}
	for attempt := 0; !w.load(ctx, now()) && attempt < len(startBackoff); attempt++ {
		select {
		case <-time.After(startBackoff[attempt]):
		case <-ctx.Done():
			return w
		}
	}
	return w
}

// Ready reports whether a value is held.
func (w *Watched) Ready() bool {
	if w == nil {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held
}

// Refresh reads the secret again once the value held is older than the
// refresh interval: in the background while a value is held, so that the
// request goes on with it; at once while none is, since the request needs
// one. It is cheap when the value is fresh.
func (w *Watched) Refresh(ctx context.Context) {
	if w == nil {
		return
	}
	w.mu.Lock()
	now := w.now()
	if now.Before(w.due) || w.reading {
		w.mu.Unlock()
		return
	}
	held := w.held
	w.reading = true
	w.mu.Unlock()
	periodic := func(ctx context.Context) {
		w.load(ctx, now)
		w.mu.Lock()
		w.reading = false
		w.mu.Unlock()
	}
	if !held {
		periodic(ctx)
		return
	}
	w.refreshes.Go(func() { periodic(context.WithoutCancel(ctx)) })
}

// Reload reads the secret at once, unless a caller asked less than
// MinReload ago; it reports whether a new value was installed.
func (w *Watched) Reload(ctx context.Context) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	now := w.now()
	if !w.reloaded.IsZero() && now.Sub(w.reloaded) < MinReload {
		w.mu.Unlock()
		return false
	}
	w.reloaded = now
	w.mu.Unlock()
	return w.load(ctx, now)
}

// load reads the value, with no lock held and within ReadTimeout, and
// installs it. After a failure the next periodic read comes no later than
// MinReload (MinRetry while nothing is held), not on every call.
func (w *Watched) load(ctx context.Context, now time.Time) bool {
	readCtx, cancel := context.WithTimeout(ctx, ReadTimeout)
	value, err := w.read(readCtx)
	cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil {
		err = w.apply(value)
	}
	if err != nil {
		if w.held {
			w.due = now.Add(min(w.refresh, MinReload))
			w.logger.ErrorContext(ctx, "reading the secret again failed; the value held is kept", "error", err.Error())
		} else {
			w.due = now.Add(MinRetry)
			w.logger.ErrorContext(ctx, "the secret cannot be read: requests are answered unavailable until it can", "error", err.Error())
		}
		return false
	}
	w.held = true
	w.due = now.Add(w.refresh)
	return true
}

// Check runs check against the value w holds (nil: a plain value). A
// value from a secret is read again when old, and at once (at most every
// MinReload) when check finds that it matches nothing the caller sent
// (task.ErrNoMatch): the owner may have rotated it. While the secret
// cannot be read, the answer is task.EUNAVAILABLE, which callers retry,
// rather than a refusal.
func (w *Watched) Check(ctx context.Context, check func() error) error {
	w.Refresh(ctx)
	if !w.Ready() {
		return task.Errorf(task.EUNAVAILABLE, "credentials cannot be read yet; try again")
	}
	err := check()
	if errors.Is(err, task.ErrNoMatch) && w.Reload(ctx) {
		err = check()
	}
	return err
}
