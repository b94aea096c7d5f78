package policy

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/blackbox-gw/blackbox/store"
)

func TestBurstSuspensionSurvivesRestartAndIsLifted(t *testing.T) {
	f := newFixture(t, `
defaults:
  anomaly:
    user: {attempts: {max: 5, window: 1m}}
`, "alice", "bob")
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		if d := f.decide(f.e, f.req("alice", "+14155550100")); !d.Allow {
			t.Fatalf("attempt %d: %q", i, d.Reason)
		}
		f.clock.Advance(time.Second)
	}
	d := f.decide(f.e, f.req("alice", "+14155550100"))
	if d.Allow || d.Reason != ReasonSuspended {
		t.Fatalf("6th attempt in a minute: %q %s", d.Reason, d.Detail)
	}
	if got := testutil.ToFloat64(f.e.m.suspensions.WithLabelValues("user", "attempts")); got != 1 {
		t.Fatalf("suspensions_total = %v", got)
	}
	if d := f.decide(f.e, f.req("bob", "+14155550100")); !d.Allow {
		t.Fatalf("bob is not suspended: %q", d.Reason)
	}

	// Restart: a new store handle and engine on the same file.
	f.db.Close()
	f.clock.Advance(10 * time.Minute) // long past the window
	f.open()
	p, _ := f.db.AdminScope(ctx, "acme")
	f.admin = f.db.In(p)
	f.e = f.engine(nil)
	d = f.decide(f.e, f.req("alice", "+14155550100"))
	if d.Reason != ReasonSuspended {
		t.Fatalf("after restart: %q", d.Reason)
	}
	if d := f.decide(f.e, f.req("alice", "911")); !d.Allow || !d.Emergency {
		t.Fatalf("911 while suspended: %+v", d)
	}
	list, err := f.admin.Suspensions(ctx, store.SuspensionFilter{})
	if err != nil || len(list) != 1 || list[0].Username != "alice" || list[0].Cause != "attempts" || !list[0].Active() {
		t.Fatalf("list: %+v %v", list, err)
	}

	// A rep may not lift it; the owner (operator CLI) may.
	acct, _ := f.db.SIPAccount(ctx, "alice")
	if _, err := f.db.In(acct.Principal).LiftSuspensions(ctx, "alice"); !errors.Is(err, store.ErrNotPermitted) {
		t.Fatalf("rep lifting: %v", err)
	}
	lifted, err := f.admin.LiftSuspensions(ctx, "alice")
	if err != nil || len(lifted) != 1 || lifted[0].LiftedBy != "admin" {
		t.Fatalf("lift: %+v %v", lifted, err)
	}
	if active, _ := f.admin.Suspensions(ctx, store.SuspensionFilter{}); len(active) != 0 {
		t.Fatalf("still active: %+v", active)
	}
	if all, _ := f.admin.Suspensions(ctx, store.SuspensionFilter{Username: "alice", Lifted: true}); len(all) != 1 || all[0].Active() {
		t.Fatalf("history: %+v", all)
	}
	// The windows restart at the lift: five more attempts pass at once.
	for i := 0; i < 5; i++ {
		if d := f.decide(f.e, f.req("alice", "+14155550100")); !d.Allow {
			t.Fatalf("after lift, attempt %d: %q %s", i, d.Reason, d.Detail)
		}
	}
	if n := len(f.audits("policy.suspend")); n != 1 {
		t.Fatalf("%d suspend audit events", n)
	}
	if evs := f.audits("policy.lift"); len(evs) != 1 || evs[0].Object != "user:alice" || evs[0].Actor != "admin" {
		t.Fatalf("lift audit: %+v", evs)
	}
}

func TestFailureShareSuspends(t *testing.T) {
	f := newFixture(t, `
defaults:
  anomaly:
    user: {failures: {max_percent: 50, min_calls: 4, short_call: 5s, window: 1h}}
`, "alice")
	ctx := context.Background()
	for i, o := range []Outcome{
		{Answered: true, Talk: time.Minute},
		{Answered: false},
		{Answered: true, Talk: 2 * time.Second}, // very short
		{Answered: false},                       // 3 of 4 bad: 75% > 50%
	} {
		d := f.decide(f.e, f.req("alice", "+14155550100"))
		if !d.Allow {
			t.Fatalf("call %d: %q %s", i, d.Reason, d.Detail)
		}
		if err := f.e.Finish(ctx, d.Ticket, o); err != nil {
			t.Fatal(err)
		}
	}
	list, _ := f.admin.Suspensions(ctx, store.SuspensionFilter{})
	if len(list) != 1 || list[0].Cause != "failures" {
		t.Fatalf("suspensions: %+v", list)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550100")); d.Reason != ReasonSuspended {
		t.Fatalf("after failures: %q", d.Reason)
	}
}

func TestSpreadAndTenantSuspension(t *testing.T) {
	f := newFixture(t, `
defaults:
  anomaly:
    user: {spread: {max_countries: 2, window: 1h}}
    tenant: {attempts: {max: 6, window: 1h}}
`, "alice", "bob", "carol")
	// US, CA, then GB (refused by the allowlist, still counted): 3 countries.
	for _, n := range []string{"+14155550100", "+14165550100", "+14155550101"} {
		if d := f.decide(f.e, f.req("alice", n)); !d.Allow {
			t.Fatalf("%s: %q", n, d.Reason)
		}
	}
	d := f.decide(f.e, f.req("alice", "+442079460000"))
	if d.Reason != ReasonCountryNotAllowed || d.Allow {
		t.Fatalf("GB: %q", d.Reason)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550100")); d.Reason != ReasonSuspended {
		t.Fatalf("after spreading over 3 countries: %q", d.Reason)
	}
	// 5 attempts so far; bob's second attempt is the tenant's 7th.
	if d := f.decide(f.e, f.req("bob", "+14155550100")); !d.Allow {
		t.Fatalf("bob: %q", d.Reason)
	}
	if d := f.decide(f.e, f.req("bob", "+14155550100")); d.Reason != ReasonSuspended {
		t.Fatalf("tenant burst: %q %s", d.Reason, d.Detail)
	}
	if d := f.decide(f.e, f.req("carol", "+14155550100")); d.Reason != ReasonSuspended {
		t.Fatalf("carol under the tenant suspension: %q", d.Reason)
	}
	ctx := context.Background()
	if lifted, err := f.admin.LiftSuspensions(ctx, ""); err != nil || len(lifted) != 1 || lifted[0].UserID != "" {
		t.Fatalf("lift tenant: %+v %v", lifted, err)
	}
	if d := f.decide(f.e, f.req("carol", "+14155550100")); !d.Allow {
		t.Fatalf("after the tenant lift: %q", d.Reason)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550100")); d.Reason != ReasonSuspended {
		t.Fatalf("alice's own suspension stands: %q", d.Reason)
	}
}
