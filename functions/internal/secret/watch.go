package secret

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// MinReload is the shortest gap between two reads that a request asked
// for, per sandbox: a flood of forged calls must not become a flood of
// Secrets Manager calls.
const MinReload = 30 * time.Second

// Watched is a secret's value, read again every refresh and, on demand,
// when a caller finds the value held out of date (a rotated key). A read
// that fails, or a value that apply refuses, keeps the value held: it is
// logged and never fails the caller.
type Watched struct {
	read    func(context.Context) (string, error)
	apply   func(string) error
	refresh time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu       sync.Mutex
	due      time.Time // when the value is read again
	reloaded time.Time // when a caller last asked for a read
}

// Watch reads the secret once, installs its value with apply, and returns
// the Watched that keeps it fresh. The first read must succeed: without a
// value the function cannot start.
func Watch(ctx context.Context, read func(context.Context) (string, error), apply func(string) error, refresh time.Duration, now func() time.Time, logger *slog.Logger) (*Watched, error) {
	w := &Watched{read: read, apply: apply, refresh: refresh, now: now, logger: logger}
	value, err := read(ctx)
	if err == nil {
		err = apply(value)
	}
	if err != nil {
		return nil, err
	}
	w.due = now().Add(refresh)
	return w, nil
}

// Refresh reads the secret again once the value held is older than the
// refresh interval. It is cheap when the value is fresh.
func (w *Watched) Refresh(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if now := w.now(); !now.Before(w.due) {
		w.load(ctx, now)
	}
}

// Reload reads the secret at once, unless a caller asked less than
// MinReload ago; it reports whether a new value was installed.
func (w *Watched) Reload(ctx context.Context) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if !w.reloaded.IsZero() && now.Sub(w.reloaded) < MinReload {
		return false
	}
	w.reloaded = now
	return w.load(ctx, now)
}

// load reads and installs the value. After a failure the next periodic
// read comes no later than MinReload, not on every call.
func (w *Watched) load(ctx context.Context, now time.Time) bool {
	value, err := w.read(ctx)
	if err == nil {
		err = w.apply(value)
	}
	if err != nil {
		w.due = now.Add(min(w.refresh, MinReload))
		w.logger.ErrorContext(ctx, "reading the secret again failed; the value held is kept", "error", err.Error())
		return false
	}
	w.due = now.Add(w.refresh)
	return true
}
