package emulators

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// jsonAPI serves the few AWS JSON-protocol (awsJson 1.1) operations that no
// emulator package offers: Secrets Manager's GetSecretValue and
// EventBridge's PutEvents. Each request names its operation in X-Amz-Target.
type jsonAPI struct {
	mu      sync.Mutex
	secrets map[string]string
	events  []Event
	refuse  bool

	// SecretReads counts GetSecretValue calls, answered or not.
	SecretReads atomic.Int64
}

// Event is one entry that PutEvents accepted, as an EventBridge rule's
// target receives it.
type Event struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
	Bus        string          `json:"-"` // the EventBusName it was put on
	Received   time.Time       `json:"-"` // when the bus took it, to the nanosecond (Time has whole seconds, as EventBridge's)
}

func newJSONAPI() *jsonAPI { return &jsonAPI{secrets: map[string]string{}} }

func (a *jsonAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		awsError(w, "SerializationException", "body is not JSON")
		return
	}
	switch target := r.Header.Get("X-Amz-Target"); target {
	case "secretsmanager.GetSecretValue":
		a.getSecretValue(w, in)
	case "AWSEvents.PutEvents":
		a.putEvents(w, in)
	default:
		awsError(w, "UnknownOperationException", fmt.Sprintf("operation %q is not emulated", target))
	}
}

func (a *jsonAPI) getSecretValue(w http.ResponseWriter, in map[string]any) {
	a.SecretReads.Add(1)
	id, _ := in["SecretId"].(string)
	name := id[strings.LastIndex(id, ":")+1:] // an ARN's last part, or the name
	a.mu.Lock()
	value, ok := a.secrets[name]
	a.mu.Unlock()
	if !ok {
		awsError(w, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
		return
	}
	reply(w, map[string]any{"ARN": "arn:aws:secretsmanager:" + Region + ":000000000000:secret:" + name, "Name": name, "SecretString": value, "VersionId": "v1"})
}

// SetSecret creates or replaces the string value of the secret name.
func (a *jsonAPI) SetSecret(name, value string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.secrets[name] = value
}

// putEvents accepts every entry whose detail is a JSON object, as the bus
// does, unless RefuseEntries is on: then each entry fails on its own, as
// EventBridge reports a partial failure (a 200 with FailedEntryCount).
func (a *jsonAPI) putEvents(w http.ResponseWriter, in map[string]any) {
	entries, _ := in["Entries"].([]any)
	// EventBridge refuses the whole call past 256 KB, counting each entry's
	// detail, detail type, source, resources and a 14-byte time.
	size := 0
	for _, raw := range entries {
		e, _ := raw.(map[string]any)
		for _, f := range []string{"Detail", "DetailType", "Source"} {
			v, _ := e[f].(string)
			size += len(v)
		}
		size += 14
	}
	if size > 256*1024 {
		awsError(w, "ValidationException", "Total size of the entries in the request is over the limit.")
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	results := make([]map[string]string, len(entries))
	failed := 0
	for i, raw := range entries {
		e, _ := raw.(map[string]any)
		detail, _ := e["Detail"].(string)
		if a.refuse || !json.Valid([]byte(detail)) || !strings.HasPrefix(detail, "{") {
			failed++
			results[i] = map[string]string{"ErrorCode": "InternalFailure", "ErrorMessage": "the entry was refused"}
			continue
		}
		id := fmt.Sprintf("%08x-0000-0000-0000-%012d", len(a.events), time.Now().UnixNano()%1e12)
		bus, _ := e["EventBusName"].(string)
		source, _ := e["Source"].(string)
		detailType, _ := e["DetailType"].(string)
		now := time.Now()
		a.events = append(a.events, Event{Version: "0", ID: id, DetailType: detailType, Source: source, Account: "000000000000",
			Time: now.UTC().Truncate(time.Second), Region: Region, Resources: []string{}, Detail: json.RawMessage(detail), Bus: bus, Received: now})
		results[i] = map[string]string{"EventId": id}
	}
	reply(w, map[string]any{"FailedEntryCount": failed, "Entries": results})
}

// Events are the events PutEvents accepted so far, in order.
func (a *jsonAPI) Events() []Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// RefuseEntries makes PutEvents fail every entry (a 200 answer with
// FailedEntryCount) until turned off.
func (a *jsonAPI) RefuseEntries(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.refuse = on
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(v)
}

func awsError(w http.ResponseWriter, code, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": message})
}
