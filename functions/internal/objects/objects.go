// Package objects streams copied files into the S3 bucket while they
// download: parts are uploaded as the next ones arrive, so a copy takes as
// long as the slower of the download and the upload, and memory holds only
// the parts in flight, whatever the file's size.
//
// A file's SHA-256 is known only once it has ended, after a multipart
// upload has started (S3 fixes metadata then), so it goes on the object as
// the tag sha256. S3 itself verifies what it stores: a file of one part is
// one PutObject with its SHA-256 checksum (and its sha256 in the metadata
// too, as it is known before the upload); a larger one carries a CRC32
// checksum on every part.
package objects

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/kiehook/kiehook/functions/internal/retry"
)

// Client is the part of the S3 API the store uses: a single PutObject, the
// multipart upload for files larger than one part, the tagging of the
// completed object, and, to clean up after a copy, the listing and
// deletion of objects and the listing and abort of uploads.
type Client interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
	PutObjectTagging(ctx context.Context, in *s3.PutObjectTaggingInput, opts ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, opts ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, opts ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
}

// A file larger than PartSize goes up in parts of PartSize, up to
// Concurrency of them uploading while the next one downloads, as far as
// the Budget allows; S3's smallest part keeps memory low, and S3's 10,000
// parts cover 50 GiB. PartsInFlight parts uploading at once keep S3 busy
// for a copier's whole batch: a part streams at tens of MB/s, and a
// Lambda function's network is not much faster than a handful of them.
const (
	PartSize      = 5 << 20
	Concurrency   = 5
	PartsInFlight = Concurrency + 1
	MaxParts      = 10000
)

// MaxMetadata is the user metadata Put may be given, in bytes of keys and
// values: S3's 2 KB, less the sha256 entry Put adds to one-part files.
const MaxMetadata = 2048 - len("sha256") - sha256.Size*2

// passesOnRetry are the S3 error codes of a 4xx answer that a later try
// can pass (S3's error code list): every other 4xx refuses the object
// itself (AccessDenied, KeyTooLongError, MetadataTooLarge,
// EntityTooLarge, InvalidArgument…), and retrying it would fail again.
var passesOnRetry = map[string]bool{
	"RequestTimeout":   true, // the connection idled: a new one succeeds
	"ExpiredToken":     true, // the role's credentials expired mid-copy: the SDK gets new ones
	"BadDigest":        true, // the body was corrupted on the way: sent again, it matches
	"OperationAborted": true, // a conflicting operation on the bucket was under way
	"SlowDown":         true, // throttling (503 too)
	"NoSuchUpload":     true, // someone aborted the upload (a copier that took it for a dead one's): the next attempt starts a new one
}

// refused makes err permanent when S3 refused the object for good: a 4xx
// answer (but 408 and 429, retry.RefusedForGood) whose code is not one of
// passesOnRetry. Everything else may pass on a retry.
func refused(err error) error {
	var status interface{ HTTPStatusCode() int }
	if !errors.As(err, &status) {
		return err
	}
	code := status.HTTPStatusCode()
	if !retry.RefusedForGood(code) {
		return err
	}
	reason := http.StatusText(code)
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		reason = apiErr.ErrorCode()
	}
	if passesOnRetry[reason] {
		return err
	}
	return &retry.PermanentError{Reason: fmt.Sprintf("S3 refused the object: %d %s", code, reason), Err: err}
}

// Store writes objects into one bucket.
type Store struct {
	client Client
	bucket *string
	parts  *Budget
}

// New returns a Store for bucket whose uploads share the part buffers of
// parts.
func New(client Client, bucket string, parts *Budget) *Store {
	return &Store{client: client, bucket: aws.String(bucket), parts: parts}
}

// PutInput is one object to stream into the bucket.
type PutInput struct {
	Key, ContentType string
	Body             io.Reader
	Metadata         map[string]string
	// Sum is called once Body has ended and returns the SHA-256 of every
	// byte read (the download's own hash): the object's sha256 tag.
	Sum func() []byte
	// Track, when set, is told a multipart upload's id before any part is
	// sent, so that a later attempt can abort it should this process die
	// (see Abort); an error from it stops the Put.
	Track func(uploadID string) error
}

