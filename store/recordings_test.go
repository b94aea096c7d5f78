package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func newRecording(callID, key string) store.Recording {
	return store.Recording{
		CallID: callID, ObjectKey: key, Channels: []string{"rep", "remote"}, Codec: "pcm_s16le", SampleRate: 8000,
		Node: "n1", SpoolPath: "/spool/" + key, StartedAt: time.UnixMilli(1_700_000_000_000),
	}
}

var (
	hashA = strings.Repeat("a", 64)
	hashB = strings.Repeat("b", 64)
)

func TestRecordingLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		db, sa, sb := tenantsIn(t, h)

		r, created, err := sa.CreateRecording(ctx, newRecording("call-1", "k1"))
		if err != nil || !created {
			t.Fatalf("create: %v created=%v", err, created)
		}
		if r.State != store.RecordingActive || r.Provider != store.ProviderBlackbox || r.ProviderRecordingID != r.ID {
			t.Fatalf("defaults not applied: %+v", r)
		}
		if got := r.Channels; len(got) != 2 || got[0] != "rep" || got[1] != "remote" {
			t.Fatalf("channels round trip: %v", got)
		}

		// Ingesting the same recording again leaves one row.
		again := newRecording("call-1", "k1-other")
		again.ID = r.ID
		r2, created, err := sa.CreateRecording(ctx, again)
		if err != nil || created || r2.ID != r.ID || r2.ObjectKey != "k1" {
			t.Fatalf("second ingest: %+v created=%v err=%v", r2, created, err)
		}
		// Another tenant cannot claim (or see) the same provider id.
		if _, _, err := sb.CreateRecording(ctx, again); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("other tenant same provider id: %v", err)
		}
		if _, err := sb.Recording(ctx, r.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B sees A's recording: %v", err)
		}
		if list, err := sb.Recordings(ctx, store.RecordingFilter{}); err != nil || len(list) != 0 {
			t.Fatalf("tenant B lists %d recordings (%v)", len(list), err)
		}
		if err := sb.MarkStored(ctx, r.ID, store.RecordingStoredInfo{SHA256: hashA, AudioSHA256: hashB}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B marks A's recording: %v", err)
		}
		if err := sb.MarkFailed(ctx, r.ID, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("tenant B fails A's recording: %v", err)
		}

		pending, err := db.PendingRecordings(ctx, "n1")
		if err != nil || len(pending) != 1 || pending[0].ID != r.ID {
			t.Fatalf("pending: %v %v", pending, err)
		}
		if p, _ := db.PendingRecordings(ctx, "n2"); len(p) != 0 {
			t.Fatalf("pending of another node: %v", p)
		}

		end := time.UnixMilli(1_700_000_060_000)
		if err := sa.MarkUploading(ctx, r.ID, store.RecordingEnd{EndedAt: end, Duration: time.Minute, Truncated: true}); err != nil {
			t.Fatal(err)
		}
		if err := sa.RecordUploadAttempt(ctx, r.ID, "s3: connection refused"); err != nil {
			t.Fatal(err)
		}
		if err := sa.MarkFailed(ctx, r.ID, "s3: connection refused"); err != nil {
			t.Fatal(err)
		}
		failed, err := sa.Recordings(ctx, store.RecordingFilter{Failed: true})
		if err != nil || len(failed) != 1 || failed[0].Attempts != 1 || failed[0].LastError == "" {
			t.Fatalf("failed list: %+v %v", failed, err)
		}
		if _, err := sa.Recordings(ctx, store.RecordingFilter{Failed: true, State: store.RecordingStored}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("contradictory filter: %v", err)
		}
		// A retry goes back to uploading, then stores.
		if err := sa.MarkUploading(ctx, r.ID, store.RecordingEnd{EndedAt: end, Duration: time.Minute, Truncated: true}); err != nil {
			t.Fatal(err)
		}
		info := store.RecordingStoredInfo{SHA256: hashA, AudioSHA256: hashB, SizeBytes: 44 + 4*8000*60, Duration: time.Minute, Truncated: true}
		if err := sa.MarkStored(ctx, r.ID, info); err != nil {
			t.Fatal(err)
		}
		if err := sa.MarkStored(ctx, r.ID, info); err != nil {
			t.Fatalf("same upload twice must be a no-op: %v", err)
		}
		changed := info
		changed.SHA256 = hashB
		if err := sa.MarkStored(ctx, r.ID, changed); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stored evidence changed: %v", err)
		}
		for name, err := range map[string]error{
			"uploading": sa.MarkUploading(ctx, r.ID, store.RecordingEnd{}),
			"failed":    sa.MarkFailed(ctx, r.ID, "late"),
			"attempt":   sa.RecordUploadAttempt(ctx, r.ID, "late"),
		} {
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("%s after stored: %v, want ErrConflict", name, err)
			}
		}
		got, err := sa.Recording(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.RecordingStored || got.SHA256 != hashA || got.AudioSHA256 != hashB || got.Attempts != 2 ||
			got.LastError != "" || !got.Truncated || got.Duration != time.Minute || !got.EndedAt.Equal(end) || got.StoredAt.IsZero() {
			t.Fatalf("stored row: %+v", got)
		}
		if p, _ := db.PendingRecordings(ctx, "n1"); len(p) != 0 {
			t.Fatalf("stored recording still pending: %v", p)
		}
		ev, err := sa.AuditEvents(ctx, store.AuditFilter{Action: "recording.stored"})
		if err != nil || len(ev) != 1 || ev[0].Details["sha256"] != hashA {
			t.Fatalf("audit of stored recording: %+v %v", ev, err)
		}
		if err := sa.MarkStored(ctx, r.ID, store.RecordingStoredInfo{SHA256: "nothex", AudioSHA256: hashB}); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad hash: %v", err)
		}
	})
}

func TestRecordingsFilterAndPaging(t *testing.T) {
	backends(t, func(t *testing.T, h *harness) {
		ctx := context.Background()
		_, sa, sb := tenantsIn(t, h)
		var ids []string
		for i, call := range []string{"c1", "c1", "c2"} {
			r, _, err := sa.CreateRecording(ctx, newRecording(call, "key"+string(rune('0'+i))))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		if _, _, err := sb.CreateRecording(ctx, newRecording("c1", "other")); err != nil {
			t.Fatal(err)
		}
		c1, err := sa.Recordings(ctx, store.RecordingFilter{CallID: "c1"})
		if err != nil || len(c1) != 2 || c1[0].ID != ids[1] || c1[1].ID != ids[0] {
			t.Fatalf("by call, newest first: %v %v", c1, err)
		}
		page1, _ := sa.Recordings(ctx, store.RecordingFilter{Limit: 2})
		page2, _ := sa.Recordings(ctx, store.RecordingFilter{Limit: 2, Before: page1[len(page1)-1].ID})
		if len(page1) != 2 || len(page2) != 1 || page2[0].ID != ids[0] {
			t.Fatalf("paging: %v then %v", page1, page2)
		}
		if _, _, err := sa.CreateRecording(ctx, newRecording("c3", "key0")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("object keys are unique: %v", err)
		}
		bad := newRecording("", "k")
		if _, _, err := sa.CreateRecording(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("missing call id: %v", err)
		}
		bad = newRecording("c", "k")
		bad.State = "archived"
		if _, _, err := sa.CreateRecording(ctx, bad); !errors.Is(err, store.ErrInvalid) {
			t.Fatalf("bad state: %v", err)
		}
	})
}
