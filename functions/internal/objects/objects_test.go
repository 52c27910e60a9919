package objects_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kiehook/kiehook/functions/internal/objects"
	"github.com/kiehook/kiehook/functions/internal/retry"
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

// hashing is a body that hashes what is read of it, as a download does, and
// reports when it has been read to its end.
type hashing struct {
	r     io.Reader
	all   bytes.Buffer
	ended bool
}

func (b *hashing) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.all.Write(p[:n])
	if err == io.EOF {
		b.ended = true
	}
	return n, err
}

func (b *hashing) sum(tb testing.TB) func() []byte {
	return func() []byte {
		if !b.ended {
			tb.Error("the hash was asked for before the body ended")
		}
		s := sha256.Sum256(b.all.Bytes())
		return s[:]
	}
}

func TestPutStoresTheFileWithItsHashAsATag(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	store := objects.New(env.S3, env.Bucket, testParts)
	tests := []struct {
		name      string
		size      int
		multipart bool
	}{
		{"an empty file is put whole", 0, false},
		{"a file of one part is put whole", 1 << 20, false},
		{"a file of exactly one part is put whole", objects.PartSize, false},
		{"a file one byte over a part is uploaded in parts", objects.PartSize + 1, true},
		{"a file of a few parts is uploaded in parts", 2*objects.PartSize + 12345, true},
		{"a file of more parts than upload at once keeps their order", (objects.Concurrency+3)*objects.PartSize + 1, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("tasks/t%d/0.mp4", i)
			want := content(tt.size)
			digest := sha256.Sum256(want)
			// The last byte comes with io.EOF, as a reader may send it.
			body := &hashing{r: iotest.DataErrReader(bytes.NewReader(want))}
			var tracked []string
			err := store.Put(context.Background(), objects.PutInput{Key: key, ContentType: "video/mp4", Body: body, Metadata: map[string]string{"task-id": "t"}, Sum: body.sum(t), Track: func(id string) error { tracked = append(tracked, id); return nil }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := env.Object(context.Background(), key)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Body, want) {
				t.Errorf("stored %d bytes that differ from the %d sent", len(got.Body), len(want))
			}
			if got.ContentType != "video/mp4" || got.Metadata["task-id"] != "t" || got.Tags["sha256"] != hex.EncodeToString(digest[:]) {
				t.Errorf("content type %s, metadata %v, tags %v", got.ContentType, got.Metadata, got.Tags)
			}
			if hasMeta := got.Metadata["sha256"] != ""; hasMeta == tt.multipart {
				t.Errorf("sha256 metadata %q: it is there exactly when known before the upload starts", got.Metadata["sha256"])
			}
			if (len(tracked) == 1) != tt.multipart {
				t.Errorf("tracked uploads %v", tracked)
			}
			assertNoOpenUpload(t, env)
		})
	}
}

// gate is a body that sends its first parts, then waits for an upload of a
// part to arrive before it sends the rest: it ends only if parts upload
// while the file still downloads.
type gate struct {
	first, rest io.Reader
	open        chan struct{}
}

func (g *gate) Read(p []byte) (int, error) {
	n, err := g.first.Read(p)
	if err != io.EOF {
		return n, err
	}
	select {
	case <-g.open:
	case <-time.After(10 * time.Second):
		return 0, errors.New("no part was uploaded while the body was still downloading")
	}
	return g.rest.Read(p)
}

func TestPartsUploadWhileTheFileDownloads(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	want := content(4 * objects.PartSize)
	g := &gate{first: bytes.NewReader(want[:2*objects.PartSize]), rest: bytes.NewReader(want[2*objects.PartSize:]), open: make(chan struct{})}
	var opened sync.Once // parts upload concurrently
	client := s3.New(env.S3.Options(), func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, on("UploadPart", func() { opened.Do(func() { close(g.open) }) }))
	})
	sum := sha256.Sum256(want)
	if err := objects.New(client, env.Bucket, testParts).Put(context.Background(), objects.PutInput{Key: "tasks/p/0.mp4", ContentType: "video/mp4", Body: g, Sum: func() []byte { return sum[:] }}); err != nil {
		t.Fatal(err)
	}
	if got, err := env.Object(context.Background(), "tasks/p/0.mp4"); err != nil || !bytes.Equal(got.Body, want) {
		t.Errorf("stored object differs: %v", err)
	}
}

