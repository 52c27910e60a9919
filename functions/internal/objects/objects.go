// Package objects writes copied files into the S3 bucket, streaming: a body
// of unknown length goes up in bounded parts, never whole in memory.
package objects

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Client is the part of the S3 API the store uses: the transfer manager's
// calls (PutObject and the multipart ones) and CopyObject.
type Client interface {
	transfermanager.S3APIClient
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

// Part sizing bounds memory: at most Concurrency+1 parts of PartSize are
// buffered per upload, whatever the file's size.
const (
	PartSize    = 8 << 20
	Concurrency = 2
)

// Store writes objects into one bucket.
type Store struct {
	client   Client
	uploader *transfermanager.Client
	bucket   *string
}

// New returns a Store for bucket.
func New(client Client, bucket string) *Store {
	return &Store{
		client: client,
		uploader: transfermanager.New(client, func(o *transfermanager.Options) {
			o.PartSizeBytes = PartSize
			o.MultipartUploadThreshold = PartSize
			o.Concurrency = Concurrency
		}),
		bucket: aws.String(bucket),
	}
}

// Put streams body to key. Metadata that depends on the bytes (a hash) is
// known only once the stream has ended, so meta is called then. A file that
// fits in one part is read whole first and written once, metadata and all.
// A larger one is streamed in parts and its metadata stamped afterwards by
// an in-place copy, the only way S3 can change an object's metadata. A
// failed upload leaves nothing behind: a multipart upload is aborted.
func (s *Store) Put(ctx context.Context, key, contentType string, body io.Reader, meta func() map[string]string) error {
	buf := parts.Get().(*[]byte)
	defer parts.Put(buf)
	n, err := io.ReadFull(body, *buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        s.bucket,
			Key:           aws.String(key),
			Body:          bytes.NewReader((*buf)[:n]),
			ContentLength: aws.Int64(int64(n)),
			ContentType:   aws.String(contentType),
			Metadata:      meta(),
		})
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	case err != nil:
		return err
	}
	_, err = s.uploader.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      s.bucket,
		Key:         aws.String(key),
		Body:        io.MultiReader(bytes.NewReader((*buf)[:n]), body),
		ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("upload %s: %w", key, err)
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            s.bucket,
		Key:               aws.String(key),
		CopySource:        aws.String(copySource(*s.bucket, key)),
		MetadataDirective: types.MetadataDirectiveReplace,
		ContentType:       aws.String(contentType),
		Metadata:          meta(),
	})
	if err != nil {
		return fmt.Errorf("stamp metadata on %s: %w", key, err)
	}
	return nil
}

// parts are the buffers that hold a file's first part.
var parts = sync.Pool{New: func() any {
	b := make([]byte, PartSize)
	return &b
}}

// copySource is bucket/key with each key segment URL-encoded.
func copySource(bucket, key string) string {
	segments := strings.Split(key, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return bucket + "/" + strings.Join(segments, "/")
}
