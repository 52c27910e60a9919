package download

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/retry"
)

// png is the start of a real PNG file, enough for the sniffer.
var png = append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), bytes.Repeat([]byte{7}, 4096)...)

// source is a TLS file server on loopback with a route per behaviour.
func source(tb testing.TB) (*httptest.Server, *Downloader) {
	tb.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/file.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Agent", r.UserAgent())
		w.Write(png)
	})
	mux.HandleFunc("/agent", func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.UserAgent(), "kiehook-copier/") {
			http.Error(w, "bots go away", http.StatusForbidden)
			return
		}
		w.Write(png)
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png") // lies: the bytes decide
		io.WriteString(w, "<!DOCTYPE html><html><body>expired</body></html>")
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.WriteHeader(code)
	})
	mux.HandleFunc("/big-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2000000")
		w.Write(png)
	})
	mux.HandleFunc("/big-streamed", func(w http.ResponseWriter, r *http.Request) {
		w.Write(png)
		for range 100 {
			w.Write(make([]byte, 32<<10))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/long.png", func(w http.ResponseWriter, r *http.Request) {
		w.Write(png)
		w.Write(make([]byte, 512<<10))
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Write(png)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(200)
		w.Write(png)
		w.(http.Flusher).Flush()
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.(*tls.Conn).NetConn().(*net.TCPConn).SetLinger(0)
		conn.Close()
	})
	// The source closes the connection halfway through a body whose
	// length it declared, or through a chunked body before its last chunk.
	mux.HandleFunc("/cut-declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(2*len(png)))
		w.Write(png)
		cutOff(w)
	})
	mux.HandleFunc("/cut-chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Write(png)
		cutOff(w)
	})
	mux.HandleFunc("/redirect/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		if n == 0 {
			http.Redirect(w, r, "/file.png", http.StatusFound)
			return
		}
		http.Redirect(w, r, "/redirect/"+strconv.Itoa(n-1), http.StatusFound)
	})
	mux.HandleFunc("/to", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("url"), http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	tb.Cleanup(srv.Close)
	d := New(Options{
		Hosts:       ParseHosts("127.0.0.1,*.example.com"),
		MaxBytes:    1 << 20,
		TLS:         srv.Client().Transport.(*http.Transport).TLSClientConfig,
		IdleTimeout: 300 * time.Millisecond,
	})
	// Let this one server through, as if it were a public host; every other
	// loopback address stays refused.
	port := netip.MustParseAddrPort(srv.Listener.Addr().String()).Port()
	d.allowAddr = func(ap netip.AddrPort) bool { return ap.Port() == port || PublicAddr(ap.Addr()) }
	return srv, d
}

// cutOff sends what w holds and closes the connection, as a source that
// goes away mid-body does.
func cutOff(w http.ResponseWriter) {
	w.(http.Flusher).Flush()
	conn, _, _ := w.(http.Hijacker).Hijack()
	conn.Close()
}

func readAll(tb testing.TB, d *Downloader, url string) (*Download, []byte, error) {
	tb.Helper()
	dl, err := d.Open(context.Background(), url)
	if err != nil {
		return nil, nil, err
	}
	defer dl.Close()
	b, err := io.ReadAll(dl)
	return dl, b, err
}

func TestOpenStreamsHashesAndSniffs(t *testing.T) {
	srv, d := source(t)
	for _, path := range []string{"/file.png", "/agent", "/redirect/4"} {
		t.Run(path+" arrives whole with its hash and type", func(t *testing.T) {
			dl, b, err := readAll(t, d, srv.URL+path)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(png)
			if !bytes.Equal(b, png) || dl.SHA256() != hex.EncodeToString(sum[:]) || dl.Bytes() != int64(len(png)) {
				t.Errorf("got %d bytes, sha %s", len(b), dl.SHA256())
			}
			if dl.ContentType != "image/png" || dl.Ext != ".png" {
				t.Errorf("type %s ext %s", dl.ContentType, dl.Ext)
			}
		})
	}
	t.Run("a proxy in the environment is ignored", func(t *testing.T) {
		t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
		t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
		if _, _, err := readAll(t, New(d.opts), "https://127.0.0.1:1/"); err == nil {
			t.Fatal("a loopback URL must be refused")
		}
		if _, _, err := readAll(t, d, srv.URL+"/file.png"); err != nil {
			t.Errorf("download went through the proxy: %v", err)
		}
	})
}

