// Package objects writes copied files into the S3 bucket. A file is spooled
// to local disk as it streams in, then uploaded from there with all of its
// metadata at once.
//
// Why spool: S3 fixes an object's metadata when its upload starts, but the
// sha256 metadata of a stream is known only when the stream ends. Streaming
// straight into a multipart upload would need a second, in-place CopyObject
// to stamp the hash: twice the writes, and CopyObject refuses objects over
// 5 GiB. From the spool the upload knows its length and its metadata up
// front, nothing reaches the bucket before the whole file has arrived, and
// the parts are read from the spool by section, so memory stays the same
// whatever the file's size. (The transfer manager copies every part into a
// memory buffer even from a file, which is why the parts are sent here.)
package objects

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// Client is the part of the S3 API the store uses: a single PutObject, and
// the multipart upload for files larger than one part.
type Client interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// A file larger than PartSize goes up in parts of PartSize, Concurrency of
// them at once. 8 MiB keeps a part's retry cheap and, with the 10,000 parts
// S3 allows, covers 80 GiB, more than a Lambda's /tmp holds.
const (
	PartSize    = 16 << 20
	Concurrency = 2
)

// Store writes objects into one bucket.
type Store struct {
	client   Client
	bucket   *string
	spoolDir string
}

// New returns a Store for bucket that spools files in spoolDir, or in the
// system's temporary directory (a Lambda's /tmp) when spoolDir is empty.
func New(client Client, bucket, spoolDir string) *Store {
	return &Store{client: client, bucket: aws.String(bucket), spoolDir: spoolDir}
}

// SpoolSpace is how many bytes the spool directory's file system has free.
func (s *Store) SpoolSpace() (int64, error) {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(s.dir(), &fs); err != nil {
		return 0, fmt.Errorf("spool directory: %w", err)
	}
	return int64(fs.Bavail) * int64(fs.Bsize), nil
}

func (s *Store) dir() string {
	if s.spoolDir == "" {
		return os.TempDir()
	}
	return s.spoolDir
}

// Put copies body to key. meta is called once body has ended, so it may
// depend on every byte (a hash). A failed Put leaves nothing in the bucket:
// a body that fails uploads nothing, and a failed multipart upload is
// aborted.
func (s *Store) Put(ctx context.Context, key, contentType string, body io.Reader, meta func() map[string]string) error {
	spool, err := os.CreateTemp(s.dir(), "kiehook-spool-*")
	if err != nil {
		return fmt.Errorf("spool %s: %w", key, err)
	}
	defer spool.Close()
	// Unlinked at once, the file's space comes back when it is closed, even
	// when the process dies mid-copy.
	if err := os.Remove(spool.Name()); err != nil {
		return fmt.Errorf("spool %s: %w", key, err)
	}
	size, err := io.Copy(spool, body)
	if err != nil {
		return fmt.Errorf("spool %s: %w", key, err)
	}
	if size <= PartSize {
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        s.bucket,
			Key:           aws.String(key),
			Body:          io.NewSectionReader(spool, 0, size),
			ContentLength: aws.Int64(size),
			ContentType:   aws.String(contentType),
			Metadata:      meta(),
		})
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	}
	return s.putParts(ctx, key, contentType, spool, size, meta())
}

// putParts uploads a file larger than one part as a multipart upload.
func (s *Store) putParts(ctx context.Context, key, contentType string, file io.ReaderAt, size int64, meta map[string]string) error {
	started, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            s.bucket,
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		Metadata:          meta,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("start upload of %s: %w", key, err)
	}
	parts, err := s.uploadParts(ctx, key, started.UploadId, file, size)
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          s.bucket,
			Key:             aws.String(key),
			UploadId:        started.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err == nil {
		return nil
	}
	// An open upload keeps its parts, and bills them, until it is aborted.
	// Should the abort fail too, the bucket's lifecycle rule removes it.
	_, _ = s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
		Bucket: s.bucket, Key: aws.String(key), UploadId: started.UploadId,
	})
	return fmt.Errorf("upload %s: %w", key, err)
}

// uploadParts sends the file's parts, Concurrency at once, each read from
// the file by section: the SDK can rewind it to retry, and no part is held in
// memory.
func (s *Store) uploadParts(ctx context.Context, key string, uploadID *string, file io.ReaderAt, size int64) ([]types.CompletedPart, error) {
	parts := make([]types.CompletedPart, (size+PartSize-1)/PartSize)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(Concurrency)
	for i := range parts {
		g.Go(func() error {
			number := aws.Int32(int32(i + 1))
			offset := int64(i) * PartSize
			length := min(PartSize, size-offset)
			out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket:            s.bucket,
				Key:               aws.String(key),
				UploadId:          uploadID,
				PartNumber:        number,
				Body:              io.NewSectionReader(file, offset, length),
				ContentLength:     aws.Int64(length),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				return fmt.Errorf("part %d: %w", *number, err)
			}
			parts[i] = types.CompletedPart{PartNumber: number, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32}
			return nil
		})
	}
	return parts, g.Wait()
}
