package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

type policyEnv struct {
	db       *store.DB
	a, b     *store.Scope
	alice    store.User
	gina     store.User
	now      time.Time
	tenantA  string
	tenantB  string
	manager  *store.Scope
	rep      *store.Scope
	spendDay time.Time
}

func newPolicyEnv(t *testing.T) *policyEnv {
	t.Helper()
	ctx := context.Background()
	db, _ := openTest(t)
	e := &policyEnv{db: db, now: time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)}
	for _, n := range []string{"acme", "globex"} {
		if _, err := db.CreateTenant(ctx, n, "US"); err != nil {
			t.Fatal(err)
		}
	}
	pa, _ := db.AdminScope(ctx, "acme")
	pb, _ := db.AdminScope(ctx, "globex")
	e.a, e.b, e.tenantA, e.tenantB = db.In(pa), db.In(pb), pa.TenantID(), pb.TenantID()
	var err error
	if e.alice, err = e.a.CreateUser(ctx, store.NewUser{Username: "alice", Role: store.RoleRep, Realm: "bb", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	if _, err = e.a.CreateUser(ctx, store.NewUser{Username: "mona", Role: store.RoleManager, Realm: "bb", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	if e.gina, err = e.b.CreateUser(ctx, store.NewUser{Username: "gina", Role: store.RoleRep, Realm: "bb", Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	mona, _ := db.SIPAccount(ctx, "mona")
	alice, _ := db.SIPAccount(ctx, "alice")
	e.manager, e.rep = db.In(mona.Principal), db.In(alice.Principal)
	e.spendDay = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	return e
}

func (e *policyEnv) admission(tenant, user, call string) store.PolicyAdmission {
	return store.PolicyAdmission{TenantID: tenant, UserID: user, Username: "u", CallID: call, Node: "n1", At: e.now,
		Number: "+14155550100", Country: "US", Prefix: "1415", Lease: time.Minute, Deadline: e.now.Add(time.Hour),
		Spend: store.PolicySpend{Day: e.spendDay, Month: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}}
}

func TestPolicyAdmitValidates(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	for _, a := range []store.PolicyAdmission{
		{UserID: e.alice.ID, At: e.now},
		{TenantID: e.tenantA, At: e.now},
		{TenantID: e.tenantA, UserID: e.alice.ID},
		{TenantID: e.tenantA, UserID: e.alice.ID, At: e.now, Reserve: -1},
	} {
		if _, err := e.db.PolicyAdmit(ctx, a); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("%+v: want ErrInvalid, got %v", a, err)
		}
	}
}

// One tenant's counters never limit another's.
func TestPolicyCountersAreTenantScoped(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	lim := store.PolicyLimits{UserPerMinute: 1, TenantConcurrent: 1, TenantPerSecond: 1}
	a := e.admission(e.tenantA, e.alice.ID, "a1")
	a.Limits = lim
	v, err := e.db.PolicyAdmit(ctx, a)
	if err != nil || !v.Admitted || v.SlotID == "" {
		t.Fatalf("first: %+v %v", v, err)
	}
	a.CallID = "a2"
	if v, _ := e.db.PolicyAdmit(ctx, a); v.Admitted || v.Limit != store.LimitConcurrent {
		t.Fatalf("second in A: %+v", v)
	}
	b := e.admission(e.tenantB, e.gina.ID, "b1")
	b.Limits = lim
	if v, err := e.db.PolicyAdmit(ctx, b); err != nil || !v.Admitted {
		t.Fatalf("tenant B limited by A: %+v %v", v, err)
	}
	// A user id of another tenant finds no slot in this one.
	if _, err := e.db.PolicySettle(ctx, store.PolicySettlement{TenantID: e.tenantB, UserID: e.alice.ID, SlotID: "nope", At: e.now}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("settle unknown slot: %v", err)
	}
	// Denials are audited in the same transaction, in the right tenant.
	if evs, _ := e.a.AuditEvents(ctx, store.AuditFilter{Action: "policy.deny"}); len(evs) != 1 || evs[0].Details["reason"] != "concurrent_limit" {
		t.Fatalf("A's denial audit: %+v", evs)
	}
	if evs, _ := e.b.AuditEvents(ctx, store.AuditFilter{Action: "policy.deny"}); len(evs) != 0 {
		t.Fatalf("B sees A's denial: %+v", evs)
	}
}

func TestPolicySettleChecks(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	a := e.admission(e.tenantA, e.alice.ID, "c1")
	a.Denied = "country_not_allowed"
	v, err := e.db.PolicyAdmit(ctx, a)
	if err != nil || v.Admitted || v.SlotID != "" {
		t.Fatalf("denied admission: %+v %v", v, err)
	}
	a.Denied, a.Reserve, a.CallID = "", 30, "c2"
	v, err = e.db.PolicyAdmit(ctx, a)
	if err != nil || !v.Admitted || v.Reserved != 30 {
		t.Fatalf("admission: %+v %v", v, err)
	}
	if _, err := e.db.PolicySettle(ctx, store.PolicySettlement{TenantID: e.tenantA, UserID: "someone-else", SlotID: v.SlotID, At: e.now}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("settle as another user: %v", err)
	}
	if _, err := e.db.PolicySettle(ctx, store.PolicySettlement{TenantID: e.tenantA, UserID: e.alice.ID, SlotID: v.SlotID, At: e.now, Cost: -1}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("negative cost: %v", err)
	}
	res, err := e.db.PolicySettle(ctx, store.PolicySettlement{TenantID: e.tenantA, UserID: e.alice.ID, SlotID: v.SlotID, At: e.now, Answered: true, Talk: time.Minute, Cost: 12})
	if err != nil || res.Charged != 12 || res.Already {
		t.Fatalf("settle: %+v %v", res, err)
	}
	for _, who := range []string{"", e.alice.ID} {
		if n, err := e.a.PolicySpent(ctx, who, e.spendDay); err != nil || n != 12 {
			t.Fatalf("spent(%q) = %d %v", who, n, err)
		}
	}
	if n, _ := e.b.PolicySpent(ctx, "", e.spendDay); n != 0 {
		t.Fatalf("tenant B sees A's spend: %d", n)
	}
	if _, err := e.db.PolicyExtend(ctx, store.PolicyExtension{TenantID: e.tenantA, UserID: e.alice.ID, SlotID: v.SlotID, At: e.now, Want: 5}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("extend a settled slot: %v", err)
	}
}

func TestPolicyRetryAfterAndRenew(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	a := e.admission(e.tenantA, e.alice.ID, "r")
	a.Limits.UserPerMinute = 2
	for _, off := range []time.Duration{0, 20 * time.Second} {
		a.At = e.now.Add(off)
		if v, err := e.db.PolicyAdmit(ctx, a); err != nil || !v.Admitted {
			t.Fatalf("%s: %+v %v", off, v, err)
		}
	}
	a.At = e.now.Add(30500 * time.Millisecond)
	v, err := e.db.PolicyAdmit(ctx, a)
	// The first call leaves the window at +60 s: 29.5 s from now, rounded up.
	if err != nil || v.Admitted || v.Limit != store.LimitRate || v.RetryAfter != 30*time.Second {
		t.Fatalf("third: %+v %v", v, err)
	}
	if n, err := e.db.PolicyRenew(ctx, "n1", e.now.Add(30*time.Second), e.now.Add(10*time.Minute)); err != nil || n != 2 {
		t.Fatalf("renew: %d %v", n, err)
	}
	if n, err := e.db.PolicyRenew(ctx, "n2", e.now, e.now.Add(10*time.Minute)); err != nil || n != 0 {
		t.Fatalf("renew another node: %d %v", n, err)
	}
	if _, err := e.db.PolicyRenew(ctx, "", e.now, e.now); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("renew without node: %v", err)
	}
	res, err := e.db.PolicySweep(ctx, e.now.Add(5*time.Minute), time.Hour)
	if err != nil || res.Lapsed != 0 {
		t.Fatalf("renewed slots swept: %+v %v", res, err)
	}
	res, err = e.db.PolicySweep(ctx, e.now.Add(11*time.Minute), time.Hour)
	if err != nil || res.Lapsed != 2 {
		t.Fatalf("expired slots: %+v %v", res, err)
	}
	res, err = e.db.PolicySweep(ctx, e.now.Add(3*time.Hour), time.Hour)
	if err != nil || res.Pruned != 3 {
		t.Fatalf("prune: %+v %v", res, err)
	}
}

func TestSuspensionLiftPermissions(t *testing.T) {
	e := newPolicyEnv(t)
	ctx := context.Background()
	a := e.admission(e.tenantA, e.alice.ID, "s")
	a.Username = "alice"
	a.Anomaly.User = store.AnomalyRule{MaxAttempts: 1, AttemptsWindow: time.Minute}
	if v, _ := e.db.PolicyAdmit(ctx, a); !v.Admitted {
		t.Fatalf("first: %+v", v)
	}
	v, err := e.db.PolicyAdmit(ctx, a)
	if err != nil || v.Admitted || v.Suspension == nil || v.Suspension.Cause != "attempts" {
		t.Fatalf("second: %+v %v", v, err)
	}
	if list, _ := e.b.Suspensions(ctx, store.SuspensionFilter{}); len(list) != 0 {
		t.Fatalf("tenant B sees A's suspension")
	}
	if _, err := e.rep.LiftSuspensions(ctx, "alice"); !errors.Is(err, store.ErrNotPermitted) {
		t.Fatalf("rep lifts: %v", err)
	}
	if _, err := e.b.LiftSuspensions(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("tenant B lifts A's user: %v", err)
	}
	lifted, err := e.manager.LiftSuspensions(ctx, "alice")
	if err != nil || len(lifted) != 1 || lifted[0].LiftedBy != "user:mona" {
		t.Fatalf("manager lifts: %+v %v", lifted, err)
	}
	if again, err := e.manager.LiftSuspensions(ctx, "alice"); err != nil || len(again) != 0 {
		t.Fatalf("lifting twice: %+v %v", again, err)
	}
	if evs, _ := e.a.AuditEvents(ctx, store.AuditFilter{Action: "policy.lift"}); len(evs) != 1 || evs[0].Actor != "user:mona" {
		t.Fatalf("lift audit: %+v", evs)
	}
}
