package secret_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/secret"
)

// store is a secret whose value and failures a test sets, and whose reads
// it counts; hold, when set, keeps a read waiting until it is closed or
// the read's context ends.
type store struct {
	value string
	err   error
	reads int
	hold  chan struct{}
}

func (s *store) read(ctx context.Context) (string, error) {
	s.reads++
	if s.hold != nil {
		select {
		case <-s.hold:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return s.value, s.err
}

type watchHarness struct {
	store   *store
	now     time.Time
	applied []string
	logs    bytes.Buffer
	w       *secret.Watched
}

func newWatch(tb testing.TB, value string) *watchHarness {
	tb.Helper()
	h := &watchHarness{store: &store{value: value}, now: time.Unix(1764300000, 0)}
	apply := func(v string) error {
		if v == "" {
			return errors.New("no key")
		}
		h.applied = append(h.applied, v)
		return nil
	}
	h.w = secret.Watch(context.Background(), h.store.read, apply, 5*time.Minute, func() time.Time { return h.now }, slog.New(slog.NewTextHandler(&h.logs, nil)))
	if !h.w.Ready() {
		tb.Fatal("no value held")
	}
	return h
}

func TestWatchedReadsTheSecretAgain(t *testing.T) {
	ctx := context.Background()
	t.Run("the value is installed at once", func(t *testing.T) {
		h := newWatch(t, "k1")
		if h.store.reads != 1 || strings.Join(h.applied, ",") != "k1" {
			t.Errorf("reads %d, applied %v", h.store.reads, h.applied)
		}
	})
	t.Run("a fresh value is not read again", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.now = h.now.Add(5*time.Minute - time.Second)
		h.w.Refresh(ctx)
		if h.store.reads != 1 {
			t.Errorf("reads %d", h.store.reads)
		}
	})
	t.Run("a value older than the refresh interval is read again", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.value = "k1,k2"
		h.now = h.now.Add(5 * time.Minute)
		h.w.Refresh(ctx)
		h.w.Settle()
		if h.store.reads != 2 || strings.Join(h.applied, " ") != "k1 k1,k2" {
			t.Errorf("reads %d, applied %v", h.store.reads, h.applied)
		}
	})
	t.Run("a reload reads at once, then at most once every 30 s", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.value = "k2"
		if !h.w.Reload(ctx) {
			t.Error("the first reload installed nothing")
		}
		for range 100 { // a flood of forged calls
			h.now = h.now.Add(100 * time.Millisecond)
			if h.w.Reload(ctx) {
				t.Fatal("a reload within 30 s of the last read the secret")
			}
		}
		h.now = h.now.Add(secret.MinReload)
		if !h.w.Reload(ctx) || h.store.reads != 3 {
			t.Errorf("reads %d, want 3", h.store.reads)
		}
	})
	t.Run("a failed read keeps the value held, is logged, and is tried again within 30 s, not on every call", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.err = errors.New("secrets manager: throttled")
		h.now = h.now.Add(5 * time.Minute)
		h.w.Refresh(ctx)
		h.w.Settle()
		for range 10 {
			h.w.Refresh(ctx)
			h.w.Settle()
		}
		if h.store.reads != 2 || len(h.applied) != 1 {
			t.Errorf("reads %d, applied %v", h.store.reads, h.applied)
		}
		if !strings.Contains(h.logs.String(), "throttled") {
			t.Errorf("log %q", h.logs.String())
		}
		if h.w.Reload(ctx) {
			t.Error("a failed reload reported a new value")
		}
		h.store.err = nil
		h.store.value = "k2"
		h.now = h.now.Add(secret.MinReload)
		h.w.Refresh(ctx)
		h.w.Settle()
		if strings.Join(h.applied, " ") != "k1 k2" {
			t.Errorf("applied %v after the secret came back", h.applied)
		}
	})
	t.Run("a value that cannot be installed keeps the value held", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.value = ""
		if h.w.Reload(ctx) || len(h.applied) != 1 || !strings.Contains(h.logs.String(), "no key") {
			t.Errorf("applied %v, log %q", h.applied, h.logs.String())
		}
	})
	t.Run("a secret that cannot be read at start-up is tried again, then waited for", func(t *testing.T) {
		s := &store{err: errors.New("ThrottlingException")}
		var logs bytes.Buffer
		now := time.Unix(1764300000, 0)
		w := secret.Watch(ctx, s.read, func(string) error { return nil }, time.Minute, func() time.Time { return now }, slog.New(slog.NewTextHandler(&logs, nil)))
		if w.Ready() || s.reads < 3 || !strings.Contains(logs.String(), "ThrottlingException") {
			t.Fatalf("ready %v after %d reads, log %q: want a few reads with backoff, then a logged wait", w.Ready(), s.reads, logs.String())
		}
		reads := s.reads
		w.Refresh(ctx) // within MinRetry of the last read: no flood
		now = now.Add(secret.MinRetry)
		s.err, s.value = nil, "k1"
		w.Refresh(ctx)
		if !w.Ready() || s.reads != reads+1 {
			t.Errorf("ready %v after %d more reads, want the value once Secrets Manager answers", w.Ready(), s.reads-reads)
		}
	})
	t.Run("a periodic read runs in the background: the request goes on with the value held", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.value, h.store.hold = "k2", make(chan struct{})
		h.now = h.now.Add(5 * time.Minute)
		checked := make(chan error, 1)
		go func() { checked <- h.w.Check(ctx, func() error { return nil }) }()
		select {
		case err := <-checked:
			if err != nil {
				t.Errorf("check: %v", err)
			}
		case <-time.After(time.Second):
			t.Fatal("the request waited for Secrets Manager")
		}
		close(h.store.hold)
		h.w.Settle()
		if strings.Join(h.applied, " ") != "k1 k2" {
			t.Errorf("applied %v: the background read installs the new value", h.applied)
		}
	})
	t.Run("a read that hangs gives up after ReadTimeout, keeping the value held", func(t *testing.T) {
		h := newWatch(t, "k1")
		h.store.hold = make(chan struct{}) // never answers
		start := time.Now()
		if h.w.Reload(ctx) {
			t.Error("a hung read installed a value")
		}
		if took := time.Since(start); took > secret.ReadTimeout+time.Second {
			t.Errorf("the reload took %v: it must give up after %v", took, secret.ReadTimeout)
		}
		if !h.w.Ready() || len(h.applied) != 1 {
			t.Errorf("ready %v, applied %v", h.w.Ready(), h.applied)
		}
	})
}
