package emulators

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
)

// tagShim stands before gofakes3 and keeps object tags, which gofakes3
// (v1.2.0) does not: it ignores x-amz-tagging, and its PutObjectTagging
// overwrites the object with the tagging document. Paths are path-style
// (/bucket/key). Only whole-object tag sets are kept, as S3 keeps them.
type tagShim struct {
	next http.Handler
	mu   sync.Mutex
	tags map[string]map[string]string // by "bucket/key"
}

type tagSet struct {
	XMLName xml.Name `xml:"Tagging"`
	Tags    []struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	} `xml:"TagSet>Tag"`
}

func (t *tagShim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	object := strings.TrimPrefix(r.URL.Path, "/")
	q := r.URL.Query()
	_, tagging := q["tagging"]
	switch {
	case tagging && r.Method == http.MethodPut:
		var doc tagSet
		if err := xml.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&doc); err != nil {
			http.Error(w, "malformed tagging", http.StatusBadRequest)
			return
		}
		set := map[string]string{}
		for _, tag := range doc.Tags {
			set[tag.Key] = tag.Value
		}
		t.set(object, set)
		w.WriteHeader(http.StatusOK)
	case tagging && r.Method == http.MethodGet:
		var doc tagSet
		for k, v := range t.get(object) {
			doc.Tags = append(doc.Tags, struct {
				Key   string `xml:"Key"`
				Value string `xml:"Value"`
			}{k, v})
		}
		w.Header().Set("Content-Type", "application/xml")
		xml.NewEncoder(w).Encode(doc)
	case r.Method == http.MethodPut && q.Get("uploadId") == "" && r.Header.Get("X-Amz-Copy-Source") == "":
		// PutObject: its tags come in x-amz-tagging, a query string.
		rec := httptest.NewRecorder()
		t.next.ServeHTTP(rec, r)
		if rec.Code == http.StatusOK {
			set := map[string]string{}
			if values, err := url.ParseQuery(r.Header.Get("X-Amz-Tagging")); err == nil {
				for k := range values {
					set[k] = values.Get(k)
				}
			}
			t.set(object, set)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	default:
		if r.Method == http.MethodDelete && q.Get("uploadId") == "" {
			t.set(object, nil)
		}
		t.next.ServeHTTP(w, r)
	}
}

func (t *tagShim) set(object string, set map[string]string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tags == nil {
		t.tags = map[string]map[string]string{}
	}
	if len(set) == 0 {
		delete(t.tags, object)
		return
	}
	t.tags[object] = set
}

func (t *tagShim) get(object string) map[string]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tags[object]
}
