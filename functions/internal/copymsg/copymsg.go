// Package copymsg is the body of a copy message, apart from the SQS
// client, so that the copier, which only reads messages, links no SQS.
package copymsg

import (
	"encoding/json"
	"fmt"
)

// Message is the body of every message on the copy queue. It names the task
// only: the record in DynamoDB is the truth.
type Message struct {
	TaskID string `json:"taskId"`
}

// Encode is the body of the message for taskID.
func Encode(taskID string) (string, error) {
	b, err := json.Marshal(Message{TaskID: taskID})
	return string(b), err
}

// Decode reads a message body.
func Decode(body string) (Message, error) {
	var m Message
	if err := json.Unmarshal([]byte(body), &m); err != nil || m.TaskID == "" {
		return Message{}, fmt.Errorf("message body is not {\"taskId\":\"…\"}: %.64q", body)
	}
	return m, nil
}
