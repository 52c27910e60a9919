package taskevent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/eventbus"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
)

// decode reads a sample strictly: a field the type lacks is an error.
func decode(tb testing.TB, name string) taskevent.Event {
	tb.Helper()
	b, err := fs.ReadFile(sample.Files, name)
	if err != nil {
		tb.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var ev taskevent.Event
	if err := dec.Decode(&ev); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return ev
}

// asRecord is the task record a sample's detail was made from.
func asRecord(d taskevent.Detail) task.Task {
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	t := task.Task{ID: d.TaskID, API: d.API, Status: task.Status(d.Status), Code: d.Code, Msg: d.Msg, Deliveries: d.Deliveries,
		ReceivedAt: at(d.ReceivedAt), UpdatedAt: at(d.UpdatedAt), StoredAt: at(d.StoredAt), Error: d.Error, Labels: d.Labels}
	for _, o := range d.Objects {
		t.Objects = append(t.Objects, task.Object{Key: o.Key, Bytes: o.Bytes, SHA256: o.SHA256, ContentType: o.ContentType, Source: o.Source})
	}
	return t
}

func TestEverySampleEventIsWhatKiehookPuts(t *testing.T) {
	tests := []struct {
		file, detailType, status string
		objects                  int
	}{
		{"task-stored.json", taskevent.Stored, "stored", 2},
		{"task-failed.json", taskevent.Failed, "failed", 0},
		{"task-copy-failed.json", taskevent.CopyFailed, "copy_failed", 0},
	}
	files, _ := fs.Glob(sample.Files, "task-*.json")
	if len(files) != len(tests) {
		t.Fatalf("%d task event samples, %d cases: every sample needs a case", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file+" decodes as a "+tt.detailType+" event", func(t *testing.T) {
			ev := decode(t, tt.file)
			d := ev.Detail
			if ev.Source != taskevent.Source || ev.DetailType != tt.detailType || d.Status != tt.status || len(d.Objects) != tt.objects {
				t.Fatalf("event %+v", ev)
			}
			if want, _ := taskevent.DetailType(d.Status); want != ev.DetailType {
				t.Errorf("detail type %q for status %q", ev.DetailType, d.Status)
			}
			if d.TaskID == "" || d.API == "" || d.UpdatedAt == "" || ev.Time.IsZero() || d.SchemaVersion != taskevent.SchemaVersion {
				t.Errorf("detail %+v lacks a field every event has", d)
			}
			bucket := ""
			if len(d.Objects) > 0 {
				bucket = d.Objects[0].Bucket
			}
			if got := eventbus.Detail(asRecord(d), bucket); !reflect.DeepEqual(got, d) {
				t.Errorf("kiehook puts\n%+v\nfor this record, the sample says\n%+v", got, d)
			}
		})
	}
}

func TestDetailTypeIsForFinalStatusesOnly(t *testing.T) {
	for _, s := range []string{"pending", "received", "queued", ""} {
		if dt, ok := taskevent.DetailType(s); ok {
			t.Errorf("%q has detail type %q", s, dt)
		}
	}
}

func Example() {
	b, _ := fs.ReadFile(sample.Files, "task-stored.json") // an SQS message body, say
	var ev taskevent.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		panic(err)
	}
	if ev.DetailType == taskevent.Stored {
		for _, o := range ev.Detail.Objects {
			fmt.Printf("s3://%s/%s %d bytes\n", o.Bucket, o.Key, o.Bytes)
		}
	}
	// Output:
	// s3://kiehook-objects-111122223333/tasks/4o_91c2d8e4/0.png 1843200 bytes
	// s3://kiehook-objects-111122223333/tasks/4o_91c2d8e4/1.png 1790522 bytes
}
