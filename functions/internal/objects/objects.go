// Package objects writes copied files into the S3 bucket, streaming: a body
// of unknown length goes up in bounded parts, never whole in memory.
package objects

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Client is the part of the S3 API the store uses: the transfer manager's
// multipart calls and CopyObject.
type Client interface {
	transfermanager.S3APIClient
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

// Part sizing bounds memory: at most Concurrency+1 parts of PartSize are
// buffered per upload, whatever the file's size.
const (
	PartSize    = 8 << 20
	Concurrency = 3
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
// known only once the stream has ended, so meta is called then and stamped
// on the object by an in-place copy. A failed upload leaves nothing behind:
// a single part is sent only once read whole, and a multipart upload is
// aborted.
func (s *Store) Put(ctx context.Context, key, contentType string, body io.Reader, meta func() map[string]string) error {
	_, err := s.uploader.UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket:      s.bucket,
		Key:         aws.String(key),
		Body:        body,
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

// copySource is bucket/key with each key segment URL-encoded.
func copySource(bucket, key string) string {
	segments := strings.Split(key, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return bucket + "/" + strings.Join(segments, "/")
}
