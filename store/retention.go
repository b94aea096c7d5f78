package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DeletionKind says why a recording is deleted.
type DeletionKind string

// Deletion kinds.
const (
	// DeleteRetention: past the tenant's retention period (the sweep).
	DeleteRetention DeletionKind = "retention"
	// DeleteByOwner: an owner deleted it, within policy, giving a reason.
	DeleteByOwner DeletionKind = "owner"
)

// DeletionRequest describes a deletion about to begin.
type DeletionRequest struct {
	Kind   DeletionKind
	Reason string
	// RetentionDays and Cutoff, for DeleteRetention: the policy applied, and
	// the start time a recording must precede to be past it.
	RetentionDays int
	Cutoff        time.Time
}

// RecordingDeletion is a deletion that has begun: its object may or may not
// be gone yet; its metadata row is still there until FinishRecordingDeletion.
type RecordingDeletion struct {
	RecordingID   string
	TenantID      string
	CallID        string
	ObjectKey     string
	Kind          DeletionKind
	Reason        string
	Actor         string
	RetentionDays int
	StartedAt     time.Time
}

const deletionCols = `recording_id, tenant_id, call_id, object_key, kind, reason, actor, retention_days, started_at`

func scanDeletion(r row) (RecordingDeletion, error) {
	var d RecordingDeletion
	var kind string
	var started int64
	err := r.Scan(&d.RecordingID, &d.TenantID, &d.CallID, &d.ObjectKey, &kind, &d.Reason, &d.Actor, &d.RetentionDays, &started)
	d.Kind, d.StartedAt = DeletionKind(kind), fromMS(started)
	return d, err
}

// ExpiredRecordings lists stored recordings that started before cutoff, are
// not under legal hold and whose deletion has not begun, in id order after
// the cursor after (ids are time-ordered).
func (s *Scope) ExpiredRecordings(ctx context.Context, cutoff time.Time, after string, limit int) ([]Recording, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	var out []Recording
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanRecording, `SELECT `+recordingCols+` FROM recordings r
			WHERE r.tenant_id = $1 AND r.state = $2 AND r.started_at < $3 AND r.id > $4
			AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.tenant_id = r.tenant_id AND h.call_id = r.call_id AND h.released_at = 0)
			AND NOT EXISTS (SELECT 1 FROM recording_deletions d WHERE d.tenant_id = r.tenant_id AND d.recording_id = r.id)
			ORDER BY r.id LIMIT $5`, s.p.tenantID, string(RecordingStored), ms(cutoff), after, limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("expired recordings: %w", err)
	}
	return out, nil
}

