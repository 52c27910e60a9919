// Package faults puts a misbehaving proxy in front of a dependency: it
// answers some requests with an error or a throttling answer, delays some,
// drops some connections, or is down altogether for a while. The local
// stack places one before each emulator, so that the functions meet the
// failures AWS can serve them.
package faults

import (
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// Rates are the share of requests (0 to 1) that meet each fault.
type Rates struct {
	Error    float64       // a 500 the SDK retries
	Throttle float64       // the service's throttling answer
	Drop     float64       // the connection is closed without an answer
	Latency  float64       // the request is delayed by Delay first
	Delay    time.Duration // default 200 ms
	// Duplicate is the share of copy batches in which the event source
	// mapping hands one message over twice at once, as SQS's at-least-once
	// delivery may.
	Duplicate float64
}

// Uniform is the same rate for every fault, as -faults sets it.
func Uniform(rate float64) Rates {
	return Rates{Error: rate, Throttle: rate, Drop: rate, Latency: rate, Duplicate: rate}
}

// Service names the answers a proxy gives in its service's own dialect.
type Service int

const (
	DynamoDB Service = iota
	SQS
	S3
	EventBridge
)

// Proxy is one faulty proxy on loopback.
type Proxy struct {
	*httptest.Server
	service Service
	rates   atomic.Pointer[Rates]
	down    atomic.Bool
	rng     *rand.Rand
	mu      sync.Mutex

	Injected atomic.Int64 // faults served so far
}

// New starts a proxy to target for service.
func New(service Service, target string, rates Rates) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &Proxy{service: service, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	p.SetRates(rates)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	p.Server = httptest.NewServer(p.wrap(rp))
	return p, nil
}

// SetRates changes the fault rates from now on.
func (p *Proxy) SetRates(r Rates) {
	if r.Delay == 0 {
		r.Delay = 200 * time.Millisecond
	}
	p.rates.Store(&r)
}

// SetDown makes every request fail with a refused-like drop, until undone.
func (p *Proxy) SetDown(down bool) { p.down.Store(down) }

func (p *Proxy) roll(rate float64) bool {
	if rate <= 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64() < rate
}

func (p *Proxy) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rates := p.rates.Load()
		switch {
		case p.down.Load() || p.roll(rates.Drop):
			p.Injected.Add(1)
			drop(w)
			return
		case p.roll(rates.Error):
			p.Injected.Add(1)
			p.answer(w, false)
			return
		case p.roll(rates.Throttle):
			p.Injected.Add(1)
			p.answer(w, true)
			return
		case p.roll(rates.Latency):
			p.Injected.Add(1)
			time.Sleep(rates.Delay)
		}
		next.ServeHTTP(w, r)
	})
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			if tcp, ok := conn.(*net.TCPConn); ok {
				tcp.SetLinger(0)
			}
			conn.Close()
			return
		}
	}
	w.WriteHeader(http.StatusBadGateway)
}

// answer writes the service's own error or throttling answer, which the
// SDK classifies as retryable.
func (p *Proxy) answer(w http.ResponseWriter, throttle bool) {
	switch p.service {
	case DynamoDB:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if throttle {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected throttling"}`))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected fault"}`))
	case SQS:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		if throttle {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"com.amazonaws.sqs#ThrottlingException","message":"injected throttling"}`))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"__type":"com.amazonaws.sqs#InternalError","message":"injected fault"}`))
	case EventBridge:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if throttle {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"__type":"ThrottlingException","message":"injected throttling"}`))
			return
		}
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"__type":"InternalException","message":"injected fault"}`))
	default:
		w.Header().Set("Content-Type", "application/xml")
		code, status := "InternalError", http.StatusInternalServerError
		if throttle {
			code, status = "SlowDown", http.StatusServiceUnavailable
		}
		w.WriteHeader(status)
		w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>` + code + `</Code><Message>injected</Message></Error>`))
	}
}