// Put streams in.Body to in.Key. Only io.EOF ends the body: any other
// error, io.ErrUnexpectedEOF of a source cut off included, fails the Put.
// A failed Put leaves nothing it knows of in the bucket: a body that fails
// within its first part uploads nothing, a failed multipart upload is
// aborted and an object that cannot be tagged deleted, each as best it
// can. What an abort or delete that failed, or a request whose answer was
// lost, may leave under the task's prefix, a retry overwrites, and a copy
// that fails for good clears (Clear).
func (s *Store) Put(ctx context.Context, in PutInput) error {
	key, contentType, body, meta, sum, track := in.Key, in.ContentType, in.Body, in.Metadata, in.Sum, in.Track
	first, err := s.parts.Get(ctx)
	if err != nil {
		return fmt.Errorf("put %s: waiting for a part buffer: %w", key, err)
	}
	n, end, err := fill(body, *first)
	if err == nil && !end {
		// A full part may be the whole file: one more byte tells.
		var next [1]byte
		var m int
		m, end, err = fill(body, next[:])
		rest := io.Reader(bytes.NewReader(next[:m]))
		if !end {
			rest = io.MultiReader(rest, body)
		}
		// A reader may return the last byte with io.EOF: that byte is
		// still the file's, which then needs a second part.
		body, end = rest, end && m == 0
	}
	switch {
	case err != nil:
		s.parts.Put(first)
		return fmt.Errorf("read %s: %w", key, err)
	case end:
		defer s.parts.Put(first)
		return s.putOne(ctx, key, contentType, (*first)[:n], meta, sum())
	}
	return s.putParts(ctx, key, contentType, first, body, meta, sum, track)
}

// fill reads body into buf until buf is full or body ends. Unlike
// io.ReadFull it tells the end of the body (io.EOF, and nothing else) from
// a failure: net/http reports a body cut short of its Content-Length, or a
// chunked stream cut off, as io.ErrUnexpectedEOF, which must never pass
// for a file's end.
func fill(body io.Reader, buf []byte) (n int, end bool, err error) {
	for n < len(buf) {
		m, err := body.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// Abort aborts the multipart upload uploadID of key, which a process that
// died left open; an upload that is gone already is no error.
func (s *Store) Abort(ctx context.Context, key, uploadID string) error {
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: s.bucket, Key: aws.String(key), UploadId: aws.String(uploadID)})
	var gone *types.NoSuchUpload
	if err != nil && !errors.As(err, &gone) {
		return fmt.Errorf("abort upload %s of %s: %w", uploadID, key, err)
	}
	return nil
}

// Delete removes an object, whole or never there.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: s.bucket, Key: aws.String(key)}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// DeleteUnder removes every object whose key starts with prefix.
func (s *Store) DeleteUnder(ctx context.Context, prefix string) error {
	pages := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: s.bucket, Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list %s: %w", prefix, err)
		}
		for _, o := range page.Contents {
			if err := s.Delete(ctx, aws.ToString(o.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}

// AbortUnder aborts every multipart upload open under prefix: those a
// copier that died started, tracked or not. Only the holder of the task's
// lease calls it, so none of them is a live copy's.
func (s *Store) AbortUnder(ctx context.Context, prefix string) error {
	in := &s3.ListMultipartUploadsInput{Bucket: s.bucket, Prefix: aws.String(prefix)}
	for {
		page, err := s.client.ListMultipartUploads(ctx, in)
		var apiErr smithy.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
			// gofakes3 answers so for a bucket that never had an upload;
			// S3 lists none.
			return nil
		}
		if err != nil {
			return fmt.Errorf("list uploads under %s: %w", prefix, err)
		}
		for _, up := range page.Uploads {
			if err := s.Abort(ctx, aws.ToString(up.Key), aws.ToString(up.UploadId)); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// Clear removes everything under prefix, once no record will name it:
// the open uploads first, so that none completes after its objects went,
// then the objects.
func (s *Store) Clear(ctx context.Context, prefix string) error {
	if err := s.AbortUnder(ctx, prefix); err != nil {
		return err
	}
	return s.DeleteUnder(ctx, prefix)
}

// putOne puts a file that fits in one part, its checksum and every tag
// with it.
func (s *Store) putOne(ctx context.Context, key, contentType string, file []byte, meta map[string]string, sha []byte) error {
	digest := hex.EncodeToString(sha)
	withSum := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		withSum[k] = v
	}
	withSum["sha256"] = digest
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         s.bucket,
		Key:            aws.String(key),
		Body:           bytes.NewReader(file),
		ContentLength:  aws.Int64(int64(len(file))),
		ContentType:    aws.String(contentType),
		Metadata:       withSum,
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sha)),
		Tagging:        aws.String(tagging(digest)),
	})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, refused(err))
	}
	return nil
}

func tagging(digest string) string { return url.Values{"sha256": {digest}}.Encode() }

