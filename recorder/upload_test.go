package recorder

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
)

// TestUploadJobDeadLetterAndJobsRetry: the upload job of a recording that
// cannot be stored is dead-lettered with the recording, visible as a dead
// job of the recording's tenant keyed by its id; retrying the job (what
// `blackbox jobs retry` does) stores it and clears the failed state.
func TestUploadJobDeadLetterAndJobsRetry(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	flaky := &flakyStore{Store: e.objs, failPuts: -1}
	m := e.manager(t, func(o *Options) { o.Objects = flaky })
	run(t, m)
	rec, callLen := toneCall(t, m, e.tenantB, time.Second, nil)
	waitState(t, e.scopeB, rec.ID(), store.RecordingFailed, 10*time.Second)

	var dead []jobs.Info
	for deadline := time.Now().Add(5 * time.Second); len(dead) == 0; {
		// The recording is marked failed just before the queue records the
		// job as dead.
		var err error
		if dead, err = m.opts.Jobs.List(ctx, jobs.ListFilter{Dead: true}); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead job")
		}
		time.Sleep(10 * time.Millisecond)
	}
	j := dead[0]
	if len(dead) != 1 || j.Kind != UploadKind || j.Key != rec.ID() || j.TenantID != e.tenantB || j.Queue != jobs.LocalQueue("n1") ||
		j.Attempt != 3 || j.State != jobs.StateDiscarded || j.LastError == "" {
		t.Fatalf("dead jobs %+v", dead)
	}
	if n, _ := m.opts.Jobs.DeadCount(ctx); n != 1 {
		t.Fatalf("dead count %d", n)
	}
	if failed, _ := e.scopeB.Recordings(ctx, store.RecordingFilter{Failed: true}); len(failed) != 1 {
		t.Fatalf("failed recordings %d", len(failed))
	}

	flaky.set(0)
	if _, err := m.opts.Jobs.Retry(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	row := waitState(t, e.scopeB, rec.ID(), store.RecordingStored, 10*time.Second)
	checkTones(t, e.objs, row, callLen)
	if row.LastError != "" || row.Attempts != 4 {
		t.Fatalf("stored row after retry: %+v", row)
	}
	if failed, _ := e.scopeB.Recordings(ctx, store.RecordingFilter{Failed: true}); len(failed) != 0 {
		t.Fatal("still listed as failed")
	}
	if _, err := os.Stat(rec.path); !os.IsNotExist(err) {
		t.Fatalf("spool kept after the upload: %v", err)
	}
	waitJob(t, m.opts.Jobs, j.ID, jobs.StateCompleted)
}

// waitJob polls a job until it reaches state: a job's effect is committed
// just before its new state.
func waitJob(t *testing.T, c *jobs.Client, id int64, state jobs.State) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		in, err := c.Get(context.Background(), id)
		if err == nil && in.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: %+v (%v), want %s", id, in, err, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUploadRunsOnce: queueing a stored recording's upload again adds no
// job, and running its job again (a crash between storing and recording the
// job's completion) uploads nothing.
func TestUploadRunsOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	flaky := &flakyStore{Store: e.objs}
	m := e.manager(t, func(o *Options) { o.Objects = flaky })
	run(t, m)
	rec, _ := toneCall(t, m, e.tenantA, 500*time.Millisecond, nil)
	row := waitState(t, e.scopeA, rec.ID(), store.RecordingStored, 10*time.Second)
	list, _ := m.opts.Jobs.List(ctx, jobs.ListFilter{Kind: UploadKind})
	if len(list) != 1 {
		t.Fatalf("upload jobs %+v", list)
	}
	waitJob(t, m.opts.Jobs, list[0].ID, jobs.StateCompleted)
	if err := m.enqueueUpload(ctx, e.scopeA, rec.ID(), 0, 0); err == nil {
		t.Fatal("a completed upload was queued again without complaint")
	}
	if again, _ := m.opts.Jobs.List(ctx, jobs.ListFilter{Kind: UploadKind}); len(again) != 1 {
		t.Fatalf("upload jobs after queueing again: %+v", again)
	}
	err := m.uploadJob(ctx, jobs.Job[uploadArgs]{ID: list[0].ID, Key: rec.ID(), Args: uploadArgs{RecordingID: rec.ID()},
		Scope: e.scopeA, Attempt: 2, MaxAttempts: 3})
	if err != nil || flaky.putCount() != 1 {
		t.Fatalf("second run: %v, %d puts", err, flaky.putCount())
	}
	if again, _ := e.scopeA.Recording(ctx, rec.ID()); again.Attempts != row.Attempts || again.SHA256 != row.SHA256 {
		t.Fatalf("second run changed the row: %+v", again)
	}
	// Another tenant's scope cannot reach the recording through a job.
	err = m.uploadJob(ctx, jobs.Job[uploadArgs]{ID: 99, Key: rec.ID(), Args: uploadArgs{RecordingID: rec.ID()},
		Scope: e.scopeB, Attempt: 1, MaxAttempts: 3})
	if err == nil || flaky.putCount() != 1 {
		t.Fatalf("job in the wrong tenant: %v", err)
	}
}

func TestNewNeedsMatchingJobs(t *testing.T) {
	e := newEnv(t)
	jc, err := jobs.New(jobs.Options{DB: e.db, Node: "other", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{SpoolDir: e.spool, Objects: e.objs, DB: e.db, Jobs: jc, Node: "n1"}); err == nil {
		t.Fatal("a job client of another node accepted: uploads would run where the spool is not")
	}
	if _, err := New(Options{SpoolDir: e.spool, Objects: e.objs, DB: e.db, Node: "n1"}); err == nil {
		t.Fatal("no job client accepted")
	}
}

func TestUploadTimeoutGrowsWithSize(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, nil)
	floor := max(m.opts.Jobs.AttemptTimeout(), time.Minute)
	if got := m.uploadTimeout(uploadArgs{Bytes: 100 << 10}); got != floor {
		t.Fatalf("a short recording gets %v, want %v", got, floor)
	}
	hour := int64(8000 * 4 * 3600) // an hour of 8 kHz 16-bit stereo
	if got := m.uploadTimeout(uploadArgs{Bytes: hour}); got < 7*time.Minute || got > 9*time.Minute {
		t.Fatalf("an hour's recording gets %v", got)
	}
}
