package recorder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/jobs"
)

// uploadArgs is the durable job that uploads one recording from the spool
// of the node that recorded it. Its key is the recording id, so a recording
// has one upload job however often it is enqueued; the tenant comes from
// the recording's row.
type uploadArgs struct {
	RecordingID string `json:"recording_id"`
	Bytes       int64  `json:"bytes,omitempty"` // the object's size when queued: sets the attempt's timeout
}

// UploadKind is the job kind of recording uploads (`blackbox jobs list`).
const UploadKind = "recording.upload"

func (uploadArgs) Kind() string { return UploadKind }

func (m *Manager) registerUploads() error {
	return jobs.Register(m.opts.Jobs, jobs.Kind[uploadArgs]{
		Work:        m.uploadJob,
		Dead:        m.uploadDead,
		MaxAttempts: m.opts.UploadAttempts,
		Backoff:     m.opts.Backoff,
		Timeout:     m.uploadTimeout,
	})
}

// uploadSlowestRate is the uplink an upload attempt is given time for: a
// long call's recording (115 MB an hour) must not time out on a branch
// office's line and be dead-lettered for it.
const uploadSlowestRate = 256 << 10 // bytes per second

// uploadTimeout is an attempt's time limit: a minute plus its bytes at the
// slowest rate, and never less than the job client's.
func (m *Manager) uploadTimeout(a uploadArgs) time.Duration {
	return max(m.opts.Jobs.AttemptTimeout(), time.Minute+time.Duration(a.Bytes/uploadSlowestRate)*time.Second)
}

// enqueueUpload makes sure the recording has an upload job that will run:
// it adds one, or gives a dead-lettered one a fresh attempt, or leaves a
// waiting or running one alone. The job goes to this node's queue: the
// spool is here.
//
// A job's last failed attempt marks the recording failed just before the
// queue records the job as dead; settle > 0 waits up to that long for a
// running job to settle, so a retry issued in between is not lost.
func (m *Manager) enqueueUpload(ctx context.Context, scope *store.Scope, id string, bytes int64, settle time.Duration) error {
	deadline := time.Now().Add(settle)
	in, added, err := jobs.Enqueue(ctx, m.opts.Jobs, scope, id, uploadArgs{RecordingID: id, Bytes: bytes}, jobs.EnqueueOptions{Local: true})
	for err == nil && in.State == jobs.StateRunning && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		in, err = m.opts.Jobs.Get(ctx, in.ID)
	}
	if err != nil {
		return fmt.Errorf("queue upload of %s: %w", id, err)
	}
	switch {
	case added:
	case in.State.Dead():
		if _, err := m.opts.Jobs.Retry(ctx, in.ID); err != nil {
			return fmt.Errorf("retry upload job %d of %s: %w", in.ID, id, err)
		}
	case in.State == jobs.StateCompleted:
		// A completed upload stored the recording, and a stored recording
		// is never queued again: this row and job disagree.
		return fmt.Errorf("queue upload of %s: its job %d completed but the recording is not stored", id, in.ID)
	}
	return nil
}

// uploadJob makes one upload attempt. Running it again after a success has
// no effect: a stored recording is only cleaned up after.
func (m *Manager) uploadJob(ctx context.Context, job jobs.Job[uploadArgs]) error {
	id, scope := job.Args.RecordingID, job.Scope
	row, err := scope.Recording(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return jobs.Permanent(fmt.Errorf("upload %s: no such recording in the job's tenant", id))
	}
	if err != nil {
		return err
	}
	path := m.spoolPath(id)
	if row.State == store.RecordingStored {
		m.removeSpool(id, path)
		return nil
	}
	if row.Node != m.opts.Node {
		return jobs.Permanent(fmt.Errorf("upload %s: spool is on node %q, this is %q: %w", id, row.Node, m.opts.Node, ErrNotLocal))
	}
	info, err := readSpool(path)
	if errors.Is(err, fs.ErrNotExist) {
		return jobs.Permanent(fmt.Errorf("upload %s: spool file missing on this node", id))
	}
	if err != nil {
		m.met.spoolErrors.Inc()
		return jobs.Permanent(fmt.Errorf("upload %s: %w", id, err))
	}
	if info.meta.TenantID != row.TenantID || info.meta.ID != id {
		return jobs.Permanent(fmt.Errorf("upload %s: spool belongs to another recording or tenant", id))
	}
	if row.State != store.RecordingUploading {
		// A retry of a dead-lettered recording, or a recovery whose
		// bookkeeping did not happen: it is uploading again.
		if err := scope.MarkUploading(ctx, id, endOf(info.ckpts[0])); err != nil {
			return err
		}
	}
	start := time.Now()
	err = m.uploadOnce(ctx, uploadOf(info))
	m.met.uploadDur.Observe(time.Since(start).Seconds())
	if err == nil {
		m.met.uploadsOK.Inc()
		m.removeSpool(id, path)
		return nil
	}
	if ctx.Err() == context.Canceled {
		return err // shutting down: not an attempt; the job runs again on the next start
	}
	m.met.uploadsErr.Inc()
	// The attempt's context may have run out (its timeout); the count
	// must still be kept.
	dbctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if dberr := scope.RecordUploadAttempt(dbctx, id, err.Error()); dberr != nil {
		m.log.Warn("could not count upload attempt", "recording", id, "err", dberr)
	}
	if errors.Is(err, ErrAudioMismatch) {
		return jobs.Permanent(err)
	}
	if !job.Last() {
		m.log.Warn("recording upload failed; will retry", "recording", id, "attempt", job.Attempt, "of", job.MaxAttempts, "err", err)
	}
	return err
}