// putParts uploads a file larger than one part, whose first part is read,
// while the rest of it downloads. It owns first.
func (s *Store) putParts(ctx context.Context, key, contentType string, first *[]byte, body io.Reader, meta map[string]string, sum func() []byte, track func(string) error) error {
	started, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            s.bucket,
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		s.parts.Put(first)
		return fmt.Errorf("start upload of %s: %w", key, refused(err))
	}
	up := &upload{store: s, key: aws.String(key), id: started.UploadId}
	if track != nil {
		err = track(aws.ToString(started.UploadId))
	}
	if err == nil {
		err = up.send(ctx, first, body)
	} else {
		s.parts.Put(first)
	}
	if err == nil {
		slices.SortFunc(up.done, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          s.bucket,
			Key:             up.key,
			UploadId:        up.id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: up.done},
		})
		if err != nil {
			err = fmt.Errorf("complete: %w", err)
		}
	}
	if err != nil {
		// An open upload keeps its parts, and bills them, until it is
		// aborted. Should the abort fail too, or the process die first,
		// the bucket's lifecycle rule removes it.
		_, _ = s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
			Bucket: s.bucket, Key: up.key, UploadId: up.id,
		})
		return fmt.Errorf("upload %s: %w", key, refused(err))
	}
	// The object is whole; only now is its hash known. An object that
	// cannot be tagged is deleted, so that no object lacks its sha256, nor
	// stays in the bucket with no record naming it when the copy fails
	// for good; a retry puts it again.
	_, err = s.client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket:  s.bucket,
		Key:     up.key,
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("sha256"), Value: aws.String(hex.EncodeToString(sum()))}}},
	})
	if err != nil {
		if delErr := s.Delete(context.WithoutCancel(ctx), key); delErr != nil {
			err = errors.Join(err, fmt.Errorf("and deleting the untagged object failed: %w", delErr))
		}
		return fmt.Errorf("tag %s: %w", key, refused(err))
	}
	return nil
}

// upload is one multipart upload in progress.
type upload struct {
	store *Store
	key   *string
	id    *string

	mu   sync.Mutex
	done []types.CompletedPart
}

// send uploads first, then reads body part by part, uploading each while
// the next one is read: up to Concurrency parts upload at once, from
// buffers the budget has free; with none free, the upload goes on with the
// buffers it holds. The first error stops it; the body's error is the one
// returned when it has one.
func (u *upload) send(ctx context.Context, first *[]byte, body io.Reader) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	parts := u.store.parts
	free := make(chan *[]byte, Concurrency+1) // the buffers held, when not in use
	held := 1
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		for range held {
			parts.Put(<-free)
		}
	}()
	start := func(number int32, part *[]byte, n int) {
		wg.Go(func() {
			defer func() { free <- part }()
			if err := u.part(ctx, number, (*part)[:n]); err != nil {
				cancel(err)
			}
		})
	}
	start(1, first, PartSize)
	var readErr error
	for number := int32(2); ctx.Err() == nil; number++ {
		part := u.next(ctx, free, &held)
		if part == nil {
			continue
		}
		n, end, err := fill(body, *part)
		if err == nil && n > 0 && number > MaxParts {
			err = fmt.Errorf("more than %d parts of %d bytes", MaxParts, PartSize)
		}
		if err != nil {
			free <- part
			readErr = err
			cancel(err)
			break
		}
		if n > 0 {
			start(number, part, n)
		} else {
			free <- part
		}
		if end {
			break
		}
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// next is a buffer to read the next part into: one of the upload's own
// that is free, else a new one while the budget has one and the upload
// holds fewer than Concurrency+1, else the first of its own to come back.
// It is nil once ctx ends.
func (u *upload) next(ctx context.Context, free chan *[]byte, held *int) *[]byte {
	select {
	case part := <-free:
		return part
	default:
	}
	if *held < Concurrency+1 {
		if part := u.store.parts.TryGet(); part != nil {
			*held++
			return part
		}
	}
	select {
	case part := <-free:
		return part
	case <-ctx.Done():
		return nil
	}
}

// part uploads one part, with a CRC32 checksum that S3 verifies.
func (u *upload) part(ctx context.Context, number int32, data []byte) error {
	out, err := u.store.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            u.store.bucket,
		Key:               u.key,
		UploadId:          u.id,
		PartNumber:        aws.Int32(number),
		Body:              bytes.NewReader(data),
		ContentLength:     aws.Int64(int64(len(data))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("part %d: %w", number, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = append(u.done, types.CompletedPart{PartNumber: aws.Int32(number), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	return nil
}
