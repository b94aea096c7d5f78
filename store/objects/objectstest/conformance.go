// Package objectstest holds what tests of object stores share: one
// conformance suite every backend must pass, and a real S3-compatible server
// (versitygw) started on a free port.
package objectstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"

	"github.com/blackbox-gw/blackbox/store/objects"
)

// Conformance checks the behaviour every objects.Store promises.
func Conformance(t *testing.T, s objects.Store) {
	ctx := context.Background()
	t.Run("PutGetStat", func(t *testing.T) {
		body := random(t, 1000)
		mustPut(t, s, "c/small.bin", body, int64(len(body)))
		if got := mustGet(t, s, "c/small.bin"); !bytes.Equal(got, body) {
			t.Fatalf("get returned %d bytes, not what was put", len(got))
		}
		info, err := s.Stat(ctx, "c/small.bin")
		if err != nil || info.Size != int64(len(body)) || info.Key != "c/small.bin" || info.ModTime.IsZero() {
			t.Fatalf("stat: %+v %v", info, err)
		}
		// Overwrite replaces.
		body2 := random(t, 10)
		mustPut(t, s, "c/small.bin", body2, -1)
		if got := mustGet(t, s, "c/small.bin"); !bytes.Equal(got, body2) {
			t.Fatal("overwrite did not replace the object")
		}
		mustPut(t, s, "c/empty", nil, 0)
		if got := mustGet(t, s, "c/empty"); len(got) != 0 {
			t.Fatalf("empty object has %d bytes", len(got))
		}
	})
	t.Run("Multipart", func(t *testing.T) {
		body := random(t, objects.PartSize*2+12345)
		for _, size := range []int64{-1, int64(len(body))} {
			mustPut(t, s, "c/big.bin", body, size)
			if got := mustGet(t, s, "c/big.bin"); !bytes.Equal(got, body) {
				t.Fatalf("size %d: big object round trip differs (%d bytes back)", size, len(got))
			}
		}
		exact := body[:objects.PartSize]
		mustPut(t, s, "c/exact.bin", exact, -1)
		if got := mustGet(t, s, "c/exact.bin"); !bytes.Equal(got, exact) {
			t.Fatal("object of exactly one part differs")
		}
	})
	t.Run("Range", func(t *testing.T) {
		body := random(t, 4096)
		mustPut(t, s, "c/range.bin", body, int64(len(body)))
		for _, c := range []struct{ off, n, wantOff, wantN int64 }{
			{0, 10, 0, 10}, {100, 1000, 100, 1000}, {4000, -1, 4000, 96}, {4000, 500, 4000, 96}, {4095, 1, 4095, 1},
		} {
			rc, err := s.GetRange(ctx, "c/range.bin", c.off, c.n)
			if err != nil {
				t.Fatalf("range %d+%d: %v", c.off, c.n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, body[c.wantOff:c.wantOff+c.wantN]) {
				t.Fatalf("range %d+%d: got %d bytes (%v)", c.off, c.n, len(got), err)
			}
		}
		if _, err := s.GetRange(ctx, "c/range.bin", 4096, 10); !errors.Is(err, objects.ErrInvalidRange) {
			t.Fatalf("range at end: %v", err)
		}
		if _, err := s.GetRange(ctx, "c/range.bin", -1, 10); !errors.Is(err, objects.ErrInvalidRange) {
			t.Fatalf("negative offset: %v", err)
		}
	})
	t.Run("NotFoundAndDelete", func(t *testing.T) {
		if _, err := s.Stat(ctx, "c/missing"); !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("stat missing: %v", err)
		}
		if _, err := s.Get(ctx, "c/missing"); !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		if _, err := s.GetRange(ctx, "c/missing", 0, 1); !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("range of missing: %v", err)
		}
		mustPut(t, s, "c/del", []byte("x"), 1)
		if err := s.Delete(ctx, "c/del"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "c/del"); !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("deleted object still there: %v", err)
		}
		if err := s.Delete(ctx, "c/del"); err != nil {
			t.Fatalf("deleting a missing key: %v", err)
		}
	})
	t.Run("InvalidKeys", func(t *testing.T) {
		for _, k := range []string{"", "../x", "a/../../x", "/abs", "a//b", ".hidden", "a/.tmp-1", "a/./b", "with space", "a\\b", "a/b/"} {
			if err := s.Put(ctx, k, bytes.NewReader([]byte("x")), 1, objects.PutOptions{}); !errors.Is(err, objects.ErrInvalidKey) {
				t.Errorf("put %q: %v, want ErrInvalidKey", k, err)
			}
			if _, err := s.Get(ctx, k); !errors.Is(err, objects.ErrInvalidKey) {
				t.Errorf("get %q: %v", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, objects.ErrInvalidKey) {
				t.Errorf("stat %q: %v", k, err)
			}
			if err := s.Delete(ctx, k); !errors.Is(err, objects.ErrInvalidKey) {
				t.Errorf("delete %q: %v", k, err)
			}
		}
	})
	t.Run("FailedPutPublishesNothing", func(t *testing.T) {
		old := []byte("previous version")
		mustPut(t, s, "c/keep", old, int64(len(old)))
		boom := errors.New("refused at the last byte")
		for _, n := range []int{100, objects.PartSize + 100} {
			for _, size := range []int64{int64(n), -1} {
				r := &failingReader{r: bytes.NewReader(random(t, n)), left: n - 1, err: boom}
				if err := s.Put(ctx, "c/keep", r, size, objects.PutOptions{}); !errors.Is(err, boom) {
					t.Fatalf("put of %d bytes (size %d) failing at its end: %v", n, size, err)
				}
				if got := mustGet(t, s, "c/keep"); !bytes.Equal(got, old) {
					t.Fatalf("failed put of %d bytes replaced the object", n)
				}
				r = &failingReader{r: bytes.NewReader(random(t, n)), left: n - 1, err: boom}
				if err := s.Put(ctx, "c/never", r, size, objects.PutOptions{}); !errors.Is(err, boom) {
					t.Fatalf("put failing: %v", err)
				}
				if _, err := s.Stat(ctx, "c/never"); !errors.Is(err, objects.ErrNotFound) {
					t.Fatalf("failed put published an object: %v", err)
				}
			}
		}
	})
	t.Run("SizeMismatch", func(t *testing.T) {
		for _, c := range []struct{ have, claim int }{{5, 10}, {10, 5}, {objects.PartSize + 10, objects.PartSize + 20}} {
			err := s.Put(ctx, "c/size", bytes.NewReader(make([]byte, c.have)), int64(c.claim), objects.PutOptions{})
			if !errors.Is(err, objects.ErrSizeMismatch) {
				t.Fatalf("%d bytes claimed as %d: %v", c.have, c.claim, err)
			}
			if _, err := s.Stat(ctx, "c/size"); !errors.Is(err, objects.ErrNotFound) {
				t.Fatalf("size mismatch published an object: %v", err)
			}
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "c/cancelled", bytes.NewReader([]byte("x")), 1, objects.PutOptions{}); err == nil {
			t.Fatal("put with a cancelled context succeeded")
		}
		if _, err := s.Stat(ctx, "c/cancelled"); !errors.Is(err, objects.ErrNotFound) {
			t.Fatalf("cancelled put published an object: %v", err)
		}
	})
}

// failingReader returns err once left bytes have been read.
type failingReader struct {
	r    io.Reader
	left int
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left <= 0 {
		return 0, f.err
	}
	if len(p) > f.left {
		p = p[:f.left]
	}
	n, err := f.r.Read(p)
	f.left -= n
	return n, err
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t *testing.T, s objects.Store, key string, body []byte, size int64) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(body), size, objects.PutOptions{ContentType: "application/octet-stream"}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func mustGet(t *testing.T, s objects.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}