// uploadDead dead-letters the recording with its job: `blackbox recordings
// list --failed` shows it, its spool stays, and `blackbox jobs retry` (or a
// restart of this node) tries again.
func (m *Manager) uploadDead(ctx context.Context, job jobs.Job[uploadArgs], cause error) {
	id := job.Args.RecordingID
	m.met.deadLettered.Inc()
	if err := job.Scope.MarkFailed(ctx, id, cause.Error()); err != nil {
		m.log.Error("could not mark recording failed; the next start retries it", "recording", id, "err", err)
	}
	m.log.Error("recording dead-lettered; its spool is kept until a retry succeeds",
		"recording", id, "job", job.ID, "attempts", job.Attempt, "spool", m.spoolPath(id), "err", cause)
}

func (m *Manager) removeSpool(id, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("recording stored but its spool could not be removed; the next start removes it", "recording", id, "err", err)
	}
}

// Retry queues a dead-lettered recording (or one whose upload is not
// queued) for another upload attempt. The recording's spool must be on this
// node; scope confines the lookup to the caller's tenant. `blackbox jobs
// retry` does the same from the job's side.
func (m *Manager) Retry(ctx context.Context, scope *store.Scope, recordingID string) error {
	m.mu.Lock()
	running, closed := m.running, m.closed
	_, active := m.active[recordingID]
	m.mu.Unlock()
	if closed || !running {
		return ErrNotRunning
	}
	row, err := scope.Recording(ctx, recordingID)
	if err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	switch {
	case row.State == store.RecordingStored, active:
		return fmt.Errorf("retry %s (%s): %w", recordingID, row.State, ErrNotRetryable)
	case row.Node != m.opts.Node:
		return fmt.Errorf("retry %s: spool is on node %q, this is %q: %w", recordingID, row.Node, m.opts.Node, ErrNotLocal)
	}
	info, err := readSpool(m.spoolPath(recordingID))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("retry %s: %w: %w", recordingID, ErrNotLocal, err)
	}
	if err != nil {
		return fmt.Errorf("retry %s: %w", recordingID, err)
	}
	if info.meta.TenantID != row.TenantID {
		return fmt.Errorf("retry %s: spool belongs to another tenant", recordingID)
	}
	if err := scope.MarkUploading(ctx, recordingID, endOf(info.ckpts[0])); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	if err := m.enqueueUpload(ctx, scope, recordingID, objectSize(info.ckpts[0]), 2*time.Second); err != nil {
		return fmt.Errorf("retry: %w", err)
	}
	m.log.Info("recording upload retry queued", "recording", recordingID)
	return nil
}

func (m *Manager) spoolPath(id string) string { return filepath.Join(m.opts.SpoolDir, id+spoolSuffix) }

// objectSize is the size of the WAV object a checkpoint makes.
func objectSize(c checkpoint) int64 { return wavHeaderSize + c.Data }

// endOf is what a checkpoint says about the end of its recording.
func endOf(c checkpoint) store.RecordingEnd {
	e := store.RecordingEnd{EndedAt: c.EndedAt, Duration: durationOf(c.Data), Truncated: !c.Finished}
	if !c.Finished {
		e.EndedAt = c.SyncedAt
	}
	return e
}
