package copier

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
)

// nullS3 stands in for S3 in BenchmarkCopyOnItsOwn's second figure, the
// uploaders' own ceiling: it answers the calls an upload makes as S3 does,
// reads every byte and keeps none, and hashes nothing (the emulator MD5s
// every part under one lock, which both uploaders wait on). An object
// whose bytes do not add up to size is refused, so that a copy cut short
// fails the benchmark rather than speeding it up.
type nullS3 struct {
	size    int64
	mu      sync.Mutex
	uploads map[string]int64 // upload id: bytes of its parts so far
	next    atomic.Int64
}

func newNullS3(size int64) *nullS3 { return &nullS3{size: size, uploads: map[string]int64{}} }

func (s *nullS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := io.Copy(io.Discard, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
		n, _ = strconv.ParseInt(d, 10, 64) // aws-chunked: the body's framing is not the object's
	}
	id := q.Get("uploadId")
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		id = fmt.Sprint("u", s.next.Add(1))
		s.mu.Lock()
		s.uploads[id] = 0
		s.mu.Unlock()
		writeXML(w, struct {
			XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
			UploadID string   `xml:"UploadId"`
		}{UploadID: id})
	case r.Method == http.MethodPut && id != "":
		s.mu.Lock()
		_, ok := s.uploads[id]
		s.uploads[id] += n
		s.mu.Unlock()
		if !ok {
			http.Error(w, "NoSuchUpload", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", `"`+q.Get("partNumber")+`"`)
	case r.Method == http.MethodPost && id != "":
		s.mu.Lock()
		got := s.uploads[id]
		delete(s.uploads, id)
		s.mu.Unlock()
		if got != s.size {
			http.Error(w, fmt.Sprintf("the parts hold %d bytes, not %d", got, s.size), http.StatusBadRequest)
			return
		}
		writeXML(w, struct {
			XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
			ETag    string
		}{ETag: `"done"`})
	case r.Method == http.MethodPut && q.Has("tagging"), r.Method == http.MethodDelete:
		s.mu.Lock()
		delete(s.uploads, id)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut:
		if n != s.size {
			http.Error(w, fmt.Sprintf("the object holds %d bytes, not %d", n, s.size), http.StatusBadRequest)
			return
		}
		w.Header().Set("ETag", `"done"`)
	default:
		http.Error(w, "NotImplemented", http.StatusNotImplemented)
	}
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/xml")
	io.WriteString(w, xml.Header)
	xml.NewEncoder(w).Encode(v)
}