func TestASlowConsumerIsNotAStalledSource(t *testing.T) {
	srv, d := source(t)
	dl, err := d.Open(context.Background(), srv.URL+"/long.png")
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	buf := make([]byte, 32<<10)
	if _, err := dl.Read(buf); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * d.opts.IdleTimeout) // an upload applying back-pressure
	n, err := io.Copy(io.Discard, dl)
	if err != nil || dl.Bytes() != int64(len(png)+512<<10) {
		t.Errorf("read %d more bytes, %d in all, error %v", n, dl.Bytes(), err)
	}
}

func TestOpenRefuses(t *testing.T) {
	srv, d := source(t)
	other := httptest.NewTLSServer(http.NotFoundHandler())
	defer other.Close()
	to := func(target string) string { return srv.URL + "/to?url=" + url.QueryEscape(target) }
	tests := []struct {
		name, url string
		permanent bool
		message   string
	}{
		{"http:// is permanent", strings.Replace(srv.URL, "https", "http", 1) + "/file.png", true, "only https"},
		{"a URL with credentials is permanent", strings.Replace(srv.URL, "https://", "https://u:p@", 1) + "/file.png", true, "credentials"},
		{"a relative URL is permanent", "/file.png", true, "not an absolute URL"},
		{"a host outside SOURCE_HOSTS is permanent", strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/file.png", true, "not in SOURCE_HOSTS"},
		{"an allowed host on a loopback address is permanent", other.URL + "/file.png", true, "internal address"},
		{"a redirect to a loopback address is permanent", to(other.URL + "/x.png"), true, "internal address"},
		{"a redirect to the metadata service is permanent", to("https://169.254.169.254/latest/meta-data/"), true, "not in SOURCE_HOSTS"},
		{"a redirect to http is permanent", to(strings.Replace(srv.URL, "https", "http", 1) + "/file.png"), true, "only https"},
		{"a redirect to another host is permanent", to("https://evil.test/file.png"), true, "not in SOURCE_HOSTS"},
		{"six redirects are permanent", srv.URL + "/redirect/5", true, "more than 5 redirects"},
		{"404 is permanent", srv.URL + "/status/404", true, "404"},
		{"410 is permanent", srv.URL + "/status/410", true, "410"},
		{"403 is permanent", srv.URL + "/status/403", true, "403"},
		{"204 is permanent", srv.URL + "/status/204", true, "204"},
		{"an HTML page is permanent", srv.URL + "/page", true, "not an image, video or audio file"},
		{"a declared size over the limit is permanent", srv.URL + "/big-declared", true, "larger than MAX_OBJECT_BYTES"},
		{"a stream over the limit is permanent", srv.URL + "/big-streamed", true, "larger than MAX_OBJECT_BYTES"},
		{"503 is transient", srv.URL + "/status/503", false, "503"},
		{"500 is transient", srv.URL + "/status/500", false, "500"},
		{"408 is transient", srv.URL + "/status/408", false, "408"},
		{"429 is transient", srv.URL + "/status/429", false, "429"},
		{"a stalled source is transient", srv.URL + "/stall", false, "stalled"},
		{"a connection reset is transient", srv.URL + "/reset", false, "reading source"},
		{"a body cut short of its Content-Length is transient", srv.URL + "/cut-declared", false, "closed after"},
		{"a chunked body cut off is transient", srv.URL + "/cut-chunked", false, "closed after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll(t, d, tt.url)
			if err == nil {
				t.Fatal("want an error")
			}
			if got := retry.IsPermanent(err); got != tt.permanent {
				t.Errorf("permanent = %v for %v", got, err)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %q reads as an end of file: a consumer would store the file short", err)
			}
		})
	}
	t.Run("a deadline is transient", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		dl, err := d.Open(ctx, srv.URL+"/stall")
		if err == nil {
			_, err = io.ReadAll(dl)
			dl.Close()
		}
		if err == nil || retry.IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v, want a transient deadline", err)
		}
	})
}

func TestPublicAddr(t *testing.T) {
	tests := []struct {
		addr   string
		public bool
	}{
		{"93.184.216.34", true},
		{"2606:2800:220:1:248:1893:25c8:1946", true},
		{"127.0.0.1", false},
		{"127.8.9.10", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false},
		{"100.64.0.1", false},
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"224.0.0.1", false},
		{"255.255.255.255", false},
		{"198.18.0.1", false},
		{"192.88.99.1", false},
		{"3fff:1::1", false},
		{"3fff:fff:ffff::1", false},
		{"3fff:1000::1", true}, // past 3fff::/20
		{"::1", false},
		{"::", false},
		{"fe80::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"ff02::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:10.0.0.1", false},
		{"::127.0.0.1", false},
		{"64:ff9b::a9fe:a9fe", false},
		{"2002:a9fe:a9fe::1", false},
		{"2001:db8::1", false},
	}
	for _, tt := range tests {
		name := tt.addr + " is refused"
		if tt.public {
			name = tt.addr + " is public"
		}
		t.Run(name, func(t *testing.T) {
			if got := PublicAddr(netip.MustParseAddr(tt.addr)); got != tt.public {
				t.Errorf("PublicAddr(%s) = %v", tt.addr, got)
			}
		})
	}
}

