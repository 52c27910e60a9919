// Package schema names what kiehook keeps and queues about a task: the
// record's attributes, the table's key and index, how times are written,
// the statuses, and the copy message. It decides nothing; it is the one
// definition that the functions, the emulators and the operator commands
// read, so that a name changes in one place.
package schema

import (
	"encoding/json"
	"fmt"
	"time"
)

// The record's attribute names, as the contract names them. The table's
// partition key is TaskID.
const (
	TaskID      = "taskId"
	Status      = "status"
	OpenStatus  = "openStatus"
	Code        = "code"
	Msg         = "msg"
	API         = "api"
	Sources     = "sources"
	Objects     = "objects"
	Deliveries  = "deliveries"
	ReceivedAt  = "receivedAt"
	SubmittedAt = "submittedAt"
	UpdatedAt   = "updatedAt"
	StoredAt    = "storedAt"
	ExpiresAt   = "expiresAt"
	Error       = "error"
	NotifiedAt  = "notifiedAt"
	Labels      = "labels"
	Uploads     = "uploads"
	LeaseOwner  = "leaseOwner"
	LeaseUntil  = "leaseUntil"
	Receives    = "receives"
	Generation  = "generation"
	ResentAt    = "resentAt"
	// SubmissionID, on a task record, is the submission it came through.
	SubmissionOf = "submissionId"
)

// IndexOpen is the table's sparse global secondary index of the tasks that
// still need kiehook's work: partition key OpenStatus (the status), sort
// key UpdatedAt. A record is in it while it carries OpenStatus.
const IndexOpen = "open-tasks"

// The statuses a record's Status takes.
const (
	Pending    = "pending"     // registered before its callback
	Received   = "received"    // left by an earlier release whose callback died midway; ops upgrade makes it queued
	Queued     = "queued"      // handed to the copier
	Stored     = "stored"      // every result is in the bucket
	Failed     = "failed"      // the platform reported no usable result
	CopyFailed = "copy_failed" // a result can never be copied
)

// Record is a task's item in the table (and, in JSON, as the local stack
// shows it). Times are Timestamps: the index
// sorts UpdatedAt as a string, so every one has the same form. An empty
// OpenStatus is left out, which takes the record out of the index.
type Record struct {
	TaskID      string            `json:"taskId" dynamodbav:"taskId"`
	Status      string            `json:"status" dynamodbav:"status"`
	OpenStatus  string            `json:"openStatus,omitempty" dynamodbav:"openStatus,omitempty"`
	Code        int               `json:"code" dynamodbav:"code"`
	Msg         string            `json:"msg" dynamodbav:"msg"`
	API         string            `json:"api" dynamodbav:"api"`
	Sources     []string          `json:"sources,omitempty" dynamodbav:"sources,omitempty"`
	Objects     []Object          `json:"objects,omitempty" dynamodbav:"objects,omitempty"`
	Deliveries  int               `json:"deliveries" dynamodbav:"deliveries"`
	ReceivedAt  string            `json:"receivedAt,omitempty" dynamodbav:"receivedAt,omitempty"`
	SubmittedAt string            `json:"submittedAt,omitempty" dynamodbav:"submittedAt,omitempty"`
	UpdatedAt   string            `json:"updatedAt" dynamodbav:"updatedAt"`
	StoredAt    string            `json:"storedAt,omitempty" dynamodbav:"storedAt,omitempty"`
	ExpiresAt   int64             `json:"expiresAt,omitempty" dynamodbav:"expiresAt,omitempty"` // Unix seconds, for DynamoDB's TTL
	Error       string            `json:"error,omitempty" dynamodbav:"error,omitempty"`
	NotifiedAt  string            `json:"notifiedAt,omitempty" dynamodbav:"notifiedAt,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" dynamodbav:"labels,omitempty"`
	Uploads     []Upload          `json:"uploads,omitempty" dynamodbav:"uploads,omitempty"`
	LeaseOwner  string            `json:"leaseOwner,omitempty" dynamodbav:"leaseOwner,omitempty"`
	LeaseUntil  int64             `json:"leaseUntil,omitempty" dynamodbav:"leaseUntil,omitempty"` // Unix milliseconds
	Receives    int               `json:"receives,omitempty" dynamodbav:"receives,omitempty"`
	Generation  int               `json:"generation,omitempty" dynamodbav:"generation,omitempty"` // the queueing, counted by requeues
	ResentAt    string            `json:"resentAt,omitempty" dynamodbav:"resentAt,omitempty"`
	Submission  string            `json:"submissionId,omitempty" dynamodbav:"submissionId,omitempty"`
}

// Object is one copied result, in a record's Objects.
type Object struct {
	Key         string `json:"key" dynamodbav:"key"`                 // in the bucket
	Bytes       int64  `json:"bytes" dynamodbav:"bytes"`             // the file's whole length, as read
	SHA256      string `json:"sha256" dynamodbav:"sha256"`           // hex, of every byte read
	ContentType string `json:"contentType" dynamodbav:"contentType"` // sniffed from the bytes
	Source      string `json:"source" dynamodbav:"source"`           // the URL it was copied from
}

