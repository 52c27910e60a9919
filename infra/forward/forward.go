// Package forward plays, outside AWS, what the template's NotifyUrl sets
// up in EventBridge: every task event's detail POSTed as JSON to an HTTPS
// endpoint of the user's, with the header that authenticates it, retried
// until it is taken. Receiver is such an endpoint, for tests and the load.
package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHeader is the template's NotifyHeaderName default.
const DefaultHeader = "X-Kiehook-Token"

// Target is where events go and how the calls are authenticated.
type Target struct {
	URL, Header, Value string
}

// Event is one event the bus took: its detail type and detail.
type Event struct {
	DetailType string
	Detail     json.RawMessage
}

// Forwarder sends each event's detail to its target, at least once: a call
// that fails, or is answered other than 2xx, is tried again with backoff
// (from 100 ms to 5 s) until it succeeds or the forwarder stops, as
// EventBridge's retry policy does for 24 hours.
type Forwarder struct {
	Target Target
	Client *http.Client

	Delivered, Retries atomic.Int64
	wg                 sync.WaitGroup
}

// Run forwards every event that next returns after the ones already seen,
// checking every 50 ms, until ctx ends. next returns all events so far.
func (f *Forwarder) Run(ctx context.Context, next func() []Event) {
	seen := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		events := next()
		for _, ev := range events[seen:] {
			f.wg.Go(func() { f.deliver(ctx, ev) })
		}
		seen = len(events)
		select {
		case <-ctx.Done():
			f.wg.Wait()
			return
		case <-tick.C:
		}
	}
}

func (f *Forwarder) deliver(ctx context.Context, ev Event) {
	wait := 100 * time.Millisecond
	for {
		if f.post(ctx, ev.Detail) == nil {
			f.Delivered.Add(1)
			return
		}
		f.Retries.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (f *Forwarder) post(ctx context.Context, detail []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.Target.URL, bytes.NewReader(detail))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(f.Target.Header, f.Target.Value)
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", f.Target.URL, resp.Status)
	}
	return nil
}

// Receiver is an application's endpoint for forwarded events: it checks
// the header, answers 503 to a share of the calls (to prove the retries),
// and keeps every detail it took.
type Receiver struct {
	*httptest.Server
	Target Target

	failRate float64
	calls    atomic.Int64
	mu       sync.Mutex
	details  []json.RawMessage
	Refused  atomic.Int64 // calls answered 503 on purpose
	Forged   atomic.Int64 // calls without the right header
}

// NewReceiver starts a receiver on loopback that fails failRate of calls.
func NewReceiver(failRate float64) *Receiver {
	r := &Receiver{failRate: failRate}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	r.Target = Target{URL: r.Server.URL + "/kiehook", Header: DefaultHeader, Value: fmt.Sprintf("local-%x", rand.Uint64())}
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get(r.Target.Header) != r.Target.Value {
		r.Forged.Add(1)
		http.Error(w, "who are you", http.StatusUnauthorized)
		return
	}
	if r.refuse() {
		r.Refused.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	body, err := io.ReadAll(req.Body)
	if err != nil || !json.Valid(body) {
		http.Error(w, "not JSON", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.details = append(r.details, body)
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// refuse reports whether this call is one of the failRate share answered
// 503. The share is spread evenly over the calls, not drawn at random: a
// random streak could refuse one event past any test's patience, while
// here, at a rate of at most a half, a call retried alone is never refused
// twice in a row.
func (r *Receiver) refuse() bool {
	n := float64(r.calls.Add(1))
	return math.Floor(n*r.failRate) > math.Floor((n-1)*r.failRate)
}

// Details are the details taken so far, in order.
func (r *Receiver) Details() []json.RawMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]json.RawMessage(nil), r.details...)
}
