package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/task"
)

func localVars(tb testing.TB) map[string]string {
	tb.Helper()
	vars, err := sample.LocalVars("CopierFunction")
	if err != nil {
		tb.Fatal(err)
	}
	return vars
}

func TestSampleEventsRunThroughTheHandler(t *testing.T) {
	files, _ := fs.Glob(sample.Files, "copier-*.json")
	if len(files) == 0 {
		t.Fatal("no copier events")
	}
	for _, file := range files {
		t.Run(file+" copies every task it names, once", func(t *testing.T) {
			b, _ := fs.ReadFile(sample.Files, file)
			var ev events.SQSEvent
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatalf("decode: %v", err)
			}
			h := newHarness(t)
			var ids []string
			for _, rec := range ev.Records {
				var m struct{ TaskID string }
				json.Unmarshal([]byte(rec.Body), &m)
				if !slices.Contains(ids, m.TaskID) { // a batch may deliver a task twice
					h.seed(t, m.TaskID, task.StatusQueued, "/img.png")
					ids = append(ids, m.TaskID)
				}
			}
			// A second delivery of a task in the same batch is the same
			// copy as the first.
			resp, err := h.handler.Handle(context.Background(), ev)
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("failures %v %v", resp.BatchItemFailures, err)
			}
			for _, id := range ids {
				h.assertStored(t, id, "/img.png")
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Run("env.json's variables load", func(t *testing.T) {
		c, err := loadConfig(envconf.Map(localVars(t)))
		if err != nil || !c.AllowPrivate || !c.PathStyle || !c.Hosts.Allows("127.0.0.1") {
			t.Errorf("config %+v %v", c, err)
		}
	})
	t.Run("defaults follow the contract", func(t *testing.T) {
		c, err := loadConfig(envconf.Map(map[string]string{"TABLE_NAME": "t", "BUCKET_NAME": "b"}))
		if err != nil || c.Prefix != "tasks/" || c.MaxBytes != 268435456 || c.AllowPrivate || !c.Hosts.Allows("tempfile.aiquickdraw.com") || !c.Hosts.Allows("x.kie.ai") {
			t.Errorf("config %+v %v", c, err)
		}
	})
	tests := []struct{ name, variable, value string }{
		{"a missing table is named", "TABLE_NAME", ""},
		{"a missing bucket is named", "BUCKET_NAME", ""},
		{"an unparsable size is named", "MAX_OBJECT_BYTES", "256MiB"},
		{"an unparsable private switch is named", "ALLOW_PRIVATE_SOURCES", "sometimes"},
		{"an unparsable path-style switch is named", "S3_USE_PATH_STYLE", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"TABLE_NAME": "t", "BUCKET_NAME": "b", tt.variable: tt.value}
			if _, err := loadConfig(envconf.Map(vars)); err == nil || !strings.Contains(err.Error(), tt.variable) {
				t.Errorf("error %v does not name %s", err, tt.variable)
			}
		})
	}
}

func TestBuildWiresAFunctionFromItsEnvironment(t *testing.T) {
	h := newHarness(t)
	for k, v := range h.env.Vars() {
		t.Setenv(k, v)
	}
	t.Setenv("ALLOW_PRIVATE_SOURCES", "true")
	t.Setenv("SOURCE_HOSTS", "127.0.0.1")
	built, err := build(context.Background(), h.copier.Logger)
	if err != nil {
		t.Fatal(err)
	}
	h.seed(t, "built", task.StatusQueued, "/img.png")
	resp, _ := built.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{message("built")}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	h.assertStored(t, "built", "/img.png")
	if evs := h.env.Events(); len(evs) != 1 || evs[0].DetailType != "Task Stored" || evs[0].Bus != h.env.Vars()["EVENT_BUS_NAME"] {
		t.Errorf("with EVENT_BUS_NAME set, the copier put %+v", evs)
	}
	t.Run("a missing variable stops it with the variable's name", func(t *testing.T) {
		t.Setenv("TABLE_NAME", "")
		if _, err := build(context.Background(), h.copier.Logger); err == nil || !strings.Contains(err.Error(), "TABLE_NAME") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("files larger than S3's 10,000 parts stop it, naming MAX_OBJECT_BYTES", func(t *testing.T) {
		t.Setenv("MAX_OBJECT_BYTES", "4611686018427387903")
		if _, err := build(context.Background(), h.copier.Logger); err == nil || !strings.Contains(err.Error(), "MAX_OBJECT_BYTES") {
			t.Errorf("error %v", err)
		}
	})
}

func TestMemoryIsPlannedFromTheFunctionsSize(t *testing.T) {
	for _, tt := range []struct {
		memoryMB  int64
		parts     int
		heapLimit int64
	}{
		{512, objects.PartsInFlight, 256 << 20},
		{1024, objects.PartsInFlight, 512 << 20},
		{256, objects.PartsInFlight, 128 << 20},
		{64, 3, 32 << 20},
	} {
		t.Run(fmt.Sprintf("%d MB: %d part buffers, a %d MiB heap", tt.memoryMB, tt.parts, tt.heapLimit>>20), func(t *testing.T) {
			parts, limit := memoryPlan(tt.memoryMB)
			if parts != tt.parts || limit != tt.heapLimit {
				t.Errorf("got %d parts, %d bytes", parts, limit)
			}
			// Parts and heap together leave room for the runtime and the binary.
			if int64(parts)*objects.PartSize+limit > tt.memoryMB<<20*4/5 {
				t.Error("the plan leaves too little of the function's memory")
			}
		})
	}
	t.Run("build sets the Go memory limit from AWS_LAMBDA_FUNCTION_MEMORY_SIZE", func(t *testing.T) {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
		h := newHarness(t)
		for k, v := range h.env.Vars() {
			t.Setenv(k, v)
		}
		t.Setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
		if _, err := build(context.Background(), h.copier.Logger); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != 512<<20 {
			t.Errorf("memory limit %d", got)
		}
	})
}
