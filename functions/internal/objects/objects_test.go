package objects_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"

	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/infra/emulators"
)

// content is n bytes that differ from part to part, so that parts put in
// the wrong order would show.
func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/objects.PartSize)
	}
	return b
}

// endReader is a body that reports when it has been read to its end.
type endReader struct {
	r     io.Reader
	ended bool
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.ended = true
	}
	return n, err
}

func TestPutStoresTheFileWithItsMetadata(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	tests := []struct {
		name string
		size int
	}{
		{"an empty file is put", 0},
		{"a file of one part is put whole", 1 << 20},
		{"a file of exactly one part is put whole", objects.PartSize},
		{"a file of several parts is uploaded in parts", 2*objects.PartSize + 12345},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spool := t.TempDir()
			store := objects.New(env.S3, env.Bucket, spool)
			want := content(tt.size)
			body := &endReader{r: bytes.NewReader(want)}
			err := store.Put(context.Background(), "tasks/t/0.mp4", "video/mp4", body, func() map[string]string {
				if !body.ended {
					t.Error("metadata asked for before the body ended")
				}
				return map[string]string{"sha256": "abc"}
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := env.Object(context.Background(), "tasks/t/0.mp4")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Body, want) {
				t.Errorf("stored %d bytes that differ from the %d sent", len(got.Body), len(want))
			}
			if got.ContentType != "video/mp4" || got.Metadata["sha256"] != "abc" {
				t.Errorf("content type %s, metadata %v", got.ContentType, got.Metadata)
			}
			assertClean(t, env, spool)
		})
	}
}

func TestAFailedPutLeavesNothingBehind(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	large := 3*objects.PartSize + 1
	broken := errors.New("source reset")
	tests := []struct {
		name   string
		fail   string // the S3 operation that fails, if any
		body   io.Reader
		reason string
	}{
		{"a body that breaks after several parts' worth uploads nothing", "", io.MultiReader(bytes.NewReader(content(large)), iotest.ErrReader(broken)), "source reset"},
		{"a multipart upload that cannot start", "CreateMultipartUpload", bytes.NewReader(content(large)), "start upload"},
		{"a part that fails aborts the upload", "UploadPart", bytes.NewReader(content(large)), "part "},
		{"a completion that fails aborts the upload", "CompleteMultipartUpload", bytes.NewReader(content(large)), "upload tasks/"},
		{"a single put that fails", "PutObject", bytes.NewReader(content(1 << 20)), "put tasks/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := env.S3
			if tt.fail != "" {
				client = s3.New(env.S3.Options(), func(o *s3.Options) { o.APIOptions = append(o.APIOptions, failing(tt.fail)) })
			}
			spool := t.TempDir()
			store := objects.New(client, env.Bucket, spool)
			err := store.Put(context.Background(), "tasks/f/0.mp4", "video/mp4", tt.body, func() map[string]string { return nil })
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v, want one that says %q", err, tt.reason)
			}
			if _, err := env.Object(context.Background(), "tasks/f/0.mp4"); err == nil {
				t.Error("an object was left behind")
			}
			assertClean(t, env, spool)
		})
	}
	t.Run("a spool directory that does not exist fails before any upload", func(t *testing.T) {
		store := objects.New(env.S3, env.Bucket, filepath.Join(t.TempDir(), "missing"))
		err := store.Put(context.Background(), "tasks/m/0.png", "image/png", bytes.NewReader(content(10)), func() map[string]string { return nil })
		if err == nil || !strings.Contains(err.Error(), "spool") {
			t.Errorf("error %v", err)
		}
		if _, err := store.SpoolSpace(); err == nil {
			t.Error("SpoolSpace of a missing directory reported no error")
		}
	})
}

func TestSpoolSpaceIsTheFreeSpaceOfTheSpoolDirectory(t *testing.T) {
	free, err := objects.New(nil, "bucket", t.TempDir()).SpoolSpace()
	if err != nil || free <= 0 {
		t.Errorf("free %d, error %v", free, err)
	}
}

// failing makes the S3 operation named op fail before it is sent, and
// beyond the retryer's reach.
func failing(op string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("failOperation", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if awsmiddleware.GetOperationName(ctx) == op {
				return middleware.InitializeOutput{}, middleware.Metadata{}, &smithy.GenericAPIError{Code: "InternalError", Message: op + " failed"}
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.Before)
	}
}

// assertClean checks that no multipart upload was left open and no spool
// file was left on disk.
func assertClean(tb testing.TB, env *emulators.Env, spool string) {
	tb.Helper()
	if n, err := env.OpenUploads(context.Background()); n != 0 || err != nil {
		tb.Errorf("%d multipart uploads left open, error %v", n, err)
	}
	if left, err := os.ReadDir(spool); err != nil || len(left) != 0 {
		tb.Errorf("spool files left: %v %v", left, err)
	}
}
