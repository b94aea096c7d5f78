package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// RecordingState is where a recording is in its life.
type RecordingState string

// Recording states. A recording moves recording → uploading → stored, or to
// failed (dead-lettered) when uploads keep failing; a retry moves it back to
// uploading. stored is final.
const (
	RecordingActive    RecordingState = "recording"
	RecordingUploading RecordingState = "uploading"
	RecordingStored    RecordingState = "stored"
	RecordingFailed    RecordingState = "failed"
)

// ProviderBlackbox marks recordings Blackbox made itself.
const ProviderBlackbox = "blackbox"

// Recording is the metadata of one call recording. The audio lives in object
// storage under ObjectKey; SHA256 is the hash of that object and AudioSHA256
// the hash of its PCM data as it was ingested.
type Recording struct {
	ID                  string
	TenantID            string
	CallID              string
	Provider            string
	ProviderRecordingID string
	ObjectKey           string
	State               RecordingState
	Truncated           bool // the recorder stopped before the call ended (crash)
	SHA256              string
	AudioSHA256         string
	SizeBytes           int64
	Duration            time.Duration // stored in milliseconds
	Channels            []string      // channel index → what it carries, e.g. ["rep", "remote"]
	Codec               string        // of the stored object, e.g. pcm_s16le
	SampleRate          int
	Attempts            int // upload attempts so far
	LastError           string
	Node                string // the node whose spool holds the audio until it is stored
	SpoolPath           string
	StartedAt           time.Time
	EndedAt             time.Time
	StoredAt            time.Time
}

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

const recordingCols = `id, tenant_id, call_id, provider, provider_recording_id, object_key, state, truncated,
	sha256, audio_sha256, size_bytes, duration_ms, channels, codec, sample_rate, attempts, last_error, node,
	spool_path, started_at, ended_at, stored_at`

func scanRecording(r row) (Recording, error) {
	var rec Recording
	var state, channels string
	var truncated, dur, started, ended, stored int64
	err := r.Scan(&rec.ID, &rec.TenantID, &rec.CallID, &rec.Provider, &rec.ProviderRecordingID, &rec.ObjectKey, &state, &truncated,
		&rec.SHA256, &rec.AudioSHA256, &rec.SizeBytes, &dur, &channels, &rec.Codec, &rec.SampleRate, &rec.Attempts, &rec.LastError,
		&rec.Node, &rec.SpoolPath, &started, &ended, &stored)
	if err != nil {
		return rec, err
	}
	rec.State, rec.Truncated, rec.Duration = RecordingState(state), truncated != 0, time.Duration(dur)*time.Millisecond
	rec.StartedAt, rec.EndedAt, rec.StoredAt = fromMS(started), fromMS(ended), fromMS(stored)
	if err := json.Unmarshal([]byte(channels), &rec.Channels); err != nil {
		return rec, fmt.Errorf("recording %s channels: %w", rec.ID, err)
	}
	return rec, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// CreateRecording inserts a recording, or returns the one already ingested
// under the same (Provider, ProviderRecordingID) with created false, so
// ingesting twice leaves one row. Provider defaults to "blackbox", ID to a
// fresh id and ProviderRecordingID to ID. The state starts as given (default
// "recording").
func (s *Scope) CreateRecording(ctx context.Context, r Recording) (Recording, bool, error) {
	if r.ID == "" {
		r.ID = newID()
	}
	if r.Provider == "" {
		r.Provider = ProviderBlackbox
	}
	if r.ProviderRecordingID == "" {
		r.ProviderRecordingID = r.ID
	}
	if r.State == "" {
		r.State = RecordingActive
	}
	switch {
	case r.CallID == "":
		return Recording{}, false, invalidf("recording call id is required")
	case r.ObjectKey == "":
		return Recording{}, false, invalidf("recording object key is required")
	case r.StartedAt.IsZero():
		return Recording{}, false, invalidf("recording start time is required")
	case r.Codec == "" || r.SampleRate <= 0:
		return Recording{}, false, invalidf("recording codec and sample rate are required")
	}
	if !validState(r.State) {
		return Recording{}, false, invalidf("recording state %q", r.State)
	}
	if r.Channels == nil {
		r.Channels = []string{}
	}
	channels, err := json.Marshal(r.Channels)
	if err != nil {
		return Recording{}, false, fmt.Errorf("recording %s channels: %w", r.ID, err)
	}
	r.TenantID = s.p.tenantID
	var out Recording
	created := false
	err = s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `INSERT INTO recordings (`+recordingCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
			ON CONFLICT (provider, provider_recording_id) DO NOTHING`,
			r.ID, r.TenantID, r.CallID, r.Provider, r.ProviderRecordingID, r.ObjectKey, string(r.State), boolInt(r.Truncated),
			r.SHA256, r.AudioSHA256, r.SizeBytes, r.Duration.Milliseconds(), string(channels), r.Codec, r.SampleRate, r.Attempts,
			r.LastError, r.Node, r.SpoolPath, ms(r.StartedAt), ms(r.EndedAt), ms(r.StoredAt))
		if err != nil {
			return err
		}
		created = n == 1
		// The existing row may belong to another tenant: then it is not ours
		// to return, and the lookup below finds nothing.
		out, err = scanRecording(q.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings
			WHERE tenant_id = $1 AND provider = $2 AND provider_recording_id = $3`, s.p.tenantID, r.Provider, r.ProviderRecordingID))
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("%w: provider recording id taken", ErrConflict)
		}
		return err
	})
	if err != nil {
		return Recording{}, false, fmt.Errorf("create recording %s: %w", r.ID, err)
	}
	return out, created, nil
}

