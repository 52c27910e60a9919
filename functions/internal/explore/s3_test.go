package explore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// object is what the bucket holds of a key: its length and SHA-256, not
// its bytes.
type object struct {
	size   int64
	sha256 string
	tags   string
}

// mpu is an open multipart upload.
type mpu struct {
	key   string
	parts map[int32][]byte
}

// s3Fake is the bucket, as objects.Client sees it.
type s3Fake struct {
	w       *world
	objects map[string]object
	uploads map[string]*mpu // by upload id
	ids     int
}

func newS3(w *world) *s3Fake {
	return &s3Fake{w: w, objects: map[string]object{}, uploads: map[string]*mpu{}}
}

func (f *s3Fake) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	body, err := io.ReadAll(in.Body)
	c := f.w.call("PutObject "+key, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	if err != nil {
		c.end("body failed")
		return nil, err
	}
	sum := sha256.Sum256(body)
	if want := aws.ToString(in.ChecksumSHA256); want != "" && want != base64.StdEncoding.EncodeToString(sum[:]) {
		c.end("BadDigest")
		return nil, fmt.Errorf("BadDigest: the SHA-256 does not match the body")
	}
	f.objects[key] = object{size: int64(len(body)), sha256: hex.EncodeToString(sum[:]), tags: aws.ToString(in.Tagging)}
	c.end("stored")
	return &s3.PutObjectOutput{}, nil
}

func (f *s3Fake) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	key := aws.ToString(in.Key)
	c := f.w.call("CreateMultipartUpload "+key, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	f.ids++
	id := "u" + strconv.Itoa(f.ids)
	f.uploads[id] = &mpu{key: key, parts: map[int32][]byte{}}
	c.end(id, id)
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *s3Fake) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	body, err := io.ReadAll(in.Body)
	c := f.w.call(fmt.Sprintf("UploadPart %s #%d", aws.ToString(in.Key), aws.ToInt32(in.PartNumber)), 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	up := f.uploads[aws.ToString(in.UploadId)]
	if up == nil || err != nil {
		c.end("NoSuchUpload")
		return nil, &types.NoSuchUpload{}
	}
	up.parts[aws.ToInt32(in.PartNumber)] = body
	c.end("uploaded")
	return &s3.UploadPartOutput{ETag: aws.String(strconv.Itoa(int(aws.ToInt32(in.PartNumber))))}, nil
}

func (f *s3Fake) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	c := f.w.call("CompleteMultipartUpload "+aws.ToString(in.Key), 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	id := aws.ToString(in.UploadId)
	up := f.uploads[id]
	if up == nil {
		c.end("NoSuchUpload")
		return nil, &types.NoSuchUpload{}
	}
	var whole bytes.Buffer
	for _, p := range in.MultipartUpload.Parts {
		whole.Write(up.parts[aws.ToInt32(p.PartNumber)])
	}
	sum := sha256.Sum256(whole.Bytes())
	f.objects[up.key] = object{size: int64(whole.Len()), sha256: hex.EncodeToString(sum[:])}
	delete(f.uploads, id)
	c.end("completed")
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *s3Fake) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	id := aws.ToString(in.UploadId)
	c := f.w.call("AbortMultipartUpload "+aws.ToString(in.Key)+" "+id, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	if f.uploads[id] == nil {
		c.end("NoSuchUpload")
		return nil, &types.NoSuchUpload{}
	}
	delete(f.uploads, id)
	c.end("aborted")
	return &s3.AbortMultipartUploadOutput{}, nil
}

func (f *s3Fake) PutObjectTagging(ctx context.Context, in *s3.PutObjectTaggingInput, _ ...func(*s3.Options)) (*s3.PutObjectTaggingOutput, error) {
	key := aws.ToString(in.Key)
	c := f.w.call("PutObjectTagging "+key, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	o, ok := f.objects[key]
	if !ok {
		c.end("NoSuchKey")
		return nil, &types.NoSuchKey{}
	}
	var tags []string
	for _, t := range in.Tagging.TagSet {
		tags = append(tags, aws.ToString(t.Key)+"="+aws.ToString(t.Value))
	}
	o.tags = strings.Join(tags, "&")
	f.objects[key] = o
	c.end("tagged")
	return &s3.PutObjectTaggingOutput{}, nil
}

func (f *s3Fake) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, _ ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	key := aws.ToString(in.Key)
	c := f.w.call("DeleteObject "+key, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	delete(f.objects, key)
	c.end("deleted")
	return &s3.DeleteObjectOutput{}, nil
}

func (f *s3Fake) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	prefix := aws.ToString(in.Prefix)
	c := f.w.call("ListObjectsV2 "+prefix, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	out := &s3.ListObjectsV2Output{IsTruncated: aws.Bool(false)}
	keys := f.keysUnder(prefix)
	for _, k := range keys {
		out.Contents = append(out.Contents, types.Object{Key: aws.String(k), Size: aws.Int64(f.objects[k].size)})
	}
	c.end(orNone(strings.Join(keys, ",")), keys)
	return out, nil
}

func (f *s3Fake) ListMultipartUploads(ctx context.Context, in *s3.ListMultipartUploadsInput, _ ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	prefix := aws.ToString(in.Prefix)
	c := f.w.call("ListMultipartUploads "+prefix, 0, nil)
	if c.failed() {
		c.end("")
		return nil, c.err()
	}
	out := &s3.ListMultipartUploadsOutput{IsTruncated: aws.Bool(false)}
	var names []string
	for _, id := range f.uploadsUnder(prefix) {
		out.Uploads = append(out.Uploads, types.MultipartUpload{Key: aws.String(f.uploads[id].key), UploadId: aws.String(id)})
		names = append(names, f.uploads[id].key+" "+id)
	}
	c.end(orNone(strings.Join(names, ",")), names)
	return out, nil
}

func (f *s3Fake) keysUnder(prefix string) []string {
	var keys []string
	for k := range f.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func (f *s3Fake) uploadsUnder(prefix string) []string {
	var ids []string
	for id, up := range f.uploads {
		if strings.HasPrefix(up.key, prefix) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}
