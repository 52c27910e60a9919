package stack

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/esm"
)

// maxPayload is a Function URL's request limit.
const maxPayload = 6 << 20

func (s *Stack) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_local/tasks", s.listTasks)
	mux.HandleFunc("GET /_local/submissions", s.listSubmissions)
	mux.HandleFunc("GET /_local/objects/{key...}", s.getObject)
	mux.HandleFunc("GET /_local/events", s.listEvents)
	mux.Handle("/", s.functionURL(s.callbacks))
	return mux
}

// functionURL plays a Lambda Function URL before the sandboxes of pool:
// the request becomes a payload format 2.0 event, the function's answer
// becomes the response.
func (s *Stack) functionURL(pool chan *function) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { s.serveFunctionURL(pool, w, r) }
}

func (s *Stack) serveFunctionURL(pool chan *function, w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		http.Error(w, "reading body", http.StatusBadRequest)
		return
	}
	if len(body) > maxPayload {
		http.Error(w, `{"message":"Request must be smaller than 6291456 bytes for the InvokeFunction operation"}`, http.StatusRequestEntityTooLarge)
		return
	}
	requestID := newID()
	payload, _ := json.Marshal(urlEvent(r, body, requestID))
	var f *function
	select {
	case f = <-pool:
	case <-r.Context().Done():
		return
	}
	out, err := f.invoke(r.Context(), requestID, payload)
	pool <- f
	if err != nil {
		fmt.Fprintf(s.log, "%s: %v\n", f.name, err)
		http.Error(w, `{"message":"Internal Server Error"}`, http.StatusBadGateway)
		return
	}
	var resp events.LambdaFunctionURLResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		http.Error(w, `{"message":"Internal Server Error"}`, http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for _, c := range resp.Cookies {
		w.Header().Add("Set-Cookie", c)
	}
	respBody := []byte(resp.Body)
	if resp.IsBase64Encoded {
		respBody, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(respBody)
}

// urlEvent shapes r as Lambda shapes a Function URL request: lower-case
// header names, repeated values joined by commas, text bodies as text and
// anything else in base64.
func urlEvent(r *http.Request, body []byte, requestID string) events.LambdaFunctionURLRequest {
	headers := map[string]string{}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	headers["host"] = r.Host
	query := map[string]string{}
	for k, v := range r.URL.Query() {
		query[k] = strings.Join(v, ",")
	}
	if len(query) == 0 {
		query = nil
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	now := time.Now().UTC()
	ev := events.LambdaFunctionURLRequest{
		Version:               "2.0",
		RawPath:               r.URL.Path,
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.LambdaFunctionURLRequestContext{
			AccountID:  "anonymous",
			RequestID:  requestID,
			APIID:      "local",
			DomainName: r.Host,
			Time:       now.Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto, SourceIP: ip, UserAgent: r.UserAgent(),
			},
		},
	}
	if textual(r.Header.Get("Content-Type")) && utf8.Valid(body) {
		ev.Body = string(body)
	} else if len(body) > 0 {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	return ev
}

func textual(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/xml" || mt == "application/x-www-form-urlencoded"
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ColdStart starts function (CallbackFunction, or the baseline's
// HelloFunction) in a fresh Runtime Interface Emulator, with the stack's
// environment, hands it r as its Function URL would, and returns the time
// from the process's start to the answer: what a cold start costs the
// first caller. An answer other than 200 is an error.
func (s *Stack) ColdStart(ctx context.Context, function string, r *http.Request) (time.Duration, error) {
	bin := map[string]string{"CallbackFunction": "callback", "HelloFunction": Baseline}[function]
	env, ok := s.urlEnvs[function]
	if bin == "" || !ok {
		return 0, fmt.Errorf("no Function URL handler %s", function)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return 0, err
	}
	id := newID()
	payload, _ := json.Marshal(urlEvent(r, body, id))
	log, err := logFile(s.dir, "cold-"+function+".log")
	if err != nil {
		return 0, err
	}
	defer log.Close()
	start := time.Now()
	f, err := startFunction(ctx, s.bins.RIE, s.bins.Bootstrap[bin], function, env, 10*time.Second, log)
	if err != nil {
		return 0, err
	}
	defer f.stop()
	out, err := f.invoke(ctx, id, payload)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	var resp events.LambdaFunctionURLResponse
	if err := json.Unmarshal(out, &resp); err != nil || (resp.StatusCode != 0 && resp.StatusCode != http.StatusOK) {
		return 0, fmt.Errorf("%s answered %d (%v): %.200s", function, resp.StatusCode, err, out)
	}
	return took, nil
}

// handed notes when each task's copy message first reached the copier.
func (s *Stack) handed(ev events.SQSEvent, at time.Time) {
	s.handedMu.Lock()
	defer s.handedMu.Unlock()
	if s.handedAt == nil {
		s.handedAt = map[string]time.Time{}
	}
	for _, r := range ev.Records {
		var m schema.CopyMessage
		if json.Unmarshal([]byte(r.Body), &m) == nil && m.TaskID != "" {
			if _, seen := s.handedAt[m.TaskID]; !seen {
				s.handedAt[m.TaskID] = at
			}
		}
	}
}

// HandedAt is when taskID's copy message first reached the copier; zero
// if it has not.
func (s *Stack) HandedAt(taskID string) time.Time {
	s.handedMu.Lock()
	defer s.handedMu.Unlock()
	return s.handedAt[taskID]
}

// invokeSQS hands one SQS batch to f, as an event source mapping does.
func invokeSQS(f *function) esm.Invoke {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		payload, _ := json.Marshal(ev)
		out, err := f.invoke(ctx, newID(), payload)
		if err != nil {
			return events.SQSEventResponse{}, err
		}
		var resp events.SQSEventResponse
		err = json.Unmarshal(out, &resp)
		return resp, err
	}
}

// Task is a task record as the local routes show it.
type Task = schema.Record

// Object is one copy of a task's result.
type Object = schema.Object

// Tasks reads every task record, sorted by id.
func (s *Stack) Tasks(ctx context.Context) ([]Task, error) {
	var tasks []Task
	// A task's key has no '#': the submissions' and the pacing's have.
	err := s.scan(ctx, func(key string) bool { return !strings.Contains(key, "#") }, &tasks)
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].TaskID < tasks[j].TaskID })
	return tasks, err
}

