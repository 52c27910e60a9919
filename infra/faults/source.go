package faults

import (
	"io"
	"net/http"
	"strconv"
)

// CutOff sends the first half of a body of size bytes from body and
// closes the connection, cleanly, as a source that goes away mid-file
// does: with chunked, the body has no declared length and its last chunk
// never comes; otherwise it declares Content-Length: size and falls short.
// Either way the bytes that arrived are a valid prefix, and only the
// missing end tells the file is not whole.
func CutOff(w http.ResponseWriter, body io.Reader, size int64, chunked bool) {
	if chunked {
		w.Header().Del("Content-Length")
	} else {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	io.CopyN(w, body, size/2)
	w.(http.Flusher).Flush()
	if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
		conn.Close()
	}
}
