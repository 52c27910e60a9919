package emulators

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
)

// jsonAPI serves the few AWS JSON-protocol (awsJson 1.1) operations that no
// emulator package offers: Secrets Manager's GetSecretValue. Each request
// names its operation in X-Amz-Target.
type jsonAPI struct {
	mu      sync.Mutex
	secrets map[string]string

	// SecretReads counts GetSecretValue calls, answered or not.
	SecretReads atomic.Int64
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
