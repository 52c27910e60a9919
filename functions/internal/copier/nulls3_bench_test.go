package copier

import (
	"bytes"
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
// whose bytes, or whose completed parts' bytes, do not add up to size is
// refused, so that a copy cut short fails the benchmark rather than
// speeding it up. (Over plain HTTP the SDK sends bodies as they are, not
// aws-chunked: what is read is the object's.)
type nullS3 struct {
	size    int64
	mu      sync.Mutex
	uploads map[string]map[int]int64 // upload id: part number: bytes
	next    atomic.Int64
}

func newNullS3(size int64) *nullS3 { return &nullS3{size: size, uploads: map[string]map[int]int64{}} }

func (s *nullS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("uploadId")
	var body bytes.Buffer // kept only of a completion: its list of parts
	keep := io.Discard
	if r.Method == http.MethodPost && id != "" {
		keep = &body
	}
	n, err := io.Copy(keep, r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodPost && q.Has("uploads"):
		id = fmt.Sprint("u", s.next.Add(1))
		s.mu.Lock()
		s.uploads[id] = map[int]int64{}
		s.mu.Unlock()
		writeXML(w, struct {
			XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
			UploadID string   `xml:"UploadId"`
		}{UploadID: id})
	case r.Method == http.MethodPut && id != "":
		part, err := strconv.Atoi(q.Get("partNumber"))
		s.mu.Lock()
		parts, ok := s.uploads[id]
		if ok && err == nil {
			parts[part] = n // a part sent again replaces the one before, as in S3
		}
		s.mu.Unlock()
		if !ok || err != nil {
			http.Error(w, "NoSuchUpload, or no part number", http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", `"`+strconv.Itoa(part)+`"`)
	case r.Method == http.MethodPost && id != "":
		var complete struct {
			Parts []struct{ PartNumber int } `xml:"Part"`
		}
		if err := xml.Unmarshal(body.Bytes(), &complete); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		parts := s.uploads[id]
		delete(s.uploads, id)
		s.mu.Unlock()
		var got int64
		for _, p := range complete.Parts {
			got += parts[p.PartNumber]
		}
		if got != s.size {
			http.Error(w, fmt.Sprintf("the completed parts hold %d bytes, not %d", got, s.size), http.StatusBadRequest)
			return
		}
		writeXML(w, struct {
			XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
			ETag    string
		}{ETag: `"done"`})
	case r.Method == http.MethodPut && q.Has("tagging"):
	case r.Method == http.MethodDelete:
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