// Upload is a multipart upload a copy started, in a record's Uploads.
type Upload struct {
	Key      string `json:"key" dynamodbav:"key"`
	UploadID string `json:"uploadId" dynamodbav:"uploadId"`
}

// Timestamp is how the record and the events write a time: RFC 3339 in
// UTC, to the second; "" for the zero time.
func Timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// ParseTimestamp reads a Timestamp; "" is the zero time.
func ParseTimestamp(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339", s)
	}
	return t.UTC(), nil
}

// CopyMessage is the body of every message on the copy queue. It names
// the task and the queueing (Generation) it was sent for: the record is
// the truth, and a message of an older queueing than the record's is
// spent. Requeue marks an operator's request to copy a task again whose
// copy failed: it starts queueing Generation.
type CopyMessage struct {
	TaskID     string `json:"taskId"`
	Generation int    `json:"generation,omitempty"`
	Requeue    bool   `json:"requeue,omitempty"`
}

// Encode is the message's body.
func (m CopyMessage) Encode() string {
	b, _ := json.Marshal(m) // two plain fields: it cannot fail
	return string(b)
}

// DecodeCopyMessage reads a message body.
func DecodeCopyMessage(body string) (CopyMessage, error) {
	var m CopyMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.TaskID == "" {
		return CopyMessage{}, fmt.Errorf("message body is not {\"taskId\":\"…\"}: %.64q", body)
	}
	return m, nil
}

// Submissions share the tasks' table, under keys no task id can take (a
// task id has no '#'): a submission's record, the pacing window of a
// platform account, and whether the account is out of credits.
const (
	SubmissionKeyPrefix = "submission#"
	PaceKeyPrefix       = "pace#"
	CreditsKeyPrefix    = "credits#"
)

// The open statuses of a submission in the open index, apart from a
// task's.
const (
	SubmissionAccepted = "submission:accepted"
	SubmissionUnknown  = "submission:unknown"
	// SubmissionUnannounced are the ended submissions whose event the bus
	// has not taken yet.
	SubmissionUnannounced = "submission:unannounced"
)

// SubmissionRecord is a submission's item. Its TaskID attribute holds the
// table's key (SubmissionKeyPrefix + SubmissionID); Task is the platform
// task it made, once submitted.
type SubmissionRecord struct {
	Key            string            `json:"-" dynamodbav:"taskId"`
	SubmissionID   string            `json:"submissionId" dynamodbav:"submissionId"`
	IdempotencyKey string            `json:"idempotencyKey" dynamodbav:"idempotencyKey"`
	BodyHash       string            `json:"bodyHash" dynamodbav:"bodyHash"`
	API            string            `json:"api" dynamodbav:"api"`
	Input          string            `json:"input" dynamodbav:"input"` // the platform's create body, as JSON text
	Labels         map[string]string `json:"labels,omitempty" dynamodbav:"labels,omitempty"`
	Status         string            `json:"status" dynamodbav:"status"`
	OpenStatus     string            `json:"openStatus,omitempty" dynamodbav:"openStatus,omitempty"`
	Attempts       int               `json:"attempts" dynamodbav:"attempts"`
	Task           string            `json:"taskId,omitempty" dynamodbav:"task,omitempty"`
	Code           int               `json:"code,omitempty" dynamodbav:"code,omitempty"`
	Msg            string            `json:"msg,omitempty" dynamodbav:"msg,omitempty"`
	Error          string            `json:"error,omitempty" dynamodbav:"error,omitempty"`
	ClaimedBy      string            `json:"claimedBy,omitempty" dynamodbav:"claimedBy,omitempty"`
	ClaimedAt      string            `json:"claimedAt,omitempty" dynamodbav:"claimedAt,omitempty"`
	CreatedAt      string            `json:"createdAt" dynamodbav:"createdAt"`
	UpdatedAt      string            `json:"updatedAt" dynamodbav:"updatedAt"`
	ExpiresAt      int64             `json:"expiresAt,omitempty" dynamodbav:"expiresAt,omitempty"`
	NotifiedAt     string            `json:"notifiedAt,omitempty" dynamodbav:"notifiedAt,omitempty"`
}

// The submission record's own attribute names, beside the task's
// (Status, OpenStatus, API, Code, Msg, Error, Labels, UpdatedAt).
const (
	SubmissionID = "submissionId"
	SubmittedAs  = "task"
	Attempts     = "attempts"
	ClaimedBy    = "claimedBy"
	ClaimedAt    = "claimedAt"
)

// SubmitMessage is the body of every message on the submission queue.
type SubmitMessage struct {
	SubmissionID string `json:"submissionId"`
}
