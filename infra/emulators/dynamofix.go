package emulators

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
)

// removeFix stands before minidyn and makes UpdateItem's REMOVE clause
// drop the top-level attributes it names: minidyn (v0.8.2) evaluates REMOVE
// but never deletes the attribute from the stored item. After such an
// update it reads the item, drops the attributes and puts it back, while
// every other write waits, so the fix is atomic as DynamoDB's update is.
type removeFix struct {
	next http.Handler
	mu   sync.Mutex
}

// removeClause is the REMOVE clause of an update expression.
var removeClause = regexp.MustCompile(`(?is)\bREMOVE\b(.*?)(?:\bSET\b|\bADD\b|\bDELETE\b|$)`)

type updateRequest struct {
	TableName                string
	Key                      json.RawMessage
	UpdateExpression         string
	ExpressionAttributeNames map[string]string
	ReturnValues             string
}

func (f *removeFix) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasSuffix(op, ".UpdateItem"):
	case strings.HasSuffix(op, ".PutItem"), strings.HasSuffix(op, ".DeleteItem"), strings.HasSuffix(op, ".BatchWriteItem"):
		f.mu.Lock()
		defer f.mu.Unlock()
		f.next.ServeHTTP(w, r)
		return
	default:
		f.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in updateRequest
	json.Unmarshal(body, &in)
	removed := removedNames(in.UpdateExpression, in.ExpressionAttributeNames)
	f.mu.Lock()
	defer f.mu.Unlock()
	rec := f.call(r, op, body)
	if rec.Code == http.StatusOK && len(removed) > 0 {
		f.drop(r, op, in, removed, rec)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// drop removes the attributes from the stored item, and from the answer's
// Attributes when they are the new item.
func (f *removeFix) drop(r *http.Request, op string, in updateRequest, removed []string, rec *httptest.ResponseRecorder) {
	service, _, _ := strings.Cut(op, ".")
	get, _ := json.Marshal(map[string]any{"TableName": in.TableName, "Key": in.Key, "ConsistentRead": true})
	var got struct{ Item map[string]json.RawMessage }
	json.Unmarshal(f.call(r, service+".GetItem", get).Body.Bytes(), &got)
	if got.Item == nil {
		return
	}
	for _, name := range removed {
		delete(got.Item, name)
	}
	put, _ := json.Marshal(map[string]any{"TableName": in.TableName, "Item": got.Item})
	f.call(r, service+".PutItem", put)
	if strings.EqualFold(in.ReturnValues, "ALL_NEW") {
		answer, _ := json.Marshal(map[string]any{"Attributes": got.Item})
		rec.Body = bytes.NewBuffer(answer)
		rec.Header().Del("X-Amz-Crc32")
		rec.Header().Del("Content-Length")
	}
}

func (f *removeFix) call(r *http.Request, op string, body []byte) *httptest.ResponseRecorder {
	req := r.Clone(r.Context())
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.Header.Set("X-Amz-Target", op)
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, req)
	return rec
}

// removedNames are the top-level attributes a REMOVE clause names, with
// their #placeholders resolved.
func removedNames(expr string, names map[string]string) []string {
	m := removeClause.FindStringSubmatch(expr)
	if m == nil {
		return nil
	}
	var out []string
	for _, path := range strings.Split(m[1], ",") {
		path = strings.TrimSpace(path)
		if path == "" || strings.ContainsAny(path, ".[") {
			continue // nested paths are not used by kiehook
		}
		if n, ok := names[path]; ok {
			path = n
		}
		out = append(out, path)
	}
	return out
}
