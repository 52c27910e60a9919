// Package download fetches generated files from the platform's hosts safely:
// https only, allowlisted hosts only, never an internal address (checked on
// the address actually dialled, on every redirect hop), bounded in time and
// size, streamed and hashed on the way, its type sniffed from its bytes.
package download

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/kiehook/kiehook/functions/internal/retry"
	"github.com/kiehook/kiehook/functions/internal/task"
)

// Options configure a Downloader. Zero values take the defaults.
type Options struct {
	Hosts        Hosts
	AllowPrivate bool  // http:// and internal addresses, for local stacks and tests
	MaxBytes     int64 // largest file; default 256 MiB
	UserAgent    string
	TLS          *tls.Config // custom roots, for tests

	ConnectTimeout time.Duration // default 5 s
	HeaderTimeout  time.Duration // from request to response headers; default 15 s
	IdleTimeout    time.Duration // longest wait for the next byte; default 30 s
}

// MaxRedirects is how many redirects one download follows.
const MaxRedirects = 5

// Downloader opens downloads; it is safe for concurrent use.
type Downloader struct {
	client    *http.Client
	opts      Options
	allowAddr func(netip.AddrPort) bool
}

// New returns a Downloader with its own transport: no proxy from the
// environment, a dialer that refuses internal addresses.
func New(opts Options) *Downloader {
	if opts.MaxBytes == 0 {
		opts.MaxBytes = 256 << 20
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "kiehook-copier/1.0 (+https://github.com/kiehook/kiehook)"
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	if opts.HeaderTimeout == 0 {
		opts.HeaderTimeout = 15 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 30 * time.Second
	}
	d := &Downloader{opts: opts, allowAddr: func(ap netip.AddrPort) bool { return PublicAddr(ap.Addr()) }}
	if opts.AllowPrivate {
		d.allowAddr = func(netip.AddrPort) bool { return true }
	}
	dialer := &net.Dialer{
		Timeout: opts.ConnectTimeout,
		// Control sees the address after DNS resolution, right before the
		// connection is made: a name that resolves inside is refused here.
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !d.allowAddr(ap) {
				return &refusedAddr{address: address}
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       opts.TLS,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.HeaderTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		// HTTP/1.1 only, one connection a file: what a source sends ahead
		// of the copier's reads waits in the kernel's socket buffer, not on
		// the Go heap as an HTTP/2 receive window does, and no shared
		// window throttles a large file. (The release build also leaves
		// HTTP/2 out of net/http: functions/Makefile.)
		Protocols: http1Only(),
	}
	d.client = &http.Client{Transport: transport, CheckRedirect: d.checkRedirect}
	return d
}

func http1Only() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	return &p
}

type refusedAddr struct{ address string }

func (e *refusedAddr) Error() string { return "refused to dial internal address " + e.address }

func (d *Downloader) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return permanent("more than %d redirects", MaxRedirects)
	}
	return d.checkURL(req.URL)
}

func (d *Downloader) checkURL(u *url.URL) error {
	if u.Scheme != "https" && !(d.opts.AllowPrivate && u.Scheme == "http") {
		return permanent("refused URL scheme %q: only https is allowed", u.Scheme)
	}
	if u.User != nil {
		return permanent("refused URL with credentials")
	}
	if !d.opts.Hosts.Allows(u.Hostname()) {
		return permanent("refused host %q: not in SOURCE_HOSTS", u.Hostname())
	}
	return nil
}

func permanent(format string, args ...any) error {
	return retry.Permanentf(format, args...)
}

// Download is an open download: read it to the end, then Close it.
type Download struct {
	ContentType string // sniffed from the first bytes
	Ext         string // file extension for the content type, or ""

	body   io.ReadCloser
	reader io.Reader
	hash   hash.Hash
	n      int64
	max    int64
	length int64 // the length the source declared, -1 when it declared none
	idle   *time.Timer
	cancel context.CancelFunc
	cause  func() error
	err    error // the first error a read returned, other than io.EOF
}

// Open starts downloading rawURL and checks everything that can be known
// before the body: the URL, every hop, the status, the declared length and
// the sniffed type. Its errors are retry.PermanentError when a retry
// cannot help; any other error is transient.
func (d *Downloader) Open(ctx context.Context, rawURL string) (*Download, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, permanent("refused URL %.200q: not an absolute URL", rawURL)
	}
	if err := d.checkURL(u); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return nil, permanent("refused URL %.200q: %v", rawURL, err)
	}
	req.Header.Set("User-Agent", d.opts.UserAgent)
	req.Header.Set("Accept", "image/*, video/*, audio/*")
	resp, err := d.client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, classify(err)
	}
	dl, err := d.start(ctx, resp, cancel)
	if err != nil {
		resp.Body.Close()
		cancel(nil)
		return nil, err
	}
	return dl, nil
}

