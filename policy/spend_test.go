package policy

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRateArithmetic(t *testing.T) {
	for _, c := range []struct {
		r       rate
		talk    time.Duration
		billed  time.Duration
		cost    int64
		covered int64 // amount whose covered() is asserted against...
		cover   time.Duration
	}{
		{rate{perMinute: 10, increment: time.Minute}, 0, 0, 0, 10, time.Minute},
		{rate{perMinute: 10, increment: time.Minute}, time.Second, time.Minute, 10, 9, 0},
		{rate{perMinute: 10, increment: time.Minute}, 61 * time.Second, 2 * time.Minute, 20, 25, 2 * time.Minute},
		{rate{perMinute: 1, increment: 6 * time.Second, minimum: 6 * time.Second}, 7 * time.Second, 12 * time.Second, 1, 1, time.Minute},
		{rate{perMinute: 7, increment: 6 * time.Second}, 30 * time.Second, 30 * time.Second, 4, 4, 30 * time.Second},
		{rate{perMinute: 3, increment: time.Second, minimum: 30 * time.Second}, 10 * time.Second, 30 * time.Second, 2, 1, 0},
		{rate{perMinute: 0, increment: time.Second}, time.Hour, time.Hour, 0, 0, maxBilled},
		{rate{perMinute: 5, increment: time.Second}, 1000 * 24 * time.Hour, maxBilled, 5 * 14400, 0, 0},
	} {
		if b := c.r.billed(c.talk); b != c.billed {
			t.Errorf("%+v billed(%s) = %s, want %s", c.r, c.talk, b, c.billed)
		}
		if got := c.r.cost(c.talk); got != c.cost {
			t.Errorf("%+v cost(%s) = %d, want %d", c.r, c.talk, got, c.cost)
		}
		if got := c.r.covered(c.covered); got != c.cover {
			t.Errorf("%+v covered(%d) = %s, want %s", c.r, c.covered, got, c.cover)
		}
		if got := c.r.covered(c.covered); c.r.cost(got) > c.covered {
			t.Errorf("%+v: covered(%d)=%s costs %d", c.r, c.covered, got, c.r.cost(got))
		}
	}
}

const spendPolicy = `
defaults:
  spend:
    timezone: America/New_York
    reserve: 5m
    on_cap: end
    rates: [{prefix: "+1", per_minute: 10, increment: 60s}]
    caps: {daily: 1000, monthly: 5000}
    user_caps: {daily: 120}
`

