package recorder

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
	"github.com/blackbox-gw/blackbox/store/objects/objectstest"
)

// TestS3Recording records tone calls into a real S3 server (versitygw): one
// plain, and one during which the server goes down mid-call and comes back
// after the call: the recording arrives once.
func TestS3Recording(t *testing.T) {
	v := objectstest.StartVersity(t, "recordings")
	e := newEnv(t)
	objs, err := objects.Open(context.Background(), v.URL("recordings"), objects.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := e.manager(t, func(o *Options) {
		o.Objects = objs
		o.UploadAttempts = 50
		o.Backoff = func(int) time.Duration { return 100 * time.Millisecond }
	})
	run(t, m)

	rec, callLen := toneCall(t, m, e.tenantA, 2*time.Second, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 15*time.Second)
	checkTones(t, objs, row, callLen)
	if row.Attempts != 1 {
		t.Fatalf("attempts %d", row.Attempts)
	}

	// Outage: S3 stops one second into the call.
	var stopping sync.WaitGroup
	var once sync.Once
	rec, callLen = toneCall(t, m, e.tenantA, 2*time.Second, func(elapsed time.Duration) {
		if elapsed > time.Second {
			once.Do(func() { stopping.Go(v.Stop) })
		}
	})
	stopping.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r, _ := e.scopeA.Recording(context.Background(), rec.ID())
		if r.Attempts >= 2 && r.State == store.RecordingUploading {
			break
		}
		if r.State != store.RecordingUploading || time.Now().After(deadline) {
			t.Fatalf("during the outage: %+v", r)
		}
		time.Sleep(20 * time.Millisecond)
	}
	v.Start()
	row = waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 15*time.Second)
	checkTones(t, objs, row, callLen)
	if row.Attempts < 3 || row.Truncated {
		t.Fatalf("after the outage: %+v", row)
	}
	// One object per recording in the bucket, whatever the retries did.
	var files []string
	filepath.Walk(filepath.Join(v.Dir(), "recordings"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Ext(p) == ".wav" {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 2 {
		t.Fatalf("bucket holds %d recordings, want 2: %v", len(files), files)
	}
	if mm, err := Verify(context.Background(), e.db, objs, e.scopeA, ""); err != nil || len(mm) != 0 {
		t.Fatalf("verify: %+v %v", mm, err)
	}
}