// TasksByID reads every task record, by id.
func (s *Stack) TasksByID(ctx context.Context) (map[string]Task, error) {
	tasks, err := s.Tasks(ctx)
	byID := make(map[string]Task, len(tasks))
	for _, t := range tasks {
		byID[t.TaskID] = t
	}
	return byID, err
}

// Submission is a submission's record as the local routes show it.
type Submission = schema.SubmissionRecord

// Submissions reads every submission's record, sorted by id.
func (s *Stack) Submissions(ctx context.Context) ([]Submission, error) {
	var subs []Submission
	err := s.scan(ctx, func(key string) bool { return strings.HasPrefix(key, schema.SubmissionKeyPrefix) }, &subs)
	sort.Slice(subs, func(i, j int) bool { return subs[i].SubmissionID < subs[j].SubmissionID })
	return subs, err
}

// scan reads the table's items whose key keep takes into out, a pointer
// to a slice.
func (s *Stack) scan(ctx context.Context, keep func(key string) bool, out any) error {
	var items []map[string]types.AttributeValue
	p := dynamodb.NewScanPaginator(s.Env.DynamoDB, &dynamodb.ScanInput{TableName: &s.Env.Table, ConsistentRead: new(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range page.Items {
			if key, ok := item[schema.TaskID].(*types.AttributeValueMemberS); ok && keep(key.Value) {
				items = append(items, item)
			}
		}
	}
	return attributevalue.UnmarshalListOfMaps(items, out)
}

func (s *Stack) listTasks(w http.ResponseWriter, r *http.Request) {
	tasks, err := s.Tasks(r.Context())
	list(w, tasks, err)
}

func (s *Stack) listSubmissions(w http.ResponseWriter, r *http.Request) {
	subs, err := s.Submissions(r.Context())
	list(w, subs, err)
}

// list answers a local route with records as indented JSON.
func list(w http.ResponseWriter, records any, err error) {
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(records)
}

// listEvents serves every event the bus accepted, in order, as an
// EventBridge rule's target receives them.
func (s *Stack) listEvents(w http.ResponseWriter, _ *http.Request) {
	list(w, s.Env.Events(), nil)
}

func (s *Stack) getObject(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	out, err := s.Env.S3.GetObject(r.Context(), &s3.GetObjectInput{Bucket: &s.Env.Bucket, Key: &key})
	if err != nil {
		http.Error(w, "no such object", http.StatusNotFound)
		return
	}
	defer out.Body.Close()
	if out.ContentType != nil {
		w.Header().Set("Content-Type", *out.ContentType)
	}
	for k, v := range out.Metadata {
		w.Header().Set("X-Amz-Meta-"+k, v)
	}
	io.Copy(w, out.Body)
}