func TestSpendReserveSettleExtend(t *testing.T) {
	f := newFixture(t, spendPolicy, "alice")
	ctx := context.Background()
	spent := func() int64 {
		t.Helper()
		day, _ := f.e.cur.Load().defaults.spend.periods(f.clock.Now())
		n, err := f.admin.PolicySpent(ctx, f.users["alice"].ID, day)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	c1 := f.decide(f.e, f.req("alice", "+14155550100"))
	c2 := f.decide(f.e, f.req("alice", "+14155550101"))
	for _, c := range []Decision{c1, c2} {
		if !c.Allow || c.Ticket.Reserved != 50 || c.MaxDuration != 5*time.Minute {
			t.Fatalf("reserve: %+v", c)
		}
	}
	if d := f.decide(f.e, f.req("alice", "+14155550102")); d.Reason != ReasonSpendCap {
		t.Fatalf("100 of 120 reserved, a third 50 must not fit: %q %s", d.Reason, d.Detail)
	}
	// Settle call 1 from billed duration: 90 s bill as 2 min = 20.
	if err := f.e.Finish(ctx, c1.Ticket, Outcome{Answered: true, Talk: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := spent(); got != 20 {
		t.Fatalf("spent %d, want 20", got)
	}
	if err := f.e.Finish(ctx, c1.Ticket, Outcome{Answered: true, Talk: 90 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if got := spent(); got != 20 {
		t.Fatalf("finishing twice charged twice: %d", got)
	}
	c3 := f.decide(f.e, f.req("alice", "+14155550102"))
	if !c3.Allow {
		t.Fatalf("120-20-50 leaves exactly 50: %q %s", c3.Reason, c3.Detail)
	}
	// Call 2 used its reservation; the cap has nothing left while call 3 holds 50.
	if added, err := f.e.Extend(ctx, &c2.Ticket); err != nil || added != 0 {
		t.Fatalf("extend at the cap: %s %v", added, err)
	}
	if err := f.e.Finish(ctx, c3.Ticket, Outcome{Answered: false}); err != nil {
		t.Fatal(err)
	}
	added, err := f.e.Extend(ctx, &c2.Ticket)
	if err != nil || added != 5*time.Minute || c2.Ticket.MaxDuration != 10*time.Minute || c2.Ticket.Reserved != 100 {
		t.Fatalf("extend: +%s max %s reserved %d %v", added, c2.Ticket.MaxDuration, c2.Ticket.Reserved, err)
	}
	if err := f.e.Finish(ctx, c2.Ticket, Outcome{Answered: true, Talk: 7 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if got := spent(); got != 90 {
		t.Fatalf("spent %d, want 90", got)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550103")); d.Reason != ReasonSpendCap {
		t.Fatalf("30 left of the daily cap: %q", d.Reason)
	}
	if _, err := f.e.Extend(ctx, &c2.Ticket); !errors.Is(err, ErrNoSlot) {
		t.Fatalf("extend a settled call: %v", err)
	}
	// A new day in New York resets the daily cap.
	f.clock.Advance(24 * time.Hour)
	if d := f.decide(f.e, f.req("alice", "+14155550103")); !d.Allow {
		t.Fatalf("next day: %q %s", d.Reason, d.Detail)
	}
}

func TestSpendMonthlyCapAndFinishOnCap(t *testing.T) {
	f := newFixture(t, `
defaults:
  spend:
    reserve: 1m
    on_cap: finish
    rates: [{prefix: "+1", per_minute: 10}]
    caps: {monthly: 25}
`, "alice")
	ctx := context.Background()
	d := f.decide(f.e, f.req("alice", "+14155550100"))
	if !d.Allow || d.MaxDuration != DefaultMaxCallDuration {
		t.Fatalf("on_cap finish: max %s", d.MaxDuration)
	}
	if added, err := f.e.Extend(ctx, &d.Ticket); err != nil || added != 0 {
		t.Fatalf("nothing to extend when calls finish over the cap: %s %v", added, err)
	}
	if err := f.e.Finish(ctx, d.Ticket, Outcome{Answered: true, Talk: 3 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(48 * time.Hour) // same month, another day
	if d := f.decide(f.e, f.req("alice", "+14155550100")); d.Reason != ReasonSpendCap {
		t.Fatalf("30 spent of a monthly 25: %q", d.Reason)
	}
}

func TestSlotsLapseWithoutTheirNode(t *testing.T) {
	f := newFixture(t, spendPolicy+"  rate_limits: {user: {concurrent_calls: 1}}\n", "alice")
	ctx := context.Background()
	d := f.decide(f.e, f.req("alice", "+14155550100"))
	if !d.Allow {
		t.Fatal(d.Detail)
	}
	// While the node renews, the slot holds through several leases.
	for i := 0; i < 3; i++ {
		f.clock.Advance(60 * time.Second)
		f.e.renew(ctx)
	}
	if d2 := f.decide(f.e, f.req("alice", "+14155550101")); d2.Reason != ReasonConcurrentLimit {
		t.Fatalf("renewed slot must still count: %q", d2.Reason)
	}
	// The node dies: no renewal; after the lease the slot no longer counts
	// and a sweep charges its reservation.
	f.clock.Advance(91 * time.Second)
	if d2 := f.decide(f.e, f.req("alice", "+14155550101")); !d2.Allow {
		t.Fatalf("lapsed slot still counted: %q", d2.Reason)
	} else if err := f.e.Finish(ctx, d2.Ticket, Outcome{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.db.PolicySweep(ctx, f.clock.Now(), time.Hour)
	if err != nil || res.Lapsed != 1 {
		t.Fatalf("sweep: %+v %v", res, err)
	}
	day, _ := f.e.cur.Load().defaults.spend.periods(f.clock.Now())
	if n, _ := f.admin.PolicySpent(ctx, "", day); n != 50 {
		t.Fatalf("lapsed reservation charged %d, want 50", n)
	}
	// The call did end after all, longer than the estimate: only the
	// difference is booked.
	if err := f.e.Finish(ctx, d.Ticket, Outcome{Answered: true, Talk: 8 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.admin.PolicySpent(ctx, "", day); n != 80 {
		t.Fatalf("after late settle: %d, want 80", n)
	}
}
