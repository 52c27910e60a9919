package platform

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiehook/kiehook/infra/faults"
)

// magic are the first bytes of each kind of file the platform generates.
var magic = map[string]string{
	".png":  "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
	".jpg":  "\xff\xd8\xff\xe0\x00\x10JFIF\x00",
	".webp": "RIFF\x00\x00\x00\x00WEBPVP8 ",
	".mp4":  "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
	".mp3":  "ID3\x04\x00\x00\x00\x00\x00\x00",
}

// DefaultSizes are the file sizes the source serves when a path does not
// name one.
var DefaultSizes = map[string]int64{".png": 300 << 10, ".jpg": 200 << 10, ".webp": 150 << 10, ".mp4": 3 << 20, ".mp3": 1 << 20}

// Files serves generated-looking results: GET /<name>.<ext> returns a file
// of that kind, and /<name>.<size>.<ext> one of size bytes, whose content
// is a pure function of the path, generated as it streams.
type Files struct {
	*httptest.Server
	faults atomic.Uint64 // math.Float64bits of the fault rate

	mu        sync.Mutex
	rng       *rand.Rand
	Injected  atomic.Int64
	firstByte sync.Map // path → when its body first began to be sent
}

// ServeFiles starts a file server on a free loopback port.
func ServeFiles() *Files {
	f, _ := ServeFilesAt("")
	return f
}

// ServeFilesAt starts a file server at addr, a loopback address; empty
// picks a free port.
func ServeFilesAt(addr string) (*Files, error) {
	f := &Files{rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))}
	var err error
	if f.Server, err = startAt(addr, "file server", http.HandlerFunc(f.serve)); err != nil {
		return nil, err
	}
	return f, nil
}

// startAt serves h at addr, a loopback address; empty picks a free port.
func startAt(addr, what string, h http.Handler) (*httptest.Server, error) {
	srv := httptest.NewUnstartedServer(h)
	if addr != "" {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("%s %q: loopback addresses only", what, addr)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	return srv, nil
}

// SetFaults makes each of five faults hit this share of downloads: a 503,
// a connection reset mid-body, a 2 s stall mid-body, and the connection
// closed halfway through the body, with its Content-Length declared or
// chunked.
func (f *Files) SetFaults(rate float64) { f.faults.Store(math.Float64bits(rate)) }

func (f *Files) roll() bool {
	rate := math.Float64frombits(f.faults.Load())
	if rate == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < rate {
		f.Injected.Add(1)
		return true
	}
	return false
}

func (f *Files) serve(w http.ResponseWriter, r *http.Request) {
	if f.roll() {
		http.Error(w, "injected", http.StatusServiceUnavailable)
		return
	}
	size, ext, ok := parseName(r.URL.Path)
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return
	}
	body := io.LimitReader(newGenerator(ext, r.URL.Path), size)
	f.firstByte.LoadOrStore(r.URL.Path, time.Now())
	half := size / 2
	switch {
	case f.roll(): // reset mid-body
		io.CopyN(w, body, half)
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
		}
		return
	case f.roll(): // stall mid-body
		io.CopyN(w, body, half)
		w.(http.Flusher).Flush()
		time.Sleep(2 * time.Second)
	case f.roll():
		faults.CutOff(w, body, size, false)
		return
	case f.roll():
		faults.CutOff(w, body, size, true)
		return
	}
	io.Copy(w, body)
}

// FirstByte is when the body of the file named name first began to be
// sent; zero if it never was.
func (f *Files) FirstByte(name string) time.Time {
	at, _ := f.firstByte.Load("/" + name)
	t, _ := at.(time.Time)
	return t
}

// URL is the address of a file named name (for example "kite.png" or
// "clip.4194304.mp4").
func (f *Files) URL(name string) string { return f.Server.URL + "/" + name }

func parseName(p string) (size int64, ext string, ok bool) {
	ext = path.Ext(p)
	if _, known := magic[ext]; !known {
		return 0, "", false
	}
	size = DefaultSizes[ext]
	if mid := path.Ext(strings.TrimSuffix(p, ext)); mid != "" {
		n, err := strconv.ParseInt(mid[1:], 10, 64)
		if err == nil && n >= int64(len(magic[ext])) {
			size = n
		}
	}
	return size, ext, true
}

func seed(p string) uint64 {
	h := fnv.New64a()
	io.WriteString(h, p)
	return h.Sum64()
}

// generator yields the magic bytes, then a pseudo-random (xorshift)
// stream, eight bytes at a time.
type generator struct {
	head string
	seed uint64
	buf  [8]byte
	off  int // unread bytes start at buf[off]; 8 means empty
	n    int
}

func newGenerator(ext, urlPath string) *generator {
	return &generator{head: magic[ext], seed: seed(urlPath), off: 8}
}

func (g *generator) Read(p []byte) (int, error) {
	i := 0
	for ; i < len(p) && g.n < len(g.head); i++ {
		p[i] = g.head[g.n]
		g.n++
	}
	for i < len(p) {
		if g.off == 8 {
			g.seed ^= g.seed << 13
			g.seed ^= g.seed >> 7
			g.seed ^= g.seed << 17
			binary.LittleEndian.PutUint64(g.buf[:], g.seed)
			g.off = 0
		}
		c := copy(p[i:], g.buf[g.off:])
		g.off += c
		i += c
	}
	return i, nil
}

// Digest is the size and hex SHA-256 of the file a Files server serves at
// urlPath, computed without a request.
func Digest(urlPath string) (int64, string) {
	size, ext, ok := parseName(urlPath)
	if !ok {
		return 0, ""
	}
	h := sha256.New()
	io.Copy(h, io.LimitReader(newGenerator(ext, urlPath), size))
	return size, hex.EncodeToString(h.Sum(nil))
}