func validState(s RecordingState) bool {
	switch s {
	case RecordingActive, RecordingUploading, RecordingStored, RecordingFailed:
		return true
	}
	return false
}

func (s *Scope) loadRecording(ctx context.Context, q querier, id string) (Recording, error) {
	return scanRecording(q.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
}

// Recording finds one recording of the tenant.
func (s *Scope) Recording(ctx context.Context, id string) (Recording, error) {
	var r Recording
	err := s.read(ctx, func(q querier) error {
		var err error
		r, err = s.loadRecording(ctx, q, id)
		return err
	})
	if err != nil {
		return Recording{}, fmt.Errorf("recording %s: %w", id, err)
	}
	return r, nil
}

// RecordingFilter narrows Recordings. Before is a cursor: the id of the last
// recording of the previous page (ids are time-ordered).
type RecordingFilter struct {
	CallID string
	State  RecordingState // "" for all
	Failed bool           // only dead-lettered recordings (same as State "failed")
	Before string
	Limit  int // default 100, max 1000
}

// Recordings lists the tenant's recordings, newest first.
func (s *Scope) Recordings(ctx context.Context, f RecordingFilter) ([]Recording, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	if f.Failed {
		if f.State != "" && f.State != RecordingFailed {
			return nil, invalidf("recording filter: Failed contradicts state %q", f.State)
		}
		f.State = RecordingFailed
	}
	var out []Recording
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanRecording, `SELECT `+recordingCols+` FROM recordings
			WHERE tenant_id = $1 AND ($2 = '' OR call_id = $2) AND ($3 = '' OR state = $3) AND ($4 = '' OR id < $4)
			ORDER BY id DESC LIMIT $5`, s.p.tenantID, f.CallID, string(f.State), f.Before, f.Limit)
		return err
	})
	return out, err
}

// RecordingEnd is what is known when a recording stops.
type RecordingEnd struct {
	EndedAt   time.Time
	Duration  time.Duration
	Truncated bool
}

// MarkUploading records the end of a recording (or a retry of a dead-lettered
// one) and queues it for upload. A stored recording is never reopened.
func (s *Scope) MarkUploading(ctx context.Context, id string, e RecordingEnd) error {
	err := s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `UPDATE recordings SET state = $3, ended_at = $4, duration_ms = $5, truncated = $6
			WHERE tenant_id = $1 AND id = $2 AND state <> $7`,
			s.p.tenantID, id, string(RecordingUploading), ms(e.EndedAt), e.Duration.Milliseconds(), boolInt(e.Truncated), string(RecordingStored))
		if err != nil {
			return err
		}
		return s.expectRecording(ctx, q, id, n)
	})
	if err != nil {
		return fmt.Errorf("mark recording %s uploading: %w", id, err)
	}
	return nil
}

