package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

const decidePolicy = `
version: table
tenants:
  acme:
    countries: {allow: [US, CA, MX]}
    prefixes: {block: ["+1212555"], allow: ["+4420"]}
    spend:
      rates:
        - {prefix: "+1", per_minute: 2, increment: 6s}
        - {prefix: "+4420", per_minute: 5}
    consent:
      announce_dtmf: [US-CA, US-FL, DE]
      location: US-NY
    recording: {retention_days: 90}
    users:
      rita: {caller_id: {on_foreign: refuse}}
      cali: {consent: {location: US-CA}}
      pat:
        number_types: {allow: [premium_rate]}
        caller_id: {allow: ["+13125550123"]}
`

func TestDecideOutboundTable(t *testing.T) {
	f := newFixture(t, decidePolicy, "alice", "rita", "cali", "pat")
	for _, c := range []struct {
		name, user, dialled, callerID string
		allow                         bool
		reason                        Reason
		mode                          ConsentMode
		basis                         string
		callerOut                     string // "" = the user's own number
		corrected                     bool
	}{
		{"US callee in an all-party state", "alice", "+14155550100", "", true, "", ModeAnnounceDTMF, "callee US-CA", "", false},
		{"national number", "alice", "(415) 555-0100", "", true, "", ModeAnnounceDTMF, "callee US-CA", "", false},
		{"US one-party state", "alice", "+13125550100", "", true, "", ModeAnnounce, "callee US-IL", "", false},
		{"Canada by area code", "alice", "+14165550100", "", true, "", ModeAnnounce, "callee CA-ON", "", false},
		{"Florida", "alice", "+13055550100", "", true, "", ModeAnnounceDTMF, "callee US-FL", "", false},
		{"rep in California calls New Jersey", "cali", "+12015550199", "", true, "", ModeAnnounceDTMF, "rep US-CA", "", false},
		{"allow prefix lifts the country rule", "alice", "+442079460000", "", true, "", ModeAnnounce, "callee GB", "", false},
		{"toll-free: subdivision unknown", "alice", "+18005550100", "", true, "", ModeAnnounce, "callee US", "", false},
		{"country not allowed", "alice", "+441612345678", "", false, ReasonCountryNotAllowed, "", "", "", false},
		{"Germany", "alice", "+4930123456", "", false, ReasonCountryNotAllowed, "", "", "", false},
		{"Jamaica is +1 but not US", "alice", "+18765550100", "", false, ReasonCountryNotAllowed, "", "", "", false},
		{"premium +1 900", "alice", "+19005550100", "", false, ReasonPremiumNumber, "", "", "", false},
		{"premium allowed for pat", "pat", "+19005550100", "", true, "", ModeAnnounce, "callee US", "", false},
		{"blocked prefix", "alice", "+12125550100", "", false, ReasonPrefixBlocked, "", "", "", false},
		{"not a number", "alice", "sip:bob", "", false, ReasonInvalidNumber, "", "", "", false},
		{"unassigned number", "alice", "+447700900123", "", false, ReasonInvalidNumber, "", "", "", false},
		{"unrated destination", "alice", "+525512345678", "", false, ReasonNoRate, "", "", "", false},
		{"foreign caller ID corrected", "alice", "+14155550100", "+13105550199", true, "", ModeAnnounceDTMF, "callee US-CA", "", true},
		{"garbage caller ID corrected", "alice", "+14155550100", "anonymous", true, "", ModeAnnounceDTMF, "callee US-CA", "", true},
		{"foreign caller ID refused", "rita", "+14155550100", "+13105550199", false, ReasonCallerIDNotAllowed, "", "", "", false},
		{"own number national form", "rita", "+14155550100", "6465550101", true, "", ModeAnnounceDTMF, "callee US-CA", "", false},
		{"granted caller ID", "pat", "+14155550100", "+13125550123", true, "", ModeAnnounceDTMF, "callee US-CA", "+13125550123", false},
		{"emergency 911", "rita", "911", "+13105550199", true, "", ModeNone, "emergency call", "+13105550199", false},
		{"emergency 112", "alice", "112", "", true, "", ModeNone, "emergency call", "", false},
		{"E911 test line 933", "alice", "933", "", true, "", ModeNone, "emergency call", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.req(c.user, c.dialled)
			if c.callerID != "" {
				r.CallerID = c.callerID
			}
			d := f.decide(f.e, r)
			if d.Allow != c.allow || d.Reason != c.reason {
				t.Fatalf("allow=%v reason=%q (%s), want allow=%v reason=%q", d.Allow, d.Reason, d.Detail, c.allow, c.reason)
			}
			if c.reason != "" && d.Detail == "" {
				t.Fatal("a refusal carries a detail")
			}
			if !d.Recording || d.RetentionDays != 90 || d.PolicyVersion != "table" || d.PolicyHash != f.e.PolicyHash() {
				t.Fatalf("recording %v retention %d version %q", d.Recording, d.RetentionDays, d.PolicyVersion)
			}
			if !c.allow {
				if d.Ticket.ID != "" {
					t.Fatal("a refused call holds a slot")
				}
				return
			}
			if d.Mode != c.mode || d.ConsentBasis != c.basis {
				t.Fatalf("mode %s (%s), want %s (%s)", d.Mode, d.ConsentBasis, c.mode, c.basis)
			}
			want := c.callerOut
			if want == "" {
				want = f.numbers[c.user][0]
			}
			if d.CallerID != want || d.CallerIDCorrected != c.corrected {
				t.Fatalf("caller ID %q corrected=%v, want %q corrected=%v", d.CallerID, d.CallerIDCorrected, want, c.corrected)
			}
			if d.Emergency != (c.mode == ModeNone) {
				t.Fatalf("emergency=%v", d.Emergency)
			}
			if !d.Emergency && (d.Ticket.ID == "" || d.MaxDuration != DefaultMaxCallDuration) {
				t.Fatalf("allowed call: ticket %q max %s", d.Ticket.ID, d.MaxDuration)
			}
			if err := f.e.Finish(context.Background(), d.Ticket, Outcome{Answered: true, Talk: 30 * time.Second}); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := f.e.RetentionDays("acme"); got != 90 {
		t.Fatalf("retention of acme: %d", got)
	}
	if got := f.e.RetentionDays("unlisted"); got != DefaultRetentionDays {
		t.Fatalf("retention of an unlisted tenant: %d", got)
	}
	if n := len(f.audits("policy.emergency")); n != 3 {
		t.Fatalf("%d emergency audit events, want 3", n)
	}
	deny := f.audits("policy.deny")
	if len(deny) != 9 {
		t.Fatalf("%d denial audit events, want 9", len(deny))
	}
	if ev := deny[len(deny)-1]; ev.Object != "number:+441612345678" || ev.Details["reason"] != "country_not_allowed" || ev.Details["user"] != "alice" ||
		!strings.Contains(ev.Details["detail"].(string), "GB") {
		t.Fatalf("first denial audit: %+v", ev)
	}
	if got := decisions(f.e, resultDeny, string(ReasonCountryNotAllowed)); got != 3 {
		t.Fatalf("decisions_total{deny,country_not_allowed} = %v", got)
	}
	if got := decisions(f.e, resultAllow, reasonEmergency); got != 3 {
		t.Fatalf("decisions_total{allow,emergency} = %v", got)
	}
}

func TestEmergencyAlwaysPasses(t *testing.T) {
	f := newFixture(t, `
tenants:
  acme:
    countries: {allow: [GB]}
    prefixes: {block: ["+1"]}
    rate_limits: {user: {calls_per_minute: 1, concurrent_calls: 1}}
    spend:
      rates: [{prefix: "+44", per_minute: 1000}]
      caps: {daily: 1}
    anomaly:
      user: {attempts: {max: 2, window: 1m}}
    caller_id: {on_foreign: refuse}
`, "alice")
	ctx := context.Background()
	// Trip the attempts rule: the third attempt suspends alice.
	for i := 0; i < 3; i++ {
		f.decide(f.e, f.req("alice", "+14155550100"))
	}
	if d := f.decide(f.e, f.req("alice", "+442079460000")); d.Reason != ReasonSuspended {
		t.Fatalf("want suspended, got %q %s", d.Reason, d.Detail)
	}
	// A suspension in force explains a refusal before any other rule, in
	// the answer and in the audit record alike.
	if d := f.decide(f.e, f.req("alice", "+14155550100")); d.Reason != ReasonSuspended || !strings.Contains(d.Detail, "suspended since") {
		t.Fatalf("blocked number while suspended: %q %s", d.Reason, d.Detail)
	}
	if evs := f.audits("policy.deny"); evs[0].Details["reason"] != "suspended" {
		t.Fatalf("audit of the last refusal: %+v", evs[0])
	}
	// Suspended, over every limit, caller ID foreign: 911 still passes, twice
	// at once, unannounced and audited.
	for i := 0; i < 2; i++ {
		r := f.req("alice", "911")
		r.CallerID = "+19995550100"
		d := f.decide(f.e, r)
		if !d.Allow || !d.Emergency || d.Mode != ModeNone || d.Reason != "" || d.MaxDuration != 0 {
			t.Fatalf("911: %+v", d)
		}
		if err := f.e.Finish(ctx, d.Ticket, Outcome{Answered: true, Talk: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	evs := f.audits("policy.emergency")
	if len(evs) != 2 || evs[0].Object != "number:911" || evs[0].Details["user"] != "alice" {
		t.Fatalf("emergency audits: %+v", evs)
	}
	// Even with the counters down, 911 passes.
	e := f.engine(failing{})
	if d, err := e.DecideOutbound(ctx, f.req("alice", "911")); err != nil || !d.Allow {
		t.Fatalf("911 with the store down: %+v %v", d, err)
	}
}

// failing is a store that is down.
type failing struct{ store.DB }

var errDown = errors.New("database is down")

func (failing) PolicyAdmit(context.Context, store.PolicyAdmission) (store.PolicyVerdict, error) {
	return store.PolicyVerdict{}, errDown
}
func (failing) PolicyExtend(context.Context, store.PolicyExtension) (int64, error) { return 0, errDown }
func (failing) PolicySettle(context.Context, store.PolicySettlement) (store.PolicySettled, error) {
	return store.PolicySettled{}, errDown
}
func (failing) PolicyRenew(context.Context, string, time.Time, time.Time) (int64, error) {
	return 0, errDown
}
func (failing) PolicySweep(context.Context, time.Time, time.Duration) (store.PolicySweepResult, error) {
	return store.PolicySweepResult{}, errDown
}
func (failing) PolicyAudit(context.Context, string, string, string, map[string]any) error {
	return errDown
}

func TestStoreDownFailsClosed(t *testing.T) {
	f := newFixture(t, "", "alice")
	e := f.engine(failing{})
	d, err := e.DecideOutbound(context.Background(), f.req("alice", "+14155550100"))
	if !errors.Is(err, errDown) || d.Allow || d.Reason != ReasonPolicyError {
		t.Fatalf("store down: %+v %v", d, err)
	}
	if got := decisions(e, resultError, string(ReasonPolicyError)); got != 1 {
		t.Fatalf("decisions_total{error,policy_error} = %v", got)
	}
}

func TestConcurrentLimit(t *testing.T) {
	f := newFixture(t, "defaults:\n  rate_limits:\n    user: {concurrent_calls: 1}\n    tenant: {concurrent_calls: 2}\n", "alice", "bob", "carol")
	ctx := context.Background()
	a := f.decide(f.e, f.req("alice", "+14155550100"))
	if !a.Allow {
		t.Fatalf("first call: %+v", a)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550101")); d.Allow || d.Reason != ReasonConcurrentLimit || !strings.Contains(d.Detail, "user") {
		t.Fatalf("second call of alice: %+v", d)
	}
	b := f.decide(f.e, f.req("bob", "+14155550102"))
	if !b.Allow {
		t.Fatalf("bob: %+v", b)
	}
	if d := f.decide(f.e, f.req("carol", "+14155550103")); d.Reason != ReasonConcurrentLimit || !strings.Contains(d.Detail, "tenant") {
		t.Fatalf("carol over the tenant limit: %+v", d)
	}
	if err := f.e.Finish(ctx, a.Ticket, Outcome{}); err != nil {
		t.Fatal(err)
	}
	if d := f.decide(f.e, f.req("alice", "+14155550104")); !d.Allow {
		t.Fatalf("after finishing: %+v", d)
	}
}

func TestRateLimits(t *testing.T) {
	f := newFixture(t, "defaults:\n  rate_limits:\n    user: {calls_per_minute: 2, calls_per_hour: 3}\n    tenant: {calls_per_second: 3}\n",
		"alice", "bob")
	for i := 0; i < 2; i++ {
		if d := f.decide(f.e, f.req("alice", "+14155550100")); !d.Allow {
			t.Fatalf("call %d: %+v", i, d)
		}
		f.clock.Advance(10 * time.Second)
	}
	d := f.decide(f.e, f.req("alice", "+14155550100"))
	if d.Allow || d.Reason != ReasonRateLimited || d.RetryAfter != 40*time.Second {
		t.Fatalf("third call in a minute: allow=%v %q retry %s (%s)", d.Allow, d.Reason, d.RetryAfter, d.Detail)
	}
	f.clock.Advance(40 * time.Second)
	if d := f.decide(f.e, f.req("alice", "+14155550100")); !d.Allow {
		t.Fatalf("after Retry-After: %+v", d)
	}
	f.clock.Advance(2 * time.Minute)
	d = f.decide(f.e, f.req("alice", "+14155550100"))
	if d.Reason != ReasonRateLimited || !strings.Contains(d.Detail, "per hour") || d.RetryAfter < 55*time.Minute {
		t.Fatalf("fourth call in an hour: %q %s %s", d.Reason, d.RetryAfter, d.Detail)
	}
	// The tenant's calls per second: three in one second pass, the fourth waits.
	f.clock.Advance(2 * time.Hour)
	for i, u := range []string{"alice", "alice", "bob"} {
		if d := f.decide(f.e, f.req(u, "+14155550100")); !d.Allow {
			t.Fatalf("burst call %d: %+v", i, d)
		}
	}
	if d := f.decide(f.e, f.req("bob", "+14155550100")); d.Reason != ReasonRateLimited || d.RetryAfter != time.Second {
		t.Fatalf("fourth call in a second: %q %s", d.Reason, d.RetryAfter)
	}
}

func TestDryRun(t *testing.T) {
	f := newFixture(t, `
tenants:
  acme:
    dry_run: true
    countries: {allow: [US]}
    rate_limits: {user: {calls_per_minute: 1}}
    caller_id: {on_foreign: refuse}
    anomaly:
      user: {attempts: {max: 3, window: 1m}}
`, "alice")
	for i, c := range []struct {
		dialled, callerID string
		reason            Reason
	}{
		{"+14155550100", "", ""},
		{"+14155550100", "", ReasonRateLimited},
		{"+14165550100", "", ReasonCountryNotAllowed},
		{"+14155550100", "+13105550199", ReasonCallerIDNotAllowed},
		{"+14155550100", "", ReasonSuspended}, // the 4th attempt trips the rule
		{"+14155550100", "", ReasonSuspended},
	} {
		r := f.req("alice", c.dialled)
		if c.callerID != "" {
			r.CallerID = c.callerID
		}
		d := f.decide(f.e, r)
		if !d.Allow || d.Reason != c.reason || d.DryRun != (c.reason != "") || d.Ticket.ID == "" {
			t.Fatalf("attempt %d: allow=%v reason=%q dry=%v ticket=%q (%s)", i, d.Allow, d.Reason, d.DryRun, d.Ticket.ID, d.Detail)
		}
		if c.reason == ReasonCallerIDNotAllowed && d.CallerID != c.callerID {
			t.Fatalf("dry run presents what the rep sent, got %q", d.CallerID)
		}
	}
	r := f.req("alice", "+14155550100")
	r.CallerID = "anonymous"
	if d := f.decide(f.e, r); !d.Allow || d.Reason != ReasonCallerIDNotAllowed || d.CallerID != f.numbers["alice"][0] || !d.CallerIDCorrected {
		t.Fatalf("dry run with a garbage caller ID presents the default: %+v", d)
	}
	if s, _ := f.admin.Suspensions(context.Background(), store.SuspensionFilter{}); len(s) != 0 {
		t.Fatalf("dry run stored a suspension: %+v", s)
	}
	if got := decisions(f.e, resultDryRun, string(ReasonRateLimited)); got != 1 {
		t.Fatalf("decisions_total{dry_run,rate_limited} = %v", got)
	}
	if got := len(f.audits("policy.dry_run")); got != 6 {
		t.Fatalf("%d dry-run audit events, want 5", got)
	}
	if got := len(f.audits("policy.deny")); got != 0 {
		t.Fatalf("dry run denied %d calls", got)
	}
}

func TestDecideInbound(t *testing.T) {
	f := newFixture(t, decidePolicy, "alice", "cali")
	ctx := context.Background()
	for _, c := range []struct {
		user, caller string
		mode         ConsentMode
		basis        string
	}{
		{"alice", "+14155550100", ModeAnnounceDTMF, "caller US-CA"},
		{"alice", "+12125550100", ModeAnnounce, "caller US-NY"},
		{"alice", "+4930123456", ModeAnnounceDTMF, "caller DE"},
		{"alice", "anonymous", ModeAnnounce, "caller unknown"},
		{"cali", "+12125550100", ModeAnnounceDTMF, "rep US-CA"},
	} {
		u := f.users[c.user]
		d, err := f.e.DecideInbound(ctx, InboundRequest{TenantID: f.tenant.ID, TenantName: "acme", UserID: u.ID, Username: c.user,
			DefaultCountry: "US", Caller: c.caller, Callee: f.numbers[c.user][0], CallID: "in-1"})
		if err != nil || !d.Allow || !d.Recording || d.RetentionDays != 90 || d.Mode != c.mode || d.ConsentBasis != c.basis {
			t.Fatalf("%s from %s: %+v %v", c.user, c.caller, d, err)
		}
	}
}
