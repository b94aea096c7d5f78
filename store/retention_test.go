package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

func TestRecordingDeletion(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	now := c.clock.Now()
	day := 24 * time.Hour
	cutoff := now.Add(-30 * day)
	retention := store.DeletionRequest{Kind: store.DeleteRetention, RetentionDays: 30, Cutoff: cutoff}

	_, old := storedRecording(t, c.a, "", now.Add(-40*day))
	heldCall, held := storedRecording(t, c.a, "", now.Add(-50*day))
	_, fresh := storedRecording(t, c.a, "", now.Add(-10*day))
	uploading, _, err := c.a.CreateRecording(ctx, newRecording("c-up", "rec/up.wav"))
	if err != nil {
		t.Fatal(err)
	}
	_, other := storedRecording(t, c.b, "", now.Add(-40*day))
	if _, err := c.a.PlaceHold(ctx, heldCall.ID, "litigation"); err != nil {
		t.Fatal(err)
	}

	exp, err := c.a.ExpiredRecordings(ctx, cutoff, "", 10)
	if err != nil || len(exp) != 1 || exp[0].ID != old.ID {
		t.Fatalf("expired: %v %v; want only %s", exp, err, old.ID)
	}
	if n, err := c.a.HeldExpiredRecordings(ctx, cutoff); err != nil || n != 1 {
		t.Fatalf("held expired: %d %v", n, err)
	}

	for name, c := range map[string]struct {
		sc  *store.Scope
		id  string
		req store.DeletionRequest
		is  error
	}{
		"held":              {c.a, held.ID, retention, store.ErrOnHold},
		"within retention":  {c.a, fresh.ID, retention, store.ErrConflict},
		"not stored":        {c.a, uploading.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "x"}, store.ErrConflict},
		"other tenant":      {c.a, other.ID, retention, store.ErrNotFound},
		"owner, no reason":  {c.a, fresh.ID, store.DeletionRequest{Kind: store.DeleteByOwner}, store.ErrInvalid},
		"retention, no day": {c.a, old.ID, store.DeletionRequest{Kind: store.DeleteRetention}, store.ErrInvalid},
		"unknown kind":      {c.a, old.ID, store.DeletionRequest{Kind: "whim", Reason: "x"}, store.ErrInvalid},
	} {
		if _, err := c.sc.BeginRecordingDeletion(ctx, c.id, c.req); !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want %v", name, err, c.is)
		}
	}
	if p, _ := c.a.PendingDeletions(ctx); len(p) != 0 {
		t.Fatalf("refused deletions left intents: %v", p)
	}

	d, err := c.a.BeginRecordingDeletion(ctx, old.ID, retention)
	if err != nil || d.ObjectKey != old.ObjectKey || d.Kind != store.DeleteRetention || d.Actor != "admin" {
		t.Fatalf("begin: %+v %v", d, err)
	}
	if again, err := c.a.BeginRecordingDeletion(ctx, old.ID, retention); err != nil || again.StartedAt != d.StartedAt {
		t.Fatalf("begin twice must resume the first: %+v %v", again, err)
	}
	if pending, _ := c.a.DeletionPending(ctx, old.ID); !pending {
		t.Fatal("deletion not pending")
	}
	if exp, _ := c.a.ExpiredRecordings(ctx, cutoff, "", 10); len(exp) != 0 {
		t.Fatalf("a recording being deleted is still a candidate: %v", exp)
	}
	if p, _ := c.a.PendingDeletions(ctx); len(p) != 1 || p[0].RecordingID != old.ID {
		t.Fatalf("pending: %v", p)
	}
	if err := c.b.FinishRecordingDeletion(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant finishes: %v", err)
	}
	if err := c.a.FinishRecordingDeletion(ctx, fresh.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("finish without begin: %v", err)
	}
	if err := c.a.FinishRecordingDeletion(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.a.Recording(ctx, old.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("metadata survived: %v", err)
	}
	if p, _ := c.a.PendingDeletions(ctx); len(p) != 0 {
		t.Fatalf("intent survived: %v", p)
	}
	ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{Action: "recording.delete"})
	if len(ev) != 1 || ev[0].Object != "recording:"+old.ID || ev[0].Details["kind"] != "retention" ||
		ev[0].Details["sha256"] != hashA || ev[0].Details["object_key"] != old.ObjectKey || ev[0].Details["retention_days"] != float64(30) {
		t.Fatalf("audit: %+v", ev)
	}
	if _, err := c.b.Recording(ctx, other.ID); err != nil {
		t.Fatalf("other tenant's recording touched: %v", err)
	}
}

// An owner's deletion interrupted after its intent is finished by the sweep
// (system) and still names the owner and the reason.
func TestOwnerDeletionResumedKeepsTheOwner(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	owner := c.user(t, c.a, "olivia", store.RoleOwner)
	_, rec := storedRecording(t, c.a, "", c.clock.Now())
	if _, err := owner.BeginRecordingDeletion(ctx, rec.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "recorded by mistake"}); err != nil {
		t.Fatal(err)
	}
	sys := c.db.In(store.System(c.ta.ID))
	if err := sys.FinishRecordingDeletion(ctx, rec.ID); err != nil {
		t.Fatal(err)
	}
	ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{Action: "recording.delete"})
	if len(ev) != 1 || ev[0].Actor != "user:olivia" || ev[0].Details["reason"] != "recorded by mistake" || ev[0].Details["kind"] != "owner" {
		t.Fatalf("audit: %+v", ev)
	}
}

func TestDeleteCallMetadataKeepsRecordings(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	call, rec := storedRecording(t, c.a, "", c.clock.Now())
	if err := c.a.DeleteCallMetadata(ctx, call.ID, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("no reason: %v", err)
	}
	if err := c.b.DeleteCallMetadata(ctx, call.ID, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant: %v", err)
	}
	if err := c.a.DeleteCallMetadata(ctx, call.ID, "subject erasure request #12"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.a.Call(ctx, call.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("call survived: %v", err)
	}
	if got, err := c.a.Recording(ctx, rec.ID); err != nil || got.SHA256 != rec.SHA256 {
		t.Fatalf("recording lost with its call's metadata: %v", err)
	}
	if err := c.a.DeleteCallMetadata(ctx, call.ID, "again"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{Action: "call.delete"})
	if len(ev) != 1 || ev[0].Details["reason"] != "subject erasure request #12" || ev[0].Details["recordings_kept"] != float64(1) {
		t.Fatalf("audit: %+v", ev)
	}
}
