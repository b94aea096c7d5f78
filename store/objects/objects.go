// Package objects stores recording files: a small streaming interface with a
// local-directory backend (file:DIR) and an S3-compatible backend
// (s3://BUCKET/PREFIX?endpoint=URL&region=R&path_style=true).
//
// A Put either publishes the whole object or nothing: if the reader fails
// (including on purpose, to refuse content that fails a check at its last
// byte), no object appears under the key.
package objects

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Sentinel errors callers decide on.
var (
	ErrNotFound     = errors.New("object not found")
	ErrInvalidKey   = errors.New("invalid object key")
	ErrInvalidRange = errors.New("invalid range")
	// ErrSizeMismatch means the reader gave more or fewer bytes than the
	// size promised to Put.
	ErrSizeMismatch = errors.New("object size mismatch")
)

// Store is object storage for recordings.
type Store interface {
	// Put stores r under key. size is the exact length, or -1 when unknown
	// (streamed with a multipart upload).
	Put(ctx context.Context, key string, r io.Reader, size int64, opts PutOptions) error
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// GetRange reads n bytes from offset off (n < 0: to the end). A range
	// past the end is cut at the end; an offset at or past it is
	// ErrInvalidRange.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// PutOptions describe the object being put.
type PutOptions struct {
	ContentType string // default application/octet-stream
}

// Info describes a stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Options are the storage settings from configuration.
type Options struct {
	// SSE asks the server to encrypt objects at rest: "AES256", "aws:kms"
	// or "aws:kms:dsse". A backend that cannot honour it refuses to open.
	SSE         string
	SSEKMSKeyID string // with aws:kms: the key; "" = the bucket's default
}

func (o Options) validate() error {
	switch o.SSE {
	case "", "AES256", "aws:kms", "aws:kms:dsse":
	default:
		return fmt.Errorf("server-side encryption %q: want AES256, aws:kms or aws:kms:dsse", o.SSE)
	}
	if o.SSEKMSKeyID != "" && !strings.HasPrefix(o.SSE, "aws:kms") {
		return fmt.Errorf("a KMS key id needs server-side encryption aws:kms, not %q", o.SSE)
	}
	return nil
}

// Open returns the store named by url: file:DIR or
// s3://BUCKET[/PREFIX]?endpoint=URL&region=R&path_style=true.
func Open(ctx context.Context, url string, opts Options) (Store, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("open object store: %w", err)
	}
	switch {
	case strings.HasPrefix(url, "file:"):
		return openFile(strings.TrimPrefix(url, "file:"), opts)
	case strings.HasPrefix(url, "s3://"):
		return openS3(ctx, url, opts)
	}
	return nil, fmt.Errorf("open object store %q: want file:DIR or s3://BUCKET?endpoint=URL", url)
}

// MaxKeyLen bounds keys (S3 allows 1024 bytes).
const MaxKeyLen = 1024

// ValidateKey accepts slash-separated keys of letters, digits and "-_.=",
// with no empty, "." or ".." segment and no segment starting with ".", so a
// key can neither escape a directory nor collide with a backend's temporary
// files.
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %q: length must be 1..%d", ErrInvalidKey, key, MaxKeyLen)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("%w: %q: empty segment or one starting with '.'", ErrInvalidKey, key)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '='
			if !ok {
				return fmt.Errorf("%w: %q: character %q not allowed", ErrInvalidKey, key, c)
			}
		}
	}
	return nil
}

func contentType(o PutOptions) string {
	if o.ContentType == "" {
		return "application/octet-stream"
	}
	return o.ContentType
}

// expectEOF checks a reader that already gave size bytes has nothing more.
func expectEOF(r io.Reader, size int64) error {
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	switch {
	case n > 0:
		return fmt.Errorf("%w: reader has more than %d bytes", ErrSizeMismatch, size)
	case err == io.EOF:
		return nil
	default:
		return err
	}
}
