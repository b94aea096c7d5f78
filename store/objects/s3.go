package objects

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// PartSize is the multipart part size: objects up to it go in one PUT.
// Each upload in flight holds one part in memory.
const PartSize = 8 << 20

var partPool = sync.Pool{New: func() any { b := make([]byte, PartSize); return &b }}

// s3Store talks to any S3-compatible server. Credentials come from the
// standard AWS chain (environment, shared files, instance roles).
type s3Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ends with "/"
	opts   Options
}

func openS3(ctx context.Context, raw string, opts Options) (*s3Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("open object store: %w", err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("open object store %q: no bucket", raw)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("open object store %q: prefix: %w", raw, err)
		}
		prefix += "/"
	}
	q := u.Query()
	var endpoint, region string
	pathStyle := false
	for k, v := range q {
		switch k {
		case "endpoint":
			endpoint = v[0]
			if e, err := url.Parse(endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return nil, fmt.Errorf("open object store %q: endpoint %q: want http(s)://host[:port]", raw, endpoint)
			}
		case "region":
			region = v[0]
		case "path_style":
			if pathStyle, err = strconv.ParseBool(v[0]); err != nil {
				return nil, fmt.Errorf("open object store %q: path_style %q: want true or false", raw, v[0])
			}
		default:
			return nil, fmt.Errorf("open object store %q: unknown parameter %q (want endpoint, region, path_style)", raw, k)
		}
	}
	var loadOpts []func(*config.LoadOptions) error
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("open object store %q: aws config: %w", raw, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // S3-compatible servers rarely care; the SDK insists
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	return &s3Store{client: client, bucket: u.Host, prefix: prefix, opts: opts}, nil
}

func (s *s3Store) key(key string) (*string, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return aws.String(s.prefix + key), nil
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	bufp := partPool.Get().(*[]byte)
	defer partPool.Put(bufp)
	buf := *bufp
	if size > 0 && size < PartSize {
		buf = buf[:size]
	}
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if size >= 0 && int64(n) != size {
			return fmt.Errorf("put %s: %w: got %d bytes, want %d", key, ErrSizeMismatch, n, size)
		}
		return s.putSingle(ctx, key, k, buf[:n], opts)
	case err != nil:
		return fmt.Errorf("put %s: %w", key, err)
	case size >= 0 && int64(n) == size:
		if err := expectEOF(r, size); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return s.putSingle(ctx, key, k, buf[:n], opts)
	}
	return s.putMultipart(ctx, key, k, r, buf, size, opts)
}

func (s *s3Store) putSingle(ctx context.Context, key string, k *string, body []byte, opts PutOptions) error {
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: k, Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ContentType: aws.String(contentType(opts)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if s.opts.SSE != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.opts.SSE)
	}
	if s.opts.SSEKMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.opts.SSEKMSKeyID)
	}
	if _, err := s.client.PutObject(ctx, in); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// putMultipart streams r in PartSize parts; first holds the first full part.
// Any failure aborts the upload, so no partial object is ever published.
func (s *s3Store) putMultipart(ctx context.Context, key string, k *string, r io.Reader, first []byte, size int64, opts PutOptions) (err error) {
	create := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: k, ContentType: aws.String(contentType(opts)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}
	if s.opts.SSE != "" {
		create.ServerSideEncryption = types.ServerSideEncryption(s.opts.SSE)
	}
	if s.opts.SSEKMSKeyID != "" {
		create.SSEKMSKeyId = aws.String(s.opts.SSEKMSKeyID)
	}
	up, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return fmt.Errorf("put %s: create multipart upload: %w", key, err)
	}
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is done: an abandoned upload holds storage.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: k, UploadId: up.UploadId,
		}); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart upload: %w", aerr))
		}
	}()
	var parts []types.CompletedPart
	var total int64
	part := first
	for num := int32(1); ; num++ {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.bucket), Key: k, UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			return fmt.Errorf("put %s: part %d: %w", key, num, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num), ChecksumCRC32: out.ChecksumCRC32})
		total += int64(len(part))
		if len(part) < PartSize {
			break
		}
		n, rerr := io.ReadFull(r, first[:PartSize])
		if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fmt.Errorf("put %s: %w", key, rerr)
		}
		if n == 0 {
			break
		}
		part = first[:n]
	}
	if size >= 0 && total != size {
		return fmt.Errorf("put %s: %w: got %d bytes, want %d", key, ErrSizeMismatch, total, size)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: k, UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("put %s: complete multipart upload: %w", key, err)
	}
	return nil
}

func (s *s3Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, mapS3Err(err))
	}
	return out.Body, nil
}

func (s *s3Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	if off < 0 || n == 0 {
		return nil, fmt.Errorf("get %s: %w: offset %d length %d", key, ErrInvalidRange, off, n)
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n > 0 {
		rng += strconv.FormatInt(off+n-1, 10)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: k, Range: aws.String(rng)})
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", key, rng, mapS3Err(err))
	}
	return out.Body, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (Info, error) {
	k, err := s.key(key)
	if err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: k})
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, mapS3Err(err))
	}
	info := Info{Key: key, Size: aws.ToInt64(out.ContentLength)}
	if out.LastModified != nil {
		info.ModTime = *out.LastModified
	}
	return info, nil
}

func (s *s3Store) Delete(ctx context.Context, key string) error {
	k, err := s.key(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: k}); err != nil {
		if err := mapS3Err(err); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
	}
	return nil
}

// mapS3Err turns the server's "no such object" and "bad range" answers into
// the package's sentinels, keeping the original error in the chain.
func mapS3Err(err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return errors.Join(ErrNotFound, err)
	}
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "InvalidRange" {
		return errors.Join(ErrInvalidRange, err)
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch re.HTTPStatusCode() {
		case 404:
			return errors.Join(ErrNotFound, err)
		case 416:
			return errors.Join(ErrInvalidRange, err)
		}
	}
	return err
}
