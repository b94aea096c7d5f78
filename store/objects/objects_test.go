package objects_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/objects/objectstest"
)

func TestFileConformance(t *testing.T) {
	dir := t.TempDir()
	s, err := objects.Open(context.Background(), "file:"+dir, objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objectstest.Conformance(t, s)
	// No temporary file survives a failed or successful put.
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".tmp-") {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

func TestS3Conformance(t *testing.T) {
	v := objectstest.StartVersity(t, "conformance")
	s, err := objects.Open(context.Background(), v.URL("conformance"), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	objectstest.Conformance(t, s)
	// A prefix keeps keys apart inside one bucket.
	p, err := objects.Open(context.Background(), strings.Replace(v.URL("conformance"), "conformance?", "conformance/tenant-x?", 1), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Stat(context.Background(), "c/small.bin"); err == nil {
		t.Fatal("prefixed store sees unprefixed keys")
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		url  string
		opts objects.Options
		want string
	}{
		{"ftp://x", objects.Options{}, "want file:DIR or s3://"},
		{"file:", objects.Options{}, "needs a directory"},
		{"file:" + t.TempDir(), objects.Options{SSE: "AES256"}, "cannot be applied to local files"},
		{"s3://b?endpoint=http://127.0.0.1:1", objects.Options{SSE: "rot13"}, "want AES256"},
		{"s3://b?endpoint=http://127.0.0.1:1", objects.Options{SSE: "AES256", SSEKMSKeyID: "k"}, "needs server-side encryption aws:kms"},
		{"s3://?endpoint=http://127.0.0.1:1", objects.Options{}, "no bucket"},
		{"s3://b?endpoint=127.0.0.1:1", objects.Options{}, "want http(s)://host"},
		{"s3://b?path_style=maybe", objects.Options{}, "path_style"},
		{"s3://b?bogus=1", objects.Options{}, "unknown parameter"},
		{"s3://b/../x", objects.Options{}, "prefix"},
	} {
		_, err := objects.Open(ctx, c.url, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("open %q %+v: %v, want error containing %q", c.url, c.opts, err, c.want)
		}
	}
}

// TestS3ServerSideEncryptionRequested checks the configured encryption goes
// out on every write request (versitygw accepts but ignores it, so a fake
// server records the headers).
func TestS3ServerSideEncryptionRequested(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]string{} // request kind -> SSE headers
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		kind := r.Method
		switch {
		case r.URL.Query().Has("uploads"):
			kind = "create"
			fmt.Fprint(w, `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId></InitiateMultipartUploadResult>`)
		case r.URL.Query().Has("partNumber"):
			kind = "part"
			w.Header().Set("ETag", `"e"`)
		case r.URL.Query().Has("uploadId"):
			kind = "complete"
			fmt.Fprint(w, `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>k</Key><ETag>"e"</ETag></CompleteMultipartUploadResult>`)
		}
		mu.Lock()
		seen[kind] = r.Header.Get("X-Amz-Server-Side-Encryption") + "|" + r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
		mu.Unlock()
	}))
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	s, err := objects.Open(context.Background(), "s3://b?region=us-east-1&path_style=true&endpoint="+srv.URL,
		objects.Options{SSE: "aws:kms", SSEKMSKeyID: "key-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "small", strings.NewReader("secret"), 6, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	big := strings.NewReader(strings.Repeat("x", objects.PartSize+1))
	if err := s.Put(context.Background(), "big", big, -1, objects.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"PUT", "create"} {
		if seen[kind] != "aws:kms|key-1" {
			t.Errorf("%s request carried SSE headers %q, want aws:kms|key-1 (all: %v)", kind, seen[kind], seen)
		}
	}
}