func TestAFailedPutLeavesNothingBehind(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	large := 3*objects.PartSize + 1
	broken := errors.New("source reset")
	noTrack := func(string) error { return nil }
	tests := []struct {
		name   string
		fail   string // the S3 operation that fails, if any
		body   io.Reader
		track  func(string) error
		reason string
	}{
		{"a body that breaks in its first part uploads nothing", "", io.MultiReader(bytes.NewReader(content(1<<20)), iotest.ErrReader(broken)), noTrack, "source reset"},
		{"a body that breaks after several parts aborts the upload", "", io.MultiReader(bytes.NewReader(content(large)), iotest.ErrReader(broken)), noTrack, "source reset"},
		// net/http's report of a connection closed before the declared
		// length: a failure, never the file's end.
		{"a body cut off within its first part uploads nothing", "", io.MultiReader(bytes.NewReader(content(1<<20)), iotest.ErrReader(io.ErrUnexpectedEOF)), noTrack, "unexpected EOF"},
		{"a body cut off at a part's end uploads nothing", "", io.MultiReader(bytes.NewReader(content(objects.PartSize)), iotest.ErrReader(io.ErrUnexpectedEOF)), noTrack, "unexpected EOF"},
		{"a body cut off after several parts aborts the upload", "", io.MultiReader(bytes.NewReader(content(large)), iotest.ErrReader(io.ErrUnexpectedEOF)), noTrack, "unexpected EOF"},
		{"a multipart upload that cannot start", "CreateMultipartUpload", bytes.NewReader(content(large)), noTrack, "start upload"},
		{"an upload that cannot be tracked is aborted before any part", "", bytes.NewReader(content(large)), func(string) error { return errors.New("table down") }, "table down"},
		{"a part that fails aborts the upload", "UploadPart", bytes.NewReader(content(large)), noTrack, "part "},
		{"a completion that fails aborts the upload", "CompleteMultipartUpload", bytes.NewReader(content(large)), noTrack, "complete"},
		{"a single put that fails", "PutObject", bytes.NewReader(content(1 << 20)), noTrack, "put tasks/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := env.S3
			if tt.fail != "" {
				client = s3.New(env.S3.Options(), func(o *s3.Options) { o.APIOptions = append(o.APIOptions, failing(tt.fail)) })
			}
			err := objects.New(client, env.Bucket, testParts).Put(context.Background(), objects.PutInput{Key: "tasks/f/0.mp4", ContentType: "video/mp4", Body: tt.body, Sum: func() []byte { return make([]byte, 32) }, Track: tt.track})
			if err == nil || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("error %v, want one that says %q", err, tt.reason)
			}
			if _, err := env.Object(context.Background(), "tasks/f/0.mp4"); err == nil {
				t.Error("an object was left behind")
			}
			assertNoOpenUpload(t, env)
		})
	}
	for _, refusal := range []struct {
		name      string
		fail      func(*middleware.Stack) error
		permanent bool
	}{
		{"a tagging that fails", failing("PutObjectTagging"), false},
		{"a tagging S3 refuses (4xx)", answering("PutObjectTagging", 403, "AccessDenied"), true},
	} {
		t.Run(refusal.name+" is an error and leaves no untagged object behind", func(t *testing.T) {
			client := s3.New(env.S3.Options(), func(o *s3.Options) { o.RetryMaxAttempts = 1; o.APIOptions = append(o.APIOptions, refusal.fail) })
			err := objects.New(client, env.Bucket, testParts).Put(context.Background(), objects.PutInput{Key: "tasks/g/0.mp4", ContentType: "video/mp4", Body: bytes.NewReader(content(large)), Sum: func() []byte { return make([]byte, 32) }, Track: noTrack})
			if err == nil || !strings.Contains(err.Error(), "tag tasks/g/0.mp4") || retry.IsPermanent(err) != refusal.permanent {
				t.Errorf("error %v", err)
			}
			if _, err := env.Object(context.Background(), "tasks/g/0.mp4"); err == nil {
				t.Error("the complete, untagged object is still in the bucket")
			}
			assertNoOpenUpload(t, env)
		})
	}
}

func TestAbortEndsAnUploadADeadProcessLeftOpen(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	store := objects.New(env.S3, env.Bucket, testParts)
	key := "tasks/k/0.mp4"
	started, err := env.S3.CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: &env.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Abort(context.Background(), key, *started.UploadId); err != nil {
		t.Fatal(err)
	}
	assertNoOpenUpload(t, env)
	if err := store.Abort(context.Background(), key, *started.UploadId); err != nil {
		t.Errorf("aborting an upload that is gone: %v", err)
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

// on calls seen once each operation named op has been answered.
func on(op string, seen func()) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("onOperation", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleInitialize(ctx, in)
			if awsmiddleware.GetOperationName(ctx) == op && err == nil {
				seen()
			}
			return out, md, err
		}), middleware.After)
	}
}

func assertNoOpenUpload(tb testing.TB, env *emulators.Env) {
	tb.Helper()
	if n, err := env.OpenUploads(context.Background()); n != 0 || err != nil {
		tb.Errorf("%d multipart uploads left open, error %v", n, err)
	}
}

