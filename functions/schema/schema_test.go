package schema_test

import (
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/schema"
)

func TestTimestamps(t *testing.T) {
	at := time.Date(2026, 12, 2, 19, 30, 5, 999_000_000, time.FixedZone("CET", 3600))
	if got := schema.Timestamp(at); got != "2026-12-02T18:30:05Z" {
		t.Errorf("Timestamp = %q: UTC, to the second, so that the index sorts it as a string", got)
	}
	for _, tt := range []struct {
		name, in string
		want     time.Time
		fails    bool
	}{
		{"a timestamp reads back in UTC", "2026-12-02T18:30:05Z", time.Date(2026, 12, 2, 18, 30, 5, 0, time.UTC), false},
		{"an empty one is the zero time", "", time.Time{}, false},
		{"anything else is an error, never a zero time", "yesterday", time.Time{}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schema.ParseTimestamp(tt.in)
			if (err != nil) != tt.fails || !got.Equal(tt.want) {
				t.Errorf("ParseTimestamp(%q) = %v, %v", tt.in, got, err)
			}
		})
	}
}

func TestCopyMessages(t *testing.T) {
	t.Run("a callback's message names the task only", func(t *testing.T) {
		if got := (schema.CopyMessage{TaskID: "t1"}).Encode(); got != `{"taskId":"t1"}` {
			t.Errorf("body %s", got)
		}
	})
	t.Run("an operator's request to copy again reads back as one", func(t *testing.T) {
		m, err := schema.DecodeCopyMessage(schema.CopyMessage{TaskID: "t1", Requeue: true}.Encode())
		if err != nil || m != (schema.CopyMessage{TaskID: "t1", Requeue: true}) {
			t.Errorf("%+v, %v", m, err)
		}
	})
	for _, body := range []string{``, `{}`, `{"taskId":""}`, `not json`, `["t1"]`} {
		t.Run("a body naming no task is an error: "+body, func(t *testing.T) {
			if _, err := schema.DecodeCopyMessage(body); err == nil {
				t.Error("decoded")
			}
		})
	}
}