// expectRecording turns "no row updated" into ErrNotFound for a missing row
// and ErrConflict for a row in a state the update may not leave.
func (s *Scope) expectRecording(ctx context.Context, q querier, id string, updated int64) error {
	if updated > 0 {
		return nil
	}
	var state string
	if err := q.QueryRow(ctx, `SELECT state FROM recordings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id).Scan(&state); err != nil {
		return err
	}
	return fmt.Errorf("%w: recording is %s", ErrConflict, state)
}

// RecordUploadAttempt counts a failed upload attempt and keeps its error.
func (s *Scope) RecordUploadAttempt(ctx context.Context, id, lastError string) error {
	err := s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `UPDATE recordings SET attempts = attempts + 1, last_error = $3 WHERE tenant_id = $1 AND id = $2 AND state <> $4`,
			s.p.tenantID, id, lastError, string(RecordingStored))
		if err != nil {
			return err
		}
		return s.expectRecording(ctx, q, id, n)
	})
	if err != nil {
		return fmt.Errorf("record upload attempt of %s: %w", id, err)
	}
	return nil
}

// RecordingStoredInfo is what a successful upload proves.
type RecordingStoredInfo struct {
	SHA256      string // of the stored object
	AudioSHA256 string // of the PCM data, computed at ingestion
	SizeBytes   int64
	Duration    time.Duration
	Truncated   bool
	EndedAt     time.Time // zero keeps the recorded end
	StoredAt    time.Time
}

// MarkStored records a successful upload. Marking a stored recording again
// with the same hashes is a no-op (uploads are idempotent); with different
// hashes it is ErrConflict, because stored evidence never changes.
func (s *Scope) MarkStored(ctx context.Context, id string, info RecordingStoredInfo) error {
	if !sha256Re.MatchString(info.SHA256) || !sha256Re.MatchString(info.AudioSHA256) {
		return invalidf("mark recording %s stored: hashes must be lowercase hex SHA-256", id)
	}
	if info.StoredAt.IsZero() {
		info.StoredAt = s.db.now()
	}
	err := s.write(ctx, func(q querier) error {
		cur, err := s.loadRecording(ctx, q, id)
		if err != nil {
			return err
		}
		if cur.State == RecordingStored {
			return sameEvidence(cur, info)
		}
		// The state guard matters on Postgres, where another node's upload
		// may commit between our read and this update: then nothing is
		// updated and its evidence is compared with ours instead.
		n, err := q.Exec(ctx, `UPDATE recordings SET state = $3, sha256 = $4, audio_sha256 = $5, size_bytes = $6,
			duration_ms = $7, truncated = $8, stored_at = $9, attempts = attempts + 1, last_error = '',
			ended_at = CASE WHEN CAST($10 AS BIGINT) = 0 THEN ended_at ELSE CAST($10 AS BIGINT) END
			WHERE tenant_id = $1 AND id = $2 AND state <> $3`,
			s.p.tenantID, id, string(RecordingStored), info.SHA256, info.AudioSHA256, info.SizeBytes,
			info.Duration.Milliseconds(), boolInt(info.Truncated), ms(info.StoredAt), ms(info.EndedAt))
		if err != nil {
			return err
		}
		if n == 0 {
			if cur, err = s.loadRecording(ctx, q, id); err != nil {
				return err
			}
			return sameEvidence(cur, info)
		}
		return s.audit(ctx, q, "recording.stored", "recording:"+id, map[string]any{
			"call_id": cur.CallID, "object_key": cur.ObjectKey, "sha256": info.SHA256, "audio_sha256": info.AudioSHA256,
			"size_bytes": info.SizeBytes, "truncated": info.Truncated,
		})
	})
	if err != nil {
		return fmt.Errorf("mark recording %s stored: %w", id, err)
	}
	return nil
}

// sameEvidence accepts storing a stored recording again only with the same
// hashes: uploads are idempotent, stored evidence never changes.
func sameEvidence(cur Recording, info RecordingStoredInfo) error {
	if cur.SHA256 == info.SHA256 && cur.AudioSHA256 == info.AudioSHA256 {
		return nil
	}
	return fmt.Errorf("%w: already stored with sha256 %s", ErrConflict, cur.SHA256)
}

// MarkFailed dead-letters a recording: uploads stop until a retry. Its audio
// stays in the node's spool.
func (s *Scope) MarkFailed(ctx context.Context, id, lastError string) error {
	err := s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `UPDATE recordings SET state = $3, last_error = $4 WHERE tenant_id = $1 AND id = $2 AND state <> $5`,
			s.p.tenantID, id, string(RecordingFailed), lastError, string(RecordingStored))
		if err != nil {
			return err
		}
		if err := s.expectRecording(ctx, q, id, n); err != nil {
			return err
		}
		return s.audit(ctx, q, "recording.failed", "recording:"+id, map[string]any{"error": lastError})
	})
	if err != nil {
		return fmt.Errorf("mark recording %s failed: %w", id, err)
	}
	return nil
}

// PendingRecordings lists every recording of node that is not stored yet, in
// all tenants: the uploader's work after a restart. Unscoped on purpose; the
// caller acts on each row through store.System(row.TenantID).
func (db *DB) PendingRecordings(ctx context.Context, node string) ([]Recording, error) {
	var out []Recording
	err := db.sysRead(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanRecording, `SELECT `+recordingCols+` FROM recordings
			WHERE node = $1 AND state <> $2 ORDER BY id`, node, string(RecordingStored))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending recordings of %s: %w", node, err)
	}
	return out, nil
}