func (d *Downloader) start(ctx context.Context, resp *http.Response, cancel context.CancelCauseFunc) (*Download, error) {
	switch {
	case retry.RefusedForGood(resp.StatusCode):
		return nil, permanent("source answered %s", resp.Status)
	case resp.StatusCode >= 400:
		return nil, fmt.Errorf("source answered %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, permanent("source answered %s, not 200 OK", resp.Status)
	case resp.ContentLength > d.opts.MaxBytes:
		return nil, permanent("file of %d bytes is larger than MAX_OBJECT_BYTES (%d)", resp.ContentLength, d.opts.MaxBytes)
	}
	dl := &Download{
		body:   resp.Body,
		hash:   sha256.New(),
		max:    d.opts.MaxBytes,
		length: resp.ContentLength,
	}
	// A stalled source is cut off when one read waits IdleTimeout for a
	// byte. The watchdog runs only inside reads, so a slow consumer never
	// counts as a stall.
	stalled := errors.New("source stalled")
	dl.idle = time.AfterFunc(time.Hour, func() { cancel(stalled) })
	dl.idle.Stop()
	dl.cancel = func() { cancel(nil) }
	dl.cause = func() error { return context.Cause(ctx) }
	br := bufio.NewReaderSize(&idleReader{dl: dl, timeout: d.opts.IdleTimeout}, 64<<10)
	head, err := br.Peek(512)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, dl.readErr(err)
	}
	dl.ContentType, dl.Ext = Sniff(head)
	if dl.ContentType == "" {
		return nil, permanent("source is %s, not an image, video or audio file", http.DetectContentType(head))
	}
	dl.reader = io.TeeReader(br, dl.hash)
	return dl, nil
}

// idleReader counts bytes, enforces the size limit and arms the watchdog
// for each read.
type idleReader struct {
	dl      *Download
	timeout time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	n, err := r.read(p)
	if err != nil && err != io.EOF && r.dl.err == nil {
		r.dl.err = err
	}
	return n, err
}

func (r *idleReader) read(p []byte) (int, error) {
	r.dl.idle.Reset(r.timeout)
	n, err := r.dl.body.Read(p)
	r.dl.idle.Stop()
	if n > 0 {
		r.dl.n += int64(n)
		if r.dl.n > r.dl.max {
			return n, permanent("file is larger than MAX_OBJECT_BYTES (%d)", r.dl.max)
		}
	}
	if err == io.EOF && r.dl.cause() != nil {
		// A cancelled request may surface as a clean end of body; the
		// file is then truncated, whatever the transport says.
		return n, r.dl.readErr(r.dl.cause())
	}
	if err == io.EOF && r.dl.length >= 0 && r.dl.n != r.dl.length {
		// net/http checks this too (io.ErrUnexpectedEOF); a file stored
		// short is the one outcome that must never happen, so the copy
		// does not rest on one layer.
		return n, fmt.Errorf("reading source: it ended after %d of the %d bytes it declared", r.dl.n, r.dl.length)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) && r.dl.cause() == nil {
		// Not wrapped: a consumer must not take a cut-off body for its end.
		return n, fmt.Errorf("reading source: the connection closed after %d bytes, before the body ended (%v)", r.dl.n, err)
	}
	if err != nil && err != io.EOF {
		err = r.dl.readErr(err)
	}
	return n, err
}

// Read reads the file's bytes, hashing them on the way.
func (dl *Download) Read(p []byte) (int, error) { return dl.reader.Read(p) }

// Err is the first error reading the source returned, nil if none: what a
// consumer that failed while reading should report.
func (dl *Download) Err() error { return dl.err }

// Bytes is how many bytes have been read.
func (dl *Download) Bytes() int64 { return dl.n }

// Sum is the SHA-256 of the bytes read so far.
func (dl *Download) Sum() []byte { return dl.hash.Sum(nil) }

// SHA256 is Sum in hex.
func (dl *Download) SHA256() string { return hex.EncodeToString(dl.Sum()) }

// Close releases the connection.
func (dl *Download) Close() error {
	dl.idle.Stop()
	dl.cancel()
	return dl.body.Close()
}

// readErr explains a failed read: a stall or a reset is transient.
func (dl *Download) readErr(err error) error {
	var e *task.Error
	if errors.As(err, &e) {
		return err
	}
	if cause := dl.cause(); cause != nil && !errors.Is(cause, context.Canceled) {
		return fmt.Errorf("reading source: %w", cause)
	}
	return fmt.Errorf("reading source: %w", err)
}

// classify turns a failed request into a permanent or transient error.
func classify(err error) error {
	var e *task.Error
	if errors.As(err, &e) {
		return e
	}
	var refused *refusedAddr
	if errors.As(err, &refused) {
		return permanent("%s", refused.Error())
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return permanent("source host %q does not exist", dnsErr.Name)
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return permanent("source certificate is not trusted: %v", certErr.Err)
	}
	// Timeouts, resets and refused connections may pass.
	return fmt.Errorf("fetching source: %w", err)
}

// Sniff names the media type of a file from its first bytes, and its file
// extension; both are empty when it is not an image, video or audio file.
func Sniff(head []byte) (contentType, ext string) {
	ct := http.DetectContentType(head)
	if ct == "application/octet-stream" && mpegAudioFrame(head) {
		ct = "audio/mpeg"
	}
	ct, _, _ = strings.Cut(ct, ";")
	if !strings.HasPrefix(ct, "image/") && !strings.HasPrefix(ct, "video/") && !strings.HasPrefix(ct, "audio/") {
		return "", ""
	}
	return ct, extensions[ct]
}

// mpegAudioFrame recognises an MP3 without an ID3 tag by its frame sync,
// which the standard library's sniffer does not.
func mpegAudioFrame(b []byte) bool {
	return len(b) >= 4 && b[0] == 0xFF && b[1]&0xE0 == 0xE0 && b[1]&0x06 != 0 && b[2]&0xF0 != 0xF0
}

var extensions = map[string]string{
	"image/png":  ".png",
	"image/jpeg": ".jpg",
	"image/webp": ".webp",
	"image/gif":  ".gif",
	"video/mp4":  ".mp4",
	"video/webm": ".webm",
	"audio/mpeg": ".mp3",
	"audio/wave": ".wav",
}
