package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// storedRecording creates a call of user (may be "") and a stored recording
// of it that started at start.
func storedRecording(t *testing.T, sc *store.Scope, userID string, start time.Time) (store.Call, store.Recording) {
	t.Helper()
	ctx := context.Background()
	call := store.Call{ID: store.NewCallID(), UserID: userID, Direction: store.Outbound, Caller: "+14155550100", Callee: "+14155550199",
		ACallID: "a-" + store.NewCallID(), InviteAt: start, AnswerAt: start, EndAt: start.Add(time.Minute)}
	if err := sc.InsertCall(ctx, call); err != nil {
		t.Fatal(err)
	}
	rec := newRecording(call.ID, "rec/"+call.ID+".wav")
	rec.StartedAt = start
	r, _, err := sc.CreateRecording(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.MarkUploading(ctx, r.ID, store.RecordingEnd{EndedAt: start.Add(time.Minute), Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := sc.MarkStored(ctx, r.ID, store.RecordingStoredInfo{SHA256: hashA, AudioSHA256: hashB, SizeBytes: 44, Duration: time.Minute}); err != nil {
		t.Fatal(err)
	}
	r, err = sc.Recording(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return call, r
}

func TestHolds(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	call, rec := storedRecording(t, c.a, "", c.clock.Now())

	if _, err := c.a.PlaceHold(ctx, "no-such-call", "litigation"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("hold on unknown call: %v", err)
	}
	if _, err := c.b.PlaceHold(ctx, call.ID, "litigation"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("hold on another tenant's call: %v", err)
	}
	if _, err := c.a.PlaceHold(ctx, call.ID, "  "); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("hold without reason: %v", err)
	}
	if _, err := c.a.PlaceHold(ctx, call.ID, strings.Repeat("x", store.MaxReasonLen+1)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("hold with a novel as reason: %v", err)
	}
	h, err := c.a.PlaceHold(ctx, call.ID, "litigation 2025-17")
	if err != nil || !h.Active() || h.PlacedBy != "admin" || h.Reason != "litigation 2025-17" {
		t.Fatalf("place: %+v %v", h, err)
	}
	if _, err := c.a.PlaceHold(ctx, call.ID, "again"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second hold: %v", err)
	}
	if _, err := c.b.ReleaseHold(ctx, call.ID, "not yours"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("other tenant releases: %v", err)
	}
	if l, _ := c.b.Holds(ctx, store.HoldFilter{Released: true}); len(l) != 0 {
		t.Fatalf("other tenant lists holds: %v", l)
	}

	// A held call can be neither deleted nor have its recordings deleted.
	if err := c.a.DeleteCallMetadata(ctx, call.ID, "gdpr request"); !errors.Is(err, store.ErrOnHold) {
		t.Fatalf("delete held call: %v", err)
	}
	if _, err := c.a.BeginRecordingDeletion(ctx, rec.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "mistake"}); !errors.Is(err, store.ErrOnHold) {
		t.Fatalf("delete held recording: %v", err)
	}

	c.clock.Advance(time.Hour)
	if _, err := c.a.ReleaseHold(ctx, call.ID, ""); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("release without reason: %v", err)
	}
	r, err := c.a.ReleaseHold(ctx, call.ID, "case closed")
	if err != nil || r.Active() || r.ReleaseReason != "case closed" || r.ID != h.ID {
		t.Fatalf("release: %+v %v", r, err)
	}
	if _, err := c.a.ReleaseHold(ctx, call.ID, "again"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("release without a hold: %v", err)
	}
	if l, _ := c.a.Holds(ctx, store.HoldFilter{}); len(l) != 0 {
		t.Fatalf("released hold still listed as active: %v", l)
	}
	if l, _ := c.a.Holds(ctx, store.HoldFilter{CallID: call.ID, Released: true}); len(l) != 1 || l[0].ReleasedBy != "admin" {
		t.Fatalf("history: %+v", l)
	}
	ev, _ := c.a.AuditEvents(ctx, store.AuditFilter{})
	var actions []string
	for _, e := range ev {
		if strings.HasPrefix(e.Action, "hold.") {
			actions = append(actions, e.Action+" "+e.Object)
		}
	}
	if strings.Join(actions, ",") != "hold.release call:"+call.ID+",hold.place call:"+call.ID {
		t.Fatalf("audit: %v", actions)
	}

	// Once the call record is gone, its recordings can still be held.
	if err := c.a.DeleteCallMetadata(ctx, call.ID, "gdpr request"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.a.PlaceHold(ctx, call.ID, "late litigation"); err != nil {
		t.Fatalf("hold on a call known only by its recording: %v", err)
	}
}

// The store refuses what a role may not do, whoever calls it: the API's
// role table is not the only line.
func TestStoreRefusesLowerRoles(t *testing.T) {
	ctx := context.Background()
	c := openClocked(t)
	rep := c.user(t, c.a, "ann", store.RoleRep)
	manager := c.user(t, c.a, "mia", store.RoleManager)
	owner := c.user(t, c.a, "otto", store.RoleOwner)
	call, rec := storedRecording(t, c.a, "", c.clock.Now())
	tokens, _ := c.a.Tokens(ctx, store.TokenFilter{})
	for _, sc := range []*store.Scope{rep, manager} {
		who := sc.Principal().Username()
		for name, err := range map[string]error{
			"place hold":   func() error { _, err := sc.PlaceHold(ctx, call.ID, "x"); return err }(),
			"release hold": func() error { _, err := sc.ReleaseHold(ctx, call.ID, "x"); return err }(),
			"delete rec": func() error {
				_, err := sc.BeginRecordingDeletion(ctx, rec.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "x"})
				return err
			}(),
			"delete call": sc.DeleteCallMetadata(ctx, call.ID, "x"),
			"create token": func() error {
				_, _, err := sc.CreateToken(ctx, store.NewToken{Username: who, TTL: time.Hour})
				return err
			}(),
			"list tokens":  func() error { _, err := sc.Tokens(ctx, store.TokenFilter{}); return err }(),
			"revoke token": func() error { _, err := sc.RevokeToken(ctx, tokens[0].ID); return err }(),
		} {
			if !errors.Is(err, store.ErrNotPermitted) {
				t.Errorf("%s: %s: %v, want ErrNotPermitted", who, name, err)
			}
		}
	}
	if _, err := rep.AccessLog(ctx, store.AccessFilter{}); !errors.Is(err, store.ErrNotPermitted) {
		t.Errorf("rep reads the access log: %v", err)
	}
	if _, err := manager.AccessLog(ctx, store.AccessFilter{}); err != nil {
		t.Errorf("manager reads the access log: %v", err)
	}
	if _, err := owner.PlaceHold(ctx, call.ID, "owner may"); err != nil {
		t.Errorf("owner places a hold: %v", err)
	}
	if _, err := c.a.Tokens(ctx, store.TokenFilter{}); err != nil {
		t.Errorf("operator lists tokens: %v", err)
	}
}
