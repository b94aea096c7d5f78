package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
)

// The policy tests of issue 4 ("Tests in make test"), end to end: a policy
// file the test writes, named by policy.file, decides the calls reps place
// with SIPp through the real `blackbox serve`.

// policyRules gives each rule its own rep of tenant acme, so one gateway
// serves every static and counted rule without one test's calls counting
// against another's limits.
const policyRules = `version: "e2e-rules"
defaults:
  countries:
    allow: [US, CA]
  spend:
    currency: USD
    reserve: 6s
    rates:
      - {prefix: "+1", per_minute: 10, increment: 6s, minimum: 6s}  # 1 cent per 6 s
  consent:
    announce_dtmf: [US-CA]
tenants:
  acme:
    users:
      rita:
        rate_limits:
          calls_per_minute: 2
      sam:
        spend:
          caps: {daily: 1}  # one call's reservation
      rolf:
        caller_id:
          on_foreign: refuse
`

// The extra reps of TestGatewayPolicy and their own numbers.
const (
	ritaNumber = "+12125550102"
	samNumber  = "+12125550103"
	rolfNumber = "+12125550104"
)

// TestGatewayPolicy: a +44 number refused with its reason, audited and
// counted; the (N+1)th call in a minute refused with 503 and Retry-After;
// a reached spend cap refuses the next call; a foreign caller ID corrected
// or refused per policy. Each rule has its own rep and callee, so the
// steps share one gateway and one carrier honestly.
func TestGatewayPolicy(t *testing.T) {
	t.Parallel()
	pol := writePolicy(t, policyRules)
	fx := provisionCallFixture(t, GatewayOptions{Configure: func(c *config.Config) {
		c.Policy.File = pol
		c.Consent.DTMFTimeout = time.Second
	}})
	fx.addRep(t, fxTenant, "rita", "rep", ritaNumber)
	fx.addRep(t, fxTenant, "sam", "rep", samNumber)
	fx.addRep(t, fxTenant, "rolf", "rep", rolfNumber)
	fx.gw.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	carrier := fx.answeringCarrier(t, ctx)
	gw := fx.gw
	quick := SIPpOptions{Pause: 300 * time.Millisecond, Timeout: 20 * time.Second}

	t.Run("country not allowed", func(t *testing.T) {
		const uk = "+442079460000"
		rep := runSIPp(t, ctx, "uac-expect-403", fx.rep(SIPpOptions{Service: uk}))
		rep.RequireSuccess(t)
		assertRefusal(t, rep, 403, "country_not_allowed")
		assertDenyAudited(t, gw, fxRep, uk, "country_not_allowed")
		assertDecisions(t, gw, "deny", "country_not_allowed", 1)
		if n := len(invitesTo(t, carrier, uk)); n != 0 {
			t.Errorf("the trunk got %d INVITEs for the refused %s", n, uk)
		}
	})

	// limited: user's allowed calls to callee pass, the next is refused
	// with code and reason, audited and counted; the trunk sees only the
	// allowed ones.
	limited := func(t *testing.T, user, number, callee string, allowed, code int, reason string) sipMessage {
		t.Helper()
		o := quick
		o.Calls = allowed
		runSIPp(t, ctx, "uac-call", fx.repAs(user, callee, number, o)).RequireSuccess(t)
		rep := runSIPp(t, ctx, fmt.Sprintf("uac-expect-%d", code), fx.repAs(user, callee, number, quick))
		rep.RequireSuccess(t)
		final := assertRefusal(t, rep, code, reason)
		assertDenyAudited(t, gw, user, callee, reason)
		assertDecisions(t, gw, "deny", reason, 1)
		if n := len(invitesTo(t, carrier, callee)); n != allowed {
			t.Errorf("the trunk got %d of %s's calls to %s, want the %d allowed", n, user, callee, allowed)
		}
		return final
	}

	t.Run("rate limited", func(t *testing.T) {
		final := limited(t, "rita", ritaNumber, "+12125550211", 2, 503, "rate_limited")
		if secs, err := strconv.Atoi(final.Header("Retry-After")); err != nil || secs < 1 || secs > 60 {
			t.Errorf("Retry-After %q: want 1..60 seconds (the minute window's room)", final.Header("Retry-After"))
		}
	})

	t.Run("spend cap", func(t *testing.T) {
		limited(t, "sam", samNumber, "+12125550212", 1, 403, "spend_cap")
	})

	t.Run("foreign caller ID corrected", func(t *testing.T) {
		const callee = "+12125550213"
		runSIPp(t, ctx, "uac-call", fx.rep(SIPpOptions{Service: callee, Pause: quick.Pause, Keys: map[string]string{"caller": fxSpoofed}})).RequireSuccess(t)
		inv := invitesTo(t, carrier, callee)
		if len(inv) != 1 {
			t.Fatalf("the trunk got %d INVITEs for %s, want 1", len(inv), callee)
		}
		assertPresented(t, inv[0], fxRepCallerID)
	})

	t.Run("foreign caller ID refused", func(t *testing.T) {
		const callee, own = "+12125550214", "+12125550215"
		rep := runSIPp(t, ctx, "uac-expect-403", fx.repAs("rolf", callee, fxSpoofed, quick))
		rep.RequireSuccess(t)
		assertRefusal(t, rep, 403, "caller_id_not_allowed")
		assertDenyAudited(t, gw, "rolf", callee, "caller_id_not_allowed")
		if n := len(invitesTo(t, carrier, callee)); n != 0 {
			t.Errorf("the trunk got %d INVITEs for rolf's refused call", n)
		}
		// Presenting his own number, rolf's call goes out as he sent it.
		runSIPp(t, ctx, "uac-call", fx.repAs("rolf", own, rolfNumber, quick)).RequireSuccess(t)
		inv := invitesTo(t, carrier, own)
		if len(inv) != 1 {
			t.Fatalf("the trunk got %d INVITEs for %s, want 1", len(inv), own)
		}
		assertPresented(t, inv[0], rolfNumber)
	})

	t.Run("all-party consent callee", func(t *testing.T) {
		// California asks every party's consent under this policy: the
		// callee must press 1, and a silent one is hung up on.
		runSIPp(t, ctx, "uac-call-expect-bye", fx.rep(SIPpOptions{Service: "+14155550100", Timeout: 20 * time.Second})).RequireSuccess(t)
		if !eventually(5*time.Second, func() bool {
			v, _ := gw.Metrics(t).Get("blackbox_consent_events_total", "mode", "announce_dtmf", "result", "timeout")
			return v == 1
		}) {
			t.Error("blackbox_consent_events_total{mode=announce_dtmf,result=timeout} never reached 1")
		}
		// Every New York call before it was announced without a key press.
		if v := gw.Metrics(t).Sum("blackbox_consent_events_total", "mode", "announce_dtmf"); v != 1 {
			t.Errorf("%v announce_dtmf consent events, want only the California call's", v)
		}
	})
	assertIdle(t, gw)
}

