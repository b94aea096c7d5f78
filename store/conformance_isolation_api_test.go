package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// The isolation cases of the policy counters, API tokens, playback log,
// legal holds and retention.
func init() {
	for name, fn := range map[string]func(t *testing.T, f *isolationFixture){
		"DB.PolicyAdmit": func(t *testing.T, f *isolationFixture) {
			ctx := context.Background()
			u, err := f.b.CreateUser(ctx, store.NewUser{Username: "gina-2", Role: store.RoleRep, Realm: "bb", Password: "correct horse"})
			if err != nil {
				t.Fatal(err)
			}
			// B holds one active slot; A's active slot must not count toward
			// B's limit of two.
			now := time.Now().UTC()
			v, err := f.db.PolicyAdmit(ctx, store.PolicyAdmission{TenantID: f.b.Principal().TenantID(), UserID: u.ID, Username: u.Username,
				CallID: "b-call", Node: "n1", At: now, Number: "+14155550111", Lease: time.Hour, Deadline: now.Add(time.Hour),
				Limits: store.PolicyLimits{TenantConcurrent: 2}, Spend: store.PolicySpend{Day: now, Month: now}})
			if err != nil || !v.Admitted {
				t.Errorf("B's admission under a limit A's slot would fill: %+v %v", v, err)
			}
		},
		"DB.PolicyExtend": func(t *testing.T, f *isolationFixture) {
			_, err := f.db.PolicyExtend(context.Background(), store.PolicyExtension{TenantID: f.b.Principal().TenantID(), UserID: f.A.user.ID,
				SlotID: f.A.slot, At: time.Now(), Want: 5})
			expectErr(t, "PolicyExtend of A's slot in B", err, store.ErrNotFound)
		},
		"DB.PolicySettle": func(t *testing.T, f *isolationFixture) {
			_, err := f.db.PolicySettle(context.Background(), store.PolicySettlement{TenantID: f.b.Principal().TenantID(), UserID: f.A.user.ID,
				SlotID: f.A.slot, At: time.Now(), Cost: 1000})
			expectErr(t, "PolicySettle of A's slot in B", err, store.ErrNotFound)
		},
		"DB.PolicyRenew": func(t *testing.T, f *isolationFixture) {
			// Gateway-wide by node: a node renews its slots in every tenant.
			n, err := f.db.PolicyRenew(context.Background(), "n1", time.Now(), time.Now().Add(time.Hour))
			if err != nil || n < 2 {
				t.Errorf("PolicyRenew renewed %d slots (%v); want both tenants'", n, err)
			}
		},
		"DB.PolicySweep": func(t *testing.T, f *isolationFixture) {
			if res, err := f.db.PolicySweep(context.Background(), time.Now(), 24*time.Hour); err != nil || res.Lapsed != 0 {
				t.Errorf("PolicySweep lapsed live slots: %+v %v", res, err)
			}
		},
		"DB.PolicyAudit": func(t *testing.T, f *isolationFixture) {
			ctx := context.Background()
			if err := f.db.PolicyAudit(ctx, f.b.Principal().TenantID(), "test.policy", "user:gina", nil); err != nil {
				t.Fatal(err)
			}
			evs, err := f.b.AuditEvents(ctx, store.AuditFilter{Action: "test.policy"})
			if err != nil || len(evs) != 1 {
				t.Errorf("PolicyAudit in B: %v %v", evs, err)
			}
		},
		"Scope.PolicySpent": func(t *testing.T, f *isolationFixture) {
			if n, err := f.b.PolicySpent(context.Background(), f.A.user.ID, time.Time{}); err != nil || n != 0 {
				t.Errorf("B's PolicySpent of A's user = %d %v", n, err)
			}
		},
		"Scope.Suspensions": func(t *testing.T, f *isolationFixture) {
			ss, err := f.b.Suspensions(context.Background(), store.SuspensionFilter{Lifted: true})
			onlyTenant(t, "Suspensions", ss, err, f.b.Principal().TenantID(), func(s store.Suspension) string { return s.TenantID })
		},
		"Scope.LiftSuspensions": func(t *testing.T, f *isolationFixture) {
			_, err := f.b.LiftSuspensions(context.Background(), f.A.user.Username)
			expectErr(t, "LiftSuspensions of A's user", err, store.ErrNotFound)
		},
		"DB.TokenPrincipal": func(t *testing.T, f *isolationFixture) {
			p, err := f.db.TokenPrincipal(context.Background(), f.A.secret)
			if err != nil || p.TenantID() != f.a.Principal().TenantID() || p.UserID() != f.A.user.ID {
				t.Errorf("A's token authenticates %+v %v", p, err)
			}
		},
		"Scope.CreateToken": func(t *testing.T, f *isolationFixture) {
			_, _, err := f.b.CreateToken(context.Background(), store.NewToken{Username: f.A.user.Username, TTL: time.Hour})
			expectErr(t, "CreateToken for A's user", err, store.ErrNotFound)
		},
		"Scope.Tokens": func(t *testing.T, f *isolationFixture) {
			ts, err := f.b.Tokens(context.Background(), store.TokenFilter{})
			onlyTenant(t, "Tokens", ts, err, f.b.Principal().TenantID(), func(tk store.Token) string { return tk.TenantID })
		},
		"Scope.RevokeToken": func(t *testing.T, f *isolationFixture) {
			_, err := f.b.RevokeToken(context.Background(), f.A.token.ID)
			expectErr(t, "RevokeToken of A's", err, store.ErrNotFound)
		},
		"Scope.LogAccess": func(t *testing.T, f *isolationFixture) {
			// The entry is B's own, whatever recording id B names.
			e, _, err := f.b.LogAccess(context.Background(), store.Access{RecordingID: f.A.rec.ID, CallID: f.A.call.ID, UserID: f.B.user.ID,
				Username: f.B.user.Username, Path: store.AccessProxy, RemoteAddr: "203.0.113.1"}, time.Minute)
			if err != nil || e.TenantID != f.b.Principal().TenantID() {
				t.Errorf("LogAccess in B: %+v %v", e, err)
			}
		},
		"Scope.AddAccessBytes": func(t *testing.T, f *isolationFixture) {
			if err := f.b.AddAccessBytes(context.Background(), f.A.access.ID, 1<<20); err != nil {
				t.Errorf("AddAccessBytes: %v", err)
			}
		},
		"Scope.AccessLog": func(t *testing.T, f *isolationFixture) {
			es, err := f.b.AccessLog(context.Background(), store.AccessFilter{UserID: f.A.user.ID})
			if err != nil || len(es) != 0 {
				t.Errorf("AccessLog of A's user = %v %v", es, err)
			}
		},
		"Scope.SearchCalls": func(t *testing.T, f *isolationFixture) {
			cs, err := f.b.SearchCalls(context.Background(), store.CallQuery{})
			onlyTenant(t, "SearchCalls", cs, err, f.b.Principal().TenantID(), func(c store.Call) string { return c.TenantID })
		},
		"Scope.SearchRecordings": func(t *testing.T, f *isolationFixture) {
			rs, err := f.b.SearchRecordings(context.Background(), store.RecordingQuery{CallID: f.A.call.ID})
			if err != nil || len(rs) != 0 {
				t.Errorf("SearchRecordings of A's call = %v %v", rs, err)
			}
		},
		"Scope.PlaceHold": func(t *testing.T, f *isolationFixture) {
			_, err := f.b.PlaceHold(context.Background(), f.A.doomed.CallID, "fishing")
			expectErr(t, "PlaceHold on A's call", err, store.ErrNotFound)
		},
		"Scope.ReleaseHold": func(t *testing.T, f *isolationFixture) {
			_, err := f.b.ReleaseHold(context.Background(), f.A.call.ID, "let it go")
			expectErr(t, "ReleaseHold of A's call", err, store.ErrNotFound)
		},
		"Scope.Holds": func(t *testing.T, f *isolationFixture) {
			hs, err := f.b.Holds(context.Background(), store.HoldFilter{CallID: f.A.call.ID, Released: true})
			if err != nil || len(hs) != 0 {
				t.Errorf("Holds of A's call = %v %v", hs, err)
			}
		},
		"Scope.ExpiredRecordings": func(t *testing.T, f *isolationFixture) {
			rs, err := f.b.ExpiredRecordings(context.Background(), time.Now().Add(time.Hour), "", 1000)
			onlyTenant(t, "ExpiredRecordings", rs, err, f.b.Principal().TenantID(), func(r store.Recording) string { return r.TenantID })
		},
		"Scope.HeldExpiredRecordings": func(t *testing.T, f *isolationFixture) {
			ctx := context.Background()
			nb, errB := f.b.HeldExpiredRecordings(ctx, time.Now().Add(time.Hour))
			na, errA := f.a.HeldExpiredRecordings(ctx, time.Now().Add(time.Hour))
			if errA != nil || errB != nil || na != nb {
				t.Errorf("two tenants shaped alike count %d and %d held recordings (%v %v)", na, nb, errA, errB)
			}
		},
		"Scope.BeginRecordingDeletion": func(t *testing.T, f *isolationFixture) {
			_, err := f.b.BeginRecordingDeletion(context.Background(), f.A.rec.ID, store.DeletionRequest{Kind: store.DeleteByOwner, Reason: "mine now"})
			expectErr(t, "BeginRecordingDeletion of A's", err, store.ErrNotFound)
		},
		"Scope.FinishRecordingDeletion": func(t *testing.T, f *isolationFixture) {
			expectErr(t, "FinishRecordingDeletion of A's", f.b.FinishRecordingDeletion(context.Background(), f.A.doomed.ID), store.ErrNotFound)
		},
		"Scope.PendingDeletions": func(t *testing.T, f *isolationFixture) {
			ds, err := f.b.PendingDeletions(context.Background())
			onlyTenant(t, "PendingDeletions", ds, err, f.b.Principal().TenantID(), func(d store.RecordingDeletion) string { return d.TenantID })
		},
		"Scope.DeletionPending": func(t *testing.T, f *isolationFixture) {
			if ok, err := f.b.DeletionPending(context.Background(), f.A.doomed.ID); err != nil || ok {
				t.Errorf("B's DeletionPending of A's = %v %v", ok, err)
			}
		},
		"Scope.DeleteCallMetadata": func(t *testing.T, f *isolationFixture) {
			err := f.b.DeleteCallMetadata(context.Background(), f.A.doomed.CallID, "tidy up")
			expectErr(t, "DeleteCallMetadata of A's call", err, store.ErrNotFound)
		},
	} {
		isolationCases[name] = fn
	}
}