// HeldExpiredRecordings counts recordings past cutoff that a legal hold keeps.
func (s *Scope) HeldExpiredRecordings(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := s.read(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COUNT(*) FROM recordings r
			WHERE r.tenant_id = $1 AND r.started_at < $2
			AND EXISTS (SELECT 1 FROM legal_holds h WHERE h.tenant_id = r.tenant_id AND h.call_id = r.call_id AND h.released_at = 0)`,
			s.p.tenantID, ms(cutoff)).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("held recordings: %w", err)
	}
	return int(n), nil
}

// BeginRecordingDeletion checks a recording may be deleted (stored, not
// under legal hold, past retention for DeleteRetention, a reason for
// DeleteByOwner, an owner: the sweep's system principal is one) and
// records the intent, before its object is touched. A deletion already begun is returned as it is, so a crashed one resumes.
func (s *Scope) BeginRecordingDeletion(ctx context.Context, id string, req DeletionRequest) (RecordingDeletion, error) {
	if err := s.require(RoleOwner, "delete recording"); err != nil {
		return RecordingDeletion{}, err
	}
	switch req.Kind {
	case DeleteRetention:
		if req.RetentionDays <= 0 || req.Cutoff.IsZero() {
			return RecordingDeletion{}, invalidf("retention deletion needs the retention days and cutoff applied")
		}
		if req.Reason == "" {
			req.Reason = fmt.Sprintf("retention: older than %d days", req.RetentionDays)
		}
	case DeleteByOwner:
		reason, err := checkReason("recording deletion", req.Reason)
		if err != nil {
			return RecordingDeletion{}, err
		}
		req.Reason = reason
	default:
		return RecordingDeletion{}, invalidf("deletion kind %q", req.Kind)
	}
	var d RecordingDeletion
	err := s.write(ctx, func(q querier) error {
		var err error
		d, err = scanDeletion(q.QueryRow(ctx, `SELECT `+deletionCols+` FROM recording_deletions WHERE tenant_id = $1 AND recording_id = $2`,
			s.p.tenantID, id))
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		rec, err := scanRecording(q.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
		if err != nil {
			return err
		}
		if rec.State != RecordingStored {
			return fmt.Errorf("%w: recording is %s; only stored recordings are deleted", ErrConflict, rec.State)
		}
		if req.Kind == DeleteRetention && !rec.StartedAt.Before(req.Cutoff) {
			return fmt.Errorf("%w: recording is within its %d-day retention", ErrConflict, req.RetentionDays)
		}
		if err := s.onHold(ctx, q, rec.CallID); err != nil {
			return err
		}
		d = RecordingDeletion{RecordingID: id, TenantID: s.p.tenantID, CallID: rec.CallID, ObjectKey: rec.ObjectKey, Kind: req.Kind,
			Reason: req.Reason, Actor: s.p.Actor(), RetentionDays: req.RetentionDays, StartedAt: fromMS(ms(s.db.now()))}
		_, err = q.Exec(ctx, `INSERT INTO recording_deletions (`+deletionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			d.RecordingID, d.TenantID, d.CallID, d.ObjectKey, string(d.Kind), d.Reason, d.Actor, d.RetentionDays, ms(d.StartedAt))
		return err
	})
	if err != nil {
		return RecordingDeletion{}, fmt.Errorf("delete recording %s: %w", id, err)
	}
	return d, nil
}

// FinishRecordingDeletion removes the metadata of a recording whose object
// is gone, with one audit event naming who deleted it and why. Call it only
// after the object store confirmed the deletion.
func (s *Scope) FinishRecordingDeletion(ctx context.Context, id string) error {
	err := s.write(ctx, func(q querier) error {
		d, err := scanDeletion(q.QueryRow(ctx, `SELECT `+deletionCols+` FROM recording_deletions WHERE tenant_id = $1 AND recording_id = $2`,
			s.p.tenantID, id))
		if err != nil {
			return fmt.Errorf("no deletion begun: %w", err)
		}
		rec, err := scanRecording(q.QueryRow(ctx, `SELECT `+recordingCols+` FROM recordings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
		if err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM recordings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `DELETE FROM recording_deletions WHERE tenant_id = $1 AND recording_id = $2`, s.p.tenantID, id); err != nil {
			return err
		}
		// The deletion's own actor, not whoever finished it: a sweep that
		// resumes an owner's interrupted deletion records the owner.
		return insertAudit(ctx, q, s.db.now(), s.p.tenantID, d.Actor, "recording.delete", "recording:"+id, map[string]any{
			"kind": string(d.Kind), "reason": d.Reason, "retention_days": d.RetentionDays, "call_id": rec.CallID,
			"object_key": rec.ObjectKey, "sha256": rec.SHA256, "size_bytes": rec.SizeBytes,
			"started_at": rec.StartedAt.Format(time.RFC3339), "deletion_started_at": d.StartedAt.Format(time.RFC3339Nano),
		})
	})
	if err != nil {
		return fmt.Errorf("finish deletion of recording %s: %w", id, err)
	}
	return nil
}

// PendingDeletions lists the tenant's deletions that began and did not
// finish (a crash, an object store outage).
func (s *Scope) PendingDeletions(ctx context.Context) ([]RecordingDeletion, error) {
	var out []RecordingDeletion
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanDeletion, `SELECT `+deletionCols+` FROM recording_deletions WHERE tenant_id = $1 ORDER BY recording_id`,
			s.p.tenantID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pending deletions: %w", err)
	}
	return out, nil
}

// DeletionPending reports whether a recording's deletion has begun: its
// audio may already be gone, so it is no longer played.
func (s *Scope) DeletionPending(ctx context.Context, recordingID string) (bool, error) {
	var n int64
	err := s.read(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COUNT(*) FROM recording_deletions WHERE tenant_id = $1 AND recording_id = $2`,
			s.p.tenantID, recordingID).Scan(&n)
	})
	if err != nil {
		return false, fmt.Errorf("deletion of recording %s: %w", recordingID, err)
	}
	return n > 0, nil
}

// DeleteCallMetadata deletes a call's record (numbers, times, outcome) and
// nothing else: its recordings and consent events stay until their own
// retention, because they are the evidence. Owners only; a legal hold
// forbids it.
func (s *Scope) DeleteCallMetadata(ctx context.Context, callID, reason string) error {
	if err := s.require(RoleOwner, "delete call"); err != nil {
		return err
	}
	reason, err := checkReason("call deletion", reason)
	if err != nil {
		return err
	}
	err = s.write(ctx, func(q querier) error {
		if err := s.onHold(ctx, q, callID); err != nil {
			return err
		}
		var kept int64
		if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM recordings WHERE tenant_id = $1 AND call_id = $2`, s.p.tenantID, callID).Scan(&kept); err != nil {
			return err
		}
		n, err := q.Exec(ctx, `DELETE FROM calls WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, callID)
		if err != nil {
			return err
		}
		if n == 0 {
			return ErrNotFound
		}
		return s.audit(ctx, q, "call.delete", "call:"+callID, map[string]any{"reason": reason, "recordings_kept": kept})
	})
	if err != nil {
		return fmt.Errorf("delete call %s: %w", callID, err)
	}
	return nil
}