// answering makes the S3 operation named op answer status with code,
// as S3 would, before it is sent.
func answering(op string, status int, code string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("answer", func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if awsmiddleware.GetOperationName(ctx) != op {
				return next.HandleInitialize(ctx, in)
			}
			return middleware.InitializeOutput{}, middleware.Metadata{}, &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
				Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
				Err:      &smithy.GenericAPIError{Code: code, Message: "injected"},
			}}
		}), middleware.Before)
	}
}

func TestS3RefusalsArePermanentAndTheRestTransient(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	tests := []struct {
		status    int
		code      string
		permanent bool
	}{
		{400, "MetadataTooLarge", true},
		{403, "AccessDenied", true},
		{400, "KeyTooLongError", true},
		{408, "RequestTimeout", false},
		{400, "RequestTimeout", false},
		{400, "ExpiredToken", false},
		{400, "BadDigest", false},
		{409, "OperationAborted", false},
		{404, "NoSuchUpload", false},
		{429, "TooManyRequests", false},
		{503, "SlowDown", false},
		{500, "InternalError", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d %s is permanent: %v", tt.status, tt.code, tt.permanent), func(t *testing.T) {
			client := s3.New(env.S3.Options(), func(o *s3.Options) {
				o.RetryMaxAttempts = 1
				o.APIOptions = append(o.APIOptions, answering("PutObject", tt.status, tt.code), answering("UploadPart", tt.status, tt.code))
			})
			size := 10
			if tt.code == "NoSuchUpload" { // an answer to a part
				size = objects.PartSize + 1
			}
			err := objects.New(client, env.Bucket, testParts).Put(context.Background(), objects.PutInput{Key: "tasks/r/0.png", ContentType: "image/png", Body: bytes.NewReader(content(size)), Sum: func() []byte { return make([]byte, 32) }})
			if err == nil {
				t.Fatal("want an error")
			}
			if got := retry.IsPermanent(err); got != tt.permanent {
				t.Errorf("error %v: permanent %v", err, got)
			}
			if tt.permanent && !strings.Contains(retry.PermanentReason(err), tt.code) {
				t.Errorf("the reason %q does not name %s", retry.PermanentReason(err), tt.code)
			}
		})
	}
}

// testParts is the part budget the tests' uploads share, as a copier's do.
var testParts = objects.NewBudget(16)

func TestUploadsShareOneBudgetOfParts(t *testing.T) {
	env := emulators.New(t, emulators.Options{})
	t.Run("uploads that share a budget of one buffer all complete, one part at a time", func(t *testing.T) {
		budget := objects.NewBudget(1)
		store := objects.New(env.S3, env.Bucket, budget)
		want := content(3*objects.PartSize + 7)
		sum := sha256.Sum256(want)
		errs := make(chan error, 4)
		for i := range 4 {
			go func() {
				errs <- store.Put(context.Background(), objects.PutInput{Key: fmt.Sprintf("tasks/b/%d.mp4", i), ContentType: "video/mp4", Body: bytes.NewReader(want), Sum: func() []byte { return sum[:] }})
			}()
		}
		for range 4 {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("uploads sharing one buffer deadlocked")
			}
		}
		for i := range 4 {
			if got, err := env.Object(context.Background(), fmt.Sprintf("tasks/b/%d.mp4", i)); err != nil || !bytes.Equal(got.Body, want) {
				t.Errorf("object %d differs: %v", i, err)
			}
		}
		if budget.TryGet() == nil {
			t.Error("the buffer was not given back")
		}
	})
	t.Run("every buffer comes back to the budget after uploads that fail", func(t *testing.T) {
		budget := objects.NewBudget(4)
		client := s3.New(env.S3.Options(), func(o *s3.Options) { o.APIOptions = append(o.APIOptions, failing("UploadPart")) })
		store := objects.New(client, env.Bucket, budget)
		for i := range 3 {
			store.Put(context.Background(), objects.PutInput{Key: fmt.Sprintf("tasks/c/%d.mp4", i), ContentType: "video/mp4", Body: bytes.NewReader(content(3 * objects.PartSize)), Sum: func() []byte { return make([]byte, 32) }})
		}
		for i := range 4 {
			if budget.TryGet() == nil {
				t.Fatalf("only %d of 4 buffers came back", i)
			}
		}
	})
	t.Run("a Put that waits for a buffer stops with its context", func(t *testing.T) {
		budget := objects.NewBudget(1)
		held := budget.TryGet()
		defer budget.Put(held)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := objects.New(env.S3, env.Bucket, budget).Put(ctx, objects.PutInput{Key: "tasks/d/0.png", ContentType: "image/png", Body: bytes.NewReader(content(10)), Sum: func() []byte { return make([]byte, 32) }})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v", err)
		}
	})
}
