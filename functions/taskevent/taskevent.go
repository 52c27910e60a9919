// Package taskevent is the event kiehook puts on EventBridge when a task
// ends, for your application to decode without copying its shape:
//
//	var ev taskevent.Event
//	if err := json.Unmarshal(body, &ev); err != nil { … } // an SQS message body, say
//	if ev.DetailType == taskevent.Stored {
//		for _, o := range ev.Detail.Objects { … o.Bucket, o.Key, o.SHA256 … }
//	}
//
// Delivery is at least once and in no particular order: dedupe on
// Detail.TaskID + Detail.Status. It and register are the packages of
// kiehook meant to be imported.
package taskevent

import (
	"time"

	"github.com/kiehook/kiehook/functions/internal/task"
)

// Source is the Source of every kiehook event.
const Source = "kiehook"

// SchemaVersion is the version of Detail's shape that kiehook puts. Within
// a version fields are only ever added, never removed, renamed or given
// another meaning, so decode without refusing unknown fields; a change that
// would break a consumer comes with a new version, announced in the
// changelog.
const SchemaVersion = 1

// The DetailType of each event, by the task's final status.
const (
	Stored     = "Task Stored"      // status stored: every result is in the bucket
	Failed     = "Task Failed"      // status failed: the platform reported no usable result
	CopyFailed = "Task Copy Failed" // status copy_failed: a result can never be copied
)

// The DetailType of each event of a submission (POST /submissions), by the
// status it reached.
const (
	Submitted     = "Task Submitted"      // the platform made the task: its own events follow, with the submission's id
	SubmitFailed  = "Task Submit Failed"  // the platform refused it for good, or it waited past SUBMIT_MAX_WAIT
	SubmitUnknown = "Task Submit Unknown" // a create call went out and no answer or callback ever told its task
)

// SubmissionDetail is what a submission's event says of it.
type SubmissionDetail struct {
	SchemaVersion int               `json:"schemaVersion"`
	SubmissionID  string            `json:"submissionId"`
	TaskID        string            `json:"taskId,omitempty"` // for Task Submitted
	API           string            `json:"api"`
	Status        string            `json:"status"` // submitted, submit_failed or submit_unknown
	Code          int               `json:"code,omitempty"`
	Msg           string            `json:"msg,omitempty"`
	Error         string            `json:"error,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
}

// DetailType is the DetailType of the event for a task that ended in
// status, and false for a status that is not final.
func DetailType(status string) (string, bool) {
	if !task.Final(task.Status(status)) {
		return "", false
	}
	return detailTypes[task.Status(status)], true
}

// detailTypes name the events of the final statuses (task.Final).
var detailTypes = map[task.Status]string{task.StatusStored: Stored, task.StatusFailed: Failed, task.StatusCopyFailed: CopyFailed}

// Detail is what an event says of its task: the task record's attributes.
type Detail struct {
	SchemaVersion int      `json:"schemaVersion"` // SchemaVersion
	TaskID        string   `json:"taskId"`
	API           string   `json:"api"`
	Status        string   `json:"status"` // stored, failed or copy_failed
	Code          int      `json:"code"`   // the platform's code
	Msg           string   `json:"msg"`    // the platform's message
	Deliveries    int      `json:"deliveries"`
	ReceivedAt    string   `json:"receivedAt,omitempty"` // RFC 3339 UTC; absent for a registered task that never called back
	UpdatedAt     string   `json:"updatedAt"`
	StoredAt      string   `json:"storedAt,omitempty"` // for stored
	Error         string   `json:"error,omitempty"`    // for copy_failed: why
	Objects       []Object `json:"objects,omitempty"`  // for stored: one per result, in the platform's order
	// Labels are your application's: the query parameters of the callback
	// URL you gave the platform (token aside), or a registration's.
	Labels map[string]string `json:"labels,omitempty"`
	// SubmissionID is the submission the task came through, when kiehook
	// created it for you (POST /submissions).
	SubmissionID string `json:"submissionId,omitempty"`
}

// Object is one stored result.
type Object struct {
	Bucket      string `json:"bucket"`
	Key         string `json:"key"`
	Bytes       int64  `json:"bytes"`
	SHA256      string `json:"sha256"` // hex
	ContentType string `json:"contentType"`
	// Source is the URL it was copied from; absent when the event would
	// otherwise pass EventBridge's 256 KB (the reader still has it).
	Source string `json:"source,omitempty"`
}

// Task is what kiehook's reader answers for GET /tasks/<taskId>: the
// task's Detail as it is now, for any status (pending and queued
// included), and for a stored task a download link per object.
type Task struct {
	Detail
	Links []Link `json:"links,omitempty"`
}

// Link is a presigned GET of one stored object: it needs no credentials,
// and works until ExpiresAt (or until the reader's own credentials expire,
// when that is sooner).
type Link struct {
	Key       string `json:"key"`
	URL       string `json:"url"`
	ExpiresAt string `json:"expiresAt"` // RFC 3339 UTC
}

// Event is an event as an EventBridge rule's target receives it: the
// envelope around the Detail.
type Event struct {
	Version    string    `json:"version"`
	ID         string    `json:"id"`
	DetailType string    `json:"detail-type"`
	Source     string    `json:"source"`
	Account    string    `json:"account"`
	Time       time.Time `json:"time"`
	Region     string    `json:"region"`
	Resources  []string  `json:"resources"`
	Detail     Detail    `json:"detail"`
}
