package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blackbox-gw/blackbox/store"
	"github.com/blackbox-gw/blackbox/store/objects"
)

// uploadJob is one recording waiting for (another) upload attempt. The
// queue lives in memory only: rows and spool files are the durable truth,
// and Run rebuilds the queue from them after a restart.
type uploadJob struct {
	id, tenantID, callID, key, path string
	cands                           []checkpoint // newest first; older ones are fallbacks after a crash
	attempts                        int          // in this round
	notBefore                       time.Time
}

type uploadQueue struct {
	mu   sync.Mutex
	jobs []*uploadJob
	ids  map[string]bool // queued or being uploaded
	wake chan struct{}
}

func newUploadQueue() *uploadQueue {
	return &uploadQueue{ids: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// push queues j unless its recording is already queued or uploading.
func (q *uploadQueue) push(j *uploadJob) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids[j.id] {
		return false
	}
	q.ids[j.id] = true
	q.jobs = append(q.jobs, j)
	q.signal()
	return true
}

// requeue puts back a job taken by next, for a later attempt.
func (q *uploadQueue) requeue(j *uploadJob) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.jobs = append(q.jobs, j)
	q.signal()
}

func (q *uploadQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// done forgets a job for good (stored, dead-lettered or left for the next
// run).
func (q *uploadQueue) done(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.ids, id)
}

func (q *uploadQueue) has(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ids[id]
}

