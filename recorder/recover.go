package recorder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// recover queues the upload of every spool file left by an earlier run
// (files) and settles rows of this node that have no spool left (pending).
// A spool's upload job may still exist from that run (waiting for a retry,
// or dead-lettered, which gets a fresh attempt); it is never doubled.
func (m *Manager) recover(ctx context.Context, files []string, pending []store.Recording) error {
	rows := make(map[string]store.Recording, len(pending))
	for _, r := range pending {
		rows[r.ID] = r
	}
	var errs []error
	for _, path := range files {
		info, err := readSpool(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // stored meanwhile by its job, which runs alongside
		}
		if err != nil {
			m.met.spoolErrors.Inc()
			m.log.Error("unreadable spool file kept for inspection", "file", path, "err", err)
			continue
		}
		meta := info.meta
		row, known := rows[meta.ID]
		delete(rows, meta.ID)
		scope := m.opts.DB.In(store.System(meta.TenantID))
		if !known {
			got, err := scope.Recording(ctx, meta.ID)
			switch {
			case err == nil:
				row = got
			case errors.Is(err, store.ErrNotFound):
				// The row was never committed (crash inside Start) or
				// was lost: the spool describes it fully.
				row, _, err = scope.CreateRecording(ctx, store.Recording{
					ID: meta.ID, CallID: meta.CallID, ObjectKey: meta.ObjectKey, State: store.RecordingUploading,
					Channels: meta.Channels[:], Codec: codecName, SampleRate: SampleRate, Node: m.opts.Node,
					SpoolPath: path, StartedAt: time.UnixMilli(meta.StartedAtMS),
				})
				if err != nil {
					errs = append(errs, err)
					continue
				}
			default:
				errs = append(errs, err)
				continue
			}
		}
		if row.State == store.RecordingStored {
			// Stored just before the crash that kept its spool.
			if err := os.Remove(path); err != nil {
				m.log.Warn("remove spool of stored recording", "file", path, "err", err)
			}
			continue
		}
		end := endOf(info.ckpts[0])
		if err := scope.MarkUploading(ctx, meta.ID, end); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.enqueueUpload(ctx, scope, meta.ID, objectSize(info.ckpts[0]), 0); err != nil {
			errs = append(errs, err)
			continue
		}
		m.met.recovered.Inc()
		m.log.Warn("recovered recording from spool", "recording", meta.ID, "call", meta.CallID,
			"was", row.State, "truncated", end.Truncated, "duration", end.Duration)
	}
	for _, row := range rows {
		if row.State == store.RecordingFailed {
			continue // already dead-lettered; its audio is gone from here
		}
		const msg = "spool file missing on this node"
		if err := m.opts.DB.In(store.System(row.TenantID)).MarkFailed(ctx, row.ID, msg); err != nil {
			errs = append(errs, err)
			continue
		}
		m.met.deadLettered.Inc()
		m.log.Error("recording has no spool to upload; marked failed", "recording", row.ID, "call", row.CallID, "spool", row.SpoolPath)
	}
	return errors.Join(errs...)
}