var reasonText = regexp.MustCompile(`text="([^"]*)"`)

// assertRefusal checks the final response to the rep's INVITE: the status,
// and the policy's reason code in both the Reason and the Warning header.
func assertRefusal(t *testing.T, rep *SIPp, code int, reason string) sipMessage {
	t.Helper()
	final, ok := finalResponse(messagesOf(rep.Messages(t), false, "SIP/2.0"), "INVITE")
	if !ok {
		t.Fatal("no final response to the INVITE")
	}
	if final.Status() != code {
		t.Errorf("final response %q, want %d", final.StartLine, code)
	}
	if m := reasonText.FindStringSubmatch(final.Header("Reason")); m == nil || m[1] != reason {
		t.Errorf("Reason header %q does not carry %s", final.Header("Reason"), reason)
	}
	if w := final.Header("Warning"); !strings.Contains(w, `"`+reason+":") {
		t.Errorf("Warning header %q does not carry %s", w, reason)
	}
	return final
}

// assertPresented checks the caller ID a trunk INVITE presents.
func assertPresented(t *testing.T, inv sipMessage, number string) {
	t.Helper()
	for _, h := range []string{"From", "P-Asserted-Identity"} {
		if v := inv.Header(h); !strings.Contains(v, "sip:"+number+"@") {
			t.Errorf("trunk INVITE %s %q, want %s", h, v, number)
		}
	}
}

// auditEvent is one line of `blackbox audit list --json`.
type auditEvent struct {
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Object  string         `json:"object"`
	Details map[string]any `json:"details"`
	At      time.Time      `json:"at"`
}

func auditEvents(t *testing.T, gw *Gateway, tenant, action string) []auditEvent {
	t.Helper()
	var evs []auditEvent
	out := gw.CLI(t, "", "audit", "list", "--tenant", tenant, "--json", "--action", action)
	if err := json.Unmarshal([]byte(out), &evs); err != nil {
		t.Fatalf("audit list --json: %v\n%s", err, out)
	}
	return evs
}

// assertDenyAudited checks for exactly one policy.deny event of user's call
// to number, with its reason.
func assertDenyAudited(t *testing.T, gw *Gateway, user, number, reason string) {
	t.Helper()
	var found []auditEvent
	for _, e := range auditEvents(t, gw, fxTenant, "policy.deny") {
		if e.Object == "number:"+number && e.Details["user"] == user {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d policy.deny audit events for %s calling %s, want 1", len(found), user, number)
	}
	if got := found[0].Details["reason"]; got != reason {
		t.Errorf("audit event reason %v, want %s", got, reason)
	}
}

// assertDecisions checks blackbox_policy_decisions_total{result,reason}.
func assertDecisions(t *testing.T, gw *Gateway, result, reason string, want float64) {
	t.Helper()
	if v, _ := gw.Metrics(t).Get("blackbox_policy_decisions_total", "result", result, "reason", reason); v != want {
		t.Errorf("blackbox_policy_decisions_total{result=%q,reason=%q} = %v, want %v", result, reason, v, want)
	}
}