// next waits for a job whose backoff has passed; nil when ctx is done.
func (q *uploadQueue) next(ctx context.Context) *uploadJob {
	for {
		q.mu.Lock()
		now := time.Now()
		best := -1
		for i, j := range q.jobs {
			if best < 0 || j.notBefore.Before(q.jobs[best].notBefore) {
				best = i
			}
		}
		var wait time.Duration = -1
		if best >= 0 {
			j := q.jobs[best]
			if !j.notBefore.After(now) {
				q.jobs = append(q.jobs[:best], q.jobs[best+1:]...)
				if len(q.jobs) > 0 {
					q.signal() // let another worker look at the rest
				}
				q.mu.Unlock()
				return j
			}
			wait = j.notBefore.Sub(now)
		}
		q.mu.Unlock()
		var timer *time.Timer
		var fire <-chan time.Time
		if wait >= 0 {
			timer = time.NewTimer(wait)
			fire = timer.C
		}
		select {
		case <-ctx.Done():
		case <-q.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (m *Manager) uploadWorker(ctx context.Context) {
	for {
		j := m.queue.next(ctx)
		if j == nil {
			return
		}
		m.process(ctx, j)
	}
}

// process makes one upload attempt and decides what follows: done, retry
// after a backoff, or dead letter.
func (m *Manager) process(ctx context.Context, j *uploadJob) {
	start := time.Now()
	err := m.uploadOnce(ctx, j)
	m.met.uploadDur.Observe(time.Since(start).Seconds())
	if err == nil {
		m.met.uploadsOK.Inc()
		m.queue.done(j.id)
		if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("recording stored but its spool could not be removed; the next start removes it", "recording", j.id, "err", err)
		}
		return
	}
	if ctx.Err() != nil {
		m.queue.done(j.id) // shutting down; the next Run resumes from the row
		return
	}
	m.met.uploadsErr.Inc()
	j.attempts++
	scope := m.opts.DB.In(store.System(j.tenantID))
	if dberr := scope.RecordUploadAttempt(ctx, j.id, err.Error()); dberr != nil {
		m.log.Warn("could not count upload attempt", "recording", j.id, "err", dberr)
	}
	if errors.Is(err, ErrAudioMismatch) || j.attempts >= m.opts.UploadAttempts {
		m.queue.done(j.id)
		m.met.deadLettered.Inc()
		if dberr := scope.MarkFailed(ctx, j.id, err.Error()); dberr != nil {
			m.log.Error("could not mark recording failed; the next start retries it", "recording", j.id, "err", dberr)
		}
		m.log.Error("recording dead-lettered; its spool is kept until a retry succeeds",
			"recording", j.id, "call", j.callID, "attempts", j.attempts, "spool", j.path, "err", err)
		return
	}
	wait := m.opts.Backoff(j.attempts)
	m.log.Warn("recording upload failed; will retry", "recording", j.id, "attempt", j.attempts, "retry_in", wait, "err", err)
	j.notBefore = time.Now().Add(wait)
	m.queue.requeue(j)
}

// uploadOnce builds the WAV object from the spool in a single pass that
// streams it to the object store, hashes the object as it goes and re-derives
// the PCM hash; a PCM hash that differs from the ingestion hash fails the
// read at its last byte, so the store publishes nothing. Only then is the
// row marked stored.
func (m *Manager) uploadOnce(ctx context.Context, j *uploadJob) error {
	f, err := os.Open(j.path)
	if err != nil {
		return fmt.Errorf("open spool: %w", err)
	}
	defer f.Close()
	var mismatch error
	for i, c := range j.cands {
		want, err := resumeHash(c.State)
		if err != nil {
			mismatch = errors.Join(mismatch, fmt.Errorf("%w: checkpoint %d: %w", ErrAudioMismatch, c.Seq, err))
			continue
		}
		wantSum := want.Sum(nil)
		size := wavHeaderSize + c.Data
		sr := newSealReader(io.NewSectionReader(f, dataStart, c.Data), c.Data, wantSum)
		err = m.opts.Objects.Put(ctx, j.key, sr, size, objects.PutOptions{ContentType: "audio/wav"})
		if errors.Is(err, ErrAudioMismatch) {
			m.log.Error("spooled audio does not match its checkpoint; trying an older one", "recording", j.id, "checkpoint", c.Seq, "err", err)
			mismatch = errors.Join(mismatch, err)
			continue
		}
		if err != nil {
			return err
		}
		info, err := m.opts.Objects.Stat(ctx, j.key)
		if err != nil {
			return fmt.Errorf("check stored object: %w", err)
		}
		if info.Size != size {
			return fmt.Errorf("stored object has %d bytes, want %d", info.Size, size)
		}
		ended := c.EndedAt
		if !c.Finished {
			ended = c.SyncedAt
		}
		err = m.opts.DB.In(store.System(j.tenantID)).MarkStored(ctx, j.id, store.RecordingStoredInfo{
			SHA256: hex.EncodeToString(sr.obj.Sum(nil)), AudioSHA256: hex.EncodeToString(wantSum), SizeBytes: size,
			Duration: durationOf(c.Data), Truncated: !c.Finished, EndedAt: ended,
		})
		if err != nil {
			return err
		}
		m.log.Info("recording stored", "recording", j.id, "call", j.callID, "bytes", size, "truncated", !c.Finished, "fallback", i > 0)
		return nil
	}
	return mismatch
}

// sealReader yields header + PCM data while hashing both, and refuses to
// give the last bytes if the PCM does not hash to want.
type sealReader struct {
	header   [wavHeaderSize]byte
	hpos     int
	data     io.Reader
	left     int64
	obj      hash.Hash
	audio    hash.Hash
	want     []byte
	checked  bool
	err      error
	dataSize int64
}

func newSealReader(data io.Reader, n int64, want []byte) *sealReader {
	return &sealReader{header: wavHeader(n), data: data, left: n, dataSize: n, obj: sha256.New(), audio: sha256.New(), want: want}
}

func (s *sealReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	switch {
	case s.hpos < len(s.header):
		n = copy(p, s.header[s.hpos:])
		s.hpos += n
		s.obj.Write(p[:n])
	case s.left > 0:
		q := p[:min(int64(len(p)), s.left)]
		var err error
		n, err = s.data.Read(q)
		s.left -= int64(n)
		s.obj.Write(q[:n])
		s.audio.Write(q[:n])
		if err != nil && err != io.EOF {
			s.err = fmt.Errorf("read spool: %w", err)
			return 0, s.err
		}
		if n == 0 && err == io.EOF {
			s.err = fmt.Errorf("%w: spool holds %d of %d checkpointed bytes", ErrAudioMismatch, s.dataSize-s.left, s.dataSize)
			return 0, s.err
		}
	}
	if s.hpos == len(s.header) && s.left == 0 {
		if !s.checked {
			s.checked = true
			if got := s.audio.Sum(nil); !bytes.Equal(got, s.want) {
				s.err = fmt.Errorf("%w: sha256 %x, ingested %x", ErrAudioMismatch, got, s.want)
				return 0, s.err
			}
		}
		if n == 0 {
			return 0, io.EOF
		}
	}
	return n, nil
}

// Retry queues a dead-lettered recording (or one whose upload is not
// queued) for a fresh round of upload attempts. The recording's spool must
// be on this node; scope confines the lookup to the caller's tenant.
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
	case m.queue.has(recordingID):
		return nil
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
	m.queue.push(jobFromSpool(info))
	m.log.Info("recording upload retry queued", "recording", recordingID)
	return nil
}

func (m *Manager) spoolPath(id string) string { return filepath.Join(m.opts.SpoolDir, id+spoolSuffix) }

func jobFromSpool(info *spoolInfo) *uploadJob {
	return &uploadJob{id: info.meta.ID, tenantID: info.meta.TenantID, callID: info.meta.CallID, key: info.meta.ObjectKey,
		path: info.path, cands: info.ckpts}
}

// endOf is what a checkpoint says about the end of its recording.
func endOf(c checkpoint) store.RecordingEnd {
	e := store.RecordingEnd{EndedAt: c.EndedAt, Duration: durationOf(c.Data), Truncated: !c.Finished}
	if !c.Finished {
		e.EndedAt = c.SyncedAt
	}
	return e
}
