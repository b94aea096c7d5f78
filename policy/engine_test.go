package policy

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"))
}

// run starts e.Run and returns its stop function, which waits for it.
func run(t *testing.T, e *Engine) func() {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := e.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return stop
}

func reloads(e *Engine, result string) float64 {
	return testutil.ToFloat64(e.m.reloads.WithLabelValues(result))
}

// waitFor polls cond for up to 2 s: the reload promise.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 2*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: not within 2 s", what)
	return 0
}

func TestWatchAppliesValidEditAndRefusesInvalid(t *testing.T) {
	f := newFixture(t, "tenants:\n  acme:\n    countries: {allow: [US, CA]}\n", "alice")
	stop := run(t, f.e)
	if d := f.decide(f.e, f.req("alice", "+14165550100")); !d.Allow {
		t.Fatalf("Canada allowed at first: %q", d.Reason)
	}
	first := f.e.PolicyHash()

	if err := os.WriteFile(f.file, []byte("tenants:\n  acme:\n    countries: {allow: [US]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "valid edit", func() bool { return f.e.PolicyHash() != first })
	t.Logf("valid edit applied after %s", took)
	if d := f.decide(f.e, f.req("alice", "+14165550100")); d.Reason != ReasonCountryNotAllowed {
		t.Fatalf("Canada after the edit: %q", d.Reason)
	}
	second := f.e.PolicyHash()
	if got := reloads(f.e, "ok"); got != 2 {
		t.Fatalf("reloads ok = %v", got)
	}

	if err := os.WriteFile(f.file, []byte("tenants:\n  acme:\n    countries: {allow: [US, XX]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "invalid edit counted", func() bool { return reloads(f.e, "error") == 1 })
	time.Sleep(300 * time.Millisecond) // several polls: counted once, not per poll
	if got := reloads(f.e, "error"); got != 1 {
		t.Fatalf("reloads error = %v, want 1", got)
	}
	if f.e.PolicyHash() != second {
		t.Fatal("an invalid file replaced the policy")
	}
	if d := f.decide(f.e, f.req("alice", "+14165550100")); d.Reason != ReasonCountryNotAllowed {
		t.Fatalf("old policy must keep serving: %q", d.Reason)
	}
	if err := f.e.Reload(); err == nil {
		t.Fatal("SIGHUP reload of an invalid file must fail")
	}
	if got := reloads(f.e, "error"); got != 2 {
		t.Fatalf("reloads error after Reload = %v", got)
	}

	// Fixed again, with the same size and mtime as the broken version: the
	// hash of a recently modified file still catches it.
	fi, _ := os.Stat(f.file)
	if err := os.WriteFile(f.file, []byte("tenants:\n  acme:\n    countries: {allow: [US, CA]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(f.file, fi.ModTime(), fi.ModTime())
	waitFor(t, "same-size edit", func() bool { return f.e.PolicyHash() == first })
	stop()
}

func TestReloadKeepsCallsOnTheirPolicy(t *testing.T) {
	f := newFixture(t, "defaults:\n  spend:\n    rates: [{prefix: \"+1\", per_minute: 1}]\n", "alice")
	ctx := context.Background()
	d := f.decide(f.e, f.req("alice", "+14155550100"))
	old := d.PolicyHash
	if err := os.WriteFile(f.file, []byte("defaults:\n  spend:\n    rates: [{prefix: \"+1\", per_minute: 100}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Reload(); err != nil {
		t.Fatal(err)
	}
	if f.e.PolicyHash() == old {
		t.Fatal("reload did not apply")
	}
	if err := f.e.Finish(ctx, d.Ticket, Outcome{Answered: true, Talk: 10 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	day, _ := f.e.cur.Load().defaults.spend.periods(f.clock.Now())
	if n, _ := f.admin.PolicySpent(ctx, "", day); n != 10 {
		t.Fatalf("call admitted at 1/min settled at %d, want 10", n)
	}
	if d2 := f.decide(f.e, f.req("alice", "+14155550100")); d2.PolicyHash == old || d2.Ticket.Reserved != 1000 {
		t.Fatalf("new call under the new policy: %s reserved %d", short(d2.PolicyHash), d2.Ticket.Reserved)
	}
}

func TestNewEngineRefusesInvalidFile(t *testing.T) {
	f := newFixture(t, "", "alice")
	os.WriteFile(f.file, []byte("defaults: {bogus: 1}\n"), 0o600)
	if _, err := NewEngine(Options{File: f.file, Counters: f.db, Logger: quiet}); err == nil {
		t.Fatal("invalid file accepted")
	}
	if _, err := NewEngine(Options{File: f.file + ".missing", Counters: f.db, Logger: quiet}); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := NewEngine(Options{File: f.file}); err == nil {
		t.Fatal("no counters accepted")
	}
	e, err := NewEngine(Options{Counters: f.db, Logger: quiet})
	if err != nil || e.PolicyHash() != "builtin" {
		t.Fatalf("built-in: %v", err)
	}
	if d := f.decide(e, f.req("alice", "+14165550100")); !d.Allow || d.Mode != ModeAnnounce {
		t.Fatalf("built-in allows CA, announce: %+v", d)
	}
	if d := f.decide(e, f.req("alice", "+442079460000")); d.Reason != ReasonCountryNotAllowed {
		t.Fatalf("built-in refuses GB: %q", d.Reason)
	}
}

// Run renews this node's slots and sweeps dead ones on its own (wall time).
func TestRunRenewsAndSweeps(t *testing.T) {
	f := newFixture(t, `
defaults:
  rate_limits: {user: {concurrent_calls: 1}}
  spend: {reserve: 1m, rates: [{prefix: "+1", per_minute: 7}]}
`, "alice")
	ctx := context.Background()
	node := f.engine(nil)
	node.lease, node.sweepInt, node.now = 300*time.Millisecond, 50*time.Millisecond, time.Now
	other := f.engine(nil)
	other.now = time.Now
	held := f.decide(node, f.req("alice", "+14155550100"))
	if !held.Allow || held.Ticket.Reserved != 7 {
		t.Fatalf("%+v", held)
	}
	run(t, node)
	time.Sleep(700 * time.Millisecond) // over two leases: only renewal keeps the slot
	if d := f.decide(other, f.req("alice", "+14155550100")); d.Reason != ReasonConcurrentLimit {
		t.Fatalf("renewed slot must hold: %q", d.Reason)
	}
	// Expire it as if the node had stopped renewing: the node's own sweep
	// lapses it and charges the reservation.
	if n, err := f.db.PolicyRenew(ctx, node.Node(), time.Now(), time.Now()); err != nil || n != 1 {
		t.Fatalf("node holds one slot: %d %v", n, err)
	}
	waitFor(t, "sweep charges the lapsed slot", func() bool {
		n, err := f.admin.PolicySpent(ctx, "", time.Now().Add(-48*time.Hour))
		return err == nil && n == 7
	})
	d := f.decide(other, f.req("alice", "+14155550100"))
	if !d.Allow {
		t.Fatalf("after the sweep: %q", d.Reason)
	}
	if err := other.Finish(ctx, d.Ticket, Outcome{}); err != nil {
		t.Fatal(err)
	}
}