func TestHostsAllows(t *testing.T) {
	hosts := ParseHosts(DefaultHosts + ", Files.Example.com. ,")
	tests := []struct {
		host string
		ok   bool
	}{
		{"tempfile.aiquickdraw.com", true},
		{"cdn.aiquickdraw.com", true},
		{"a.b.aiquickdraw.com", true},
		{"aiquickdraw.com", false},
		{"evilaiquickdraw.com", false},
		{"aiquickdraw.com.evil.net", false},
		{"TEMPFILE.AIQUICKDRAW.COM", true},
		{"tempfile.aiquickdraw.com.", true},
		{"x.kie.ai", true},
		{"kie.ai", false},
		{"files.example.com", true},
		{"other.example.com", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			if got := hosts.Allows(tt.host); got != tt.ok {
				t.Errorf("Allows(%q) = %v", tt.host, got)
			}
		})
	}
}

func TestSniff(t *testing.T) {
	tests := []struct {
		name, head, ct, ext string
	}{
		{"png", "\x89PNG\r\n\x1a\n", "image/png", ".png"},
		{"jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg", ".jpg"},
		{"gif", "GIF89a", "image/gif", ".gif"},
		{"webp", "RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp", ".webp"},
		{"mp4", "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", "video/mp4", ".mp4"},
		{"webm", "\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm", "video/webm", ".webm"},
		{"mp3 with ID3", "ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg", ".mp3"},
		{"mp3 frame without ID3", "\xff\xfb\x90\x64\x00\x00", "audio/mpeg", ".mp3"},
		{"wav", "RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wave", ".wav"},
		{"bmp keeps its type without an extension", "BM\x00\x00\x00\x00\x00\x00", "image/bmp", ""},
		{"html is not media", "<html><body>", "", ""},
		{"json is not media", `{"error":"expired"}`, "", ""},
		{"nothing is not media", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ct, ext := Sniff([]byte(tt.head))
			if ct != tt.ct || ext != tt.ext {
				t.Errorf("Sniff = %q %q, want %q %q", ct, ext, tt.ct, tt.ext)
			}
		})
	}
}

func TestErrRemembersWhyTheSourceFailed(t *testing.T) {
	srv, d := source(t)
	dl, err := d.Open(context.Background(), srv.URL+"/big-streamed")
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	if dl.Err() != nil {
		t.Fatalf("Err before any failure: %v", dl.Err())
	}
	io.Copy(io.Discard, dl)
	if !retry.IsPermanent(dl.Err()) || !strings.Contains(dl.Err().Error(), "MAX_OBJECT_BYTES") {
		t.Errorf("Err = %v, want the size limit", dl.Err())
	}
}

func TestABodyShorterThanItsDeclaredLengthIsNoEndOfFile(t *testing.T) {
	// A transport that reports a clean end before the declared length (a
	// proxy, an HTTP/2 stream reset read as END_STREAM) must not make a
	// short file look whole.
	d := New(Options{Hosts: ParseHosts("example.com")})
	ctx, cancel := context.WithCancelCause(context.Background())
	resp := &http.Response{StatusCode: 200, ContentLength: int64(2 * len(png)), Body: io.NopCloser(bytes.NewReader(png))}
	dl, err := d.start(ctx, resp, cancel)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	_, err = io.ReadAll(dl)
	if err == nil || retry.IsPermanent(err) || !strings.Contains(err.Error(), "ended after") {
		t.Errorf("error %v, want a transient short body", err)
	}
}

func TestSourcesAreReadOverHTTP1(t *testing.T) {
	// An HTTP/2 source would keep its whole receive window on the heap
	// for every file being copied, when S3 is slower than the source.
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
		w.Write(png)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	d := New(Options{Hosts: ParseHosts("127.0.0.1"), AllowPrivate: true, TLS: srv.Client().Transport.(*http.Transport).TLSClientConfig})
	if _, _, err := readAll(t, d, srv.URL+"/file.png"); err != nil {
		t.Fatal(err)
	}
	if got := proto.Load(); got != "HTTP/1.1" {
		t.Errorf("the source was read over %v, want HTTP/1.1", got)
	}
}
