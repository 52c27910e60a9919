package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	sample "github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/envconf"
	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

// The copy itself is tested in functions/internal/copier; these tests
// check what main adds: the configuration, the memory plan, and a built
// function that copies.

// stage is the emulated AWS a built copier runs against, with the store
// to seed its tasks and read them back.
type stage struct {
	env   *emulators.Env
	store *dynamo.Store
}

func newStage(tb testing.TB) *stage {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	return &stage{env: env, store: dynamo.New(env.DynamoDB, env.Table, dynamo.WithEvents)}
}

// setenv gives the function the stage's environment, and the sources
// on this machine that the tests serve.
func (s *stage) setenv(t *testing.T) {
	for k, v := range s.env.Vars() {
		t.Setenv(k, v)
	}
	t.Setenv("ALLOW_PRIVATE_SOURCES", "true")
	t.Setenv("SOURCE_HOSTS", "127.0.0.1")
}

// seed records a queued task of sources.
func (s *stage) seed(tb testing.TB, id string, sources ...string) {
	tb.Helper()
	rec := task.Task{ID: id, Status: task.StatusQueued, Code: 200, Deliveries: 1, Sources: sources}
	if _, created, err := s.store.Create(context.Background(), rec); err != nil || !created {
		tb.Fatalf("seed %s: %v %v", id, created, err)
	}
}

func (s *stage) record(tb testing.TB, id string) task.Task {
	tb.Helper()
	t, found, err := s.store.Get(context.Background(), id)
	if err != nil || !found {
		tb.Fatalf("record %s: %v %v", id, found, err)
	}
	return t
}

func message(id string) events.SQSMessage {
	return events.SQSMessage{MessageId: "msg-" + id, Body: fmt.Sprintf(`{"taskId":%q}`, id)}
}

// writeMP4 writes an MP4-looking file of size bytes, its magic then
// filler, 256 KiB at a time, so that the writer never holds it whole.
func writeMP4(w io.Writer, size int64) error {
	chunk := make([]byte, 256<<10)
	for i := range chunk {
		chunk[i] = byte(i * 31)
	}
	copy(chunk, "\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
	for sent := int64(0); sent < size; {
		n := min(int64(len(chunk)), size-sent)
		if _, err := w.Write(chunk[:n]); err != nil {
			return err
		}
		sent += n
	}
	return nil
}

// serveMP4 serves writeMP4's file of size bytes at every path.
func serveMP4(tb testing.TB, size int64) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		writeMP4(w, size)
	}))
	tb.Cleanup(srv.Close)
	return srv
}

func localVars(tb testing.TB) map[string]string {
	tb.Helper()
	vars, err := sample.LocalVars("CopierFunction")
	if err != nil {
		tb.Fatal(err)
	}
	return vars
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
	t.Run("VERIFY_WITH_PLATFORM needs an API key", func(t *testing.T) {
		_, err := loadConfig(envconf.Map(map[string]string{"TABLE_NAME": "t", "BUCKET_NAME": "b", "VERIFY_WITH_PLATFORM": "true"}))
		if err == nil || !strings.Contains(err.Error(), "KIE_API_KEY") {
			t.Errorf("error %v", err)
		}
	})
}

func TestBuildWiresAFunctionFromItsEnvironment(t *testing.T) {
	s := newStage(t)
	s.setenv(t)
	logger := slog.New(slog.DiscardHandler)
	built, err := build(context.Background(), logger)
	if err != nil {
		t.Fatal(err)
	}
	const size = 300 << 10
	s.seed(t, "built", serveMP4(t, size).URL+"/clip.mp4")
	resp, _ := built.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{message("built")}})
	if len(resp.BatchItemFailures) != 0 {
		t.Fatalf("failures %v", resp.BatchItemFailures)
	}
	hash := sha256.New()
	writeMP4(hash, size)
	want := hex.EncodeToString(hash.Sum(nil))
	rec := s.record(t, "built")
	if rec.Status != task.StatusStored || len(rec.Objects) != 1 || rec.Objects[0].Bytes != size || rec.Objects[0].SHA256 != want {
		t.Fatalf("record %+v", rec)
	}
	if obj, err := s.env.Object(context.Background(), rec.Objects[0].Key); err != nil || obj.Tags["sha256"] != want {
		t.Errorf("object %s: tags %v, %v", rec.Objects[0].Key, obj.Tags, err)
	}
	if evs := s.env.Events(); len(evs) != 1 || evs[0].DetailType != "Task Stored" || evs[0].Bus != s.env.Vars()["EVENT_BUS_NAME"] {
		t.Errorf("with EVENT_BUS_NAME set, the copier put %+v", evs)
	}
	t.Run("a missing variable stops it with the variable's name", func(t *testing.T) {
		t.Setenv("TABLE_NAME", "")
		if _, err := build(context.Background(), logger); err == nil || !strings.Contains(err.Error(), "TABLE_NAME") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("files larger than S3's 10,000 parts stop it, naming MAX_OBJECT_BYTES", func(t *testing.T) {
		t.Setenv("MAX_OBJECT_BYTES", "4611686018427387903")
		if _, err := build(context.Background(), logger); err == nil || !strings.Contains(err.Error(), "MAX_OBJECT_BYTES") {
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
		newStage(t).setenv(t)
		t.Setenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
		if _, err := build(context.Background(), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != 512<<20 {
			t.Errorf("memory limit %d", got)
		}
	})
}
