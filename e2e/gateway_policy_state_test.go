package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blackbox-gw/blackbox/config"
)

// The policy tests of issue 4 whose state outlives one decision: a
// suspension that survives a restart until the CLI lifts it, 911 passing
// through it, and the policy file reloaded on change and on SIGHUP.

const policySuspension = `version: "e2e-suspension"
tenants:
  acme:
    anomaly:
      user:
        attempts: {max: 3, window: 1m}
`

// suspensionView is one line of `blackbox suspension list --json`.
type suspensionView struct {
	User     string     `json:"user"`
	Cause    string     `json:"cause"`
	LiftedAt *time.Time `json:"lifted_at"`
}

func suspensions(t *testing.T, gw *Gateway, all bool) []suspensionView {
	t.Helper()
	args := []string{"suspension", "list", "--tenant", fxTenant, "--json"}
	if all {
		args = append(args, "--all")
	}
	out := gw.CLI(t, "", args...)
	var ss []suspensionView
	if err := json.Unmarshal([]byte(out), &ss); err != nil {
		t.Fatalf("suspension list --json: %v\n%s", err, out)
	}
	return ss
}

// TestGatewayPolicySuspension: a burst of calls suspends alice; 911 still
// passes (the trunk gets it, bridged at once, no announcement); the
// suspension survives a restart of blackbox and is lifted by the CLI, after
// which her calls pass again.
func TestGatewayPolicySuspension(t *testing.T) {
	t.Parallel()
	pol := writePolicy(t, policySuspension)
	fx := newCallFixture(t, GatewayOptions{Configure: func(c *config.Config) { c.Policy.File = pol }})
	gw := fx.gw
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	quick := SIPpOptions{Pause: 300 * time.Millisecond, Timeout: 20 * time.Second}

	// The burst: three calls in a second pass; the fourth attempt crosses
	// the rule and is refused as the suspension is stored.
	carrier := startSIPp(t, ctx, "uas-answer", fx.carrier(SIPpOptions{Calls: 3}))
	burst := quick
	burst.Calls = 3
	runSIPp(t, ctx, "uac-call", fx.rep(burst)).RequireSuccess(t)
	carrier.RequireSuccess(t)
	assertRefusal(t, runSIPp(t, ctx, "uac-expect-403", fx.rep(quick)), 403, "suspended")
	if v, _ := gw.Metrics(t).Get("blackbox_policy_suspensions_total", "subject", "user", "cause", "attempts"); v != 1 {
		t.Errorf("blackbox_policy_suspensions_total{subject=user,cause=attempts} = %v, want 1", v)
	}
	if ss := suspensions(t, gw, false); len(ss) != 1 || ss[0].User != fxRep || ss[0].Cause != "attempts" {
		t.Fatalf("suspension list: %+v, want alice's, for attempts", ss)
	}
	if evs := auditEvents(t, gw, fxTenant, "policy.suspend"); len(evs) != 1 {
		t.Errorf("%d policy.suspend audit events, want 1", len(evs))
	}

	t.Run("911 while suspended", func(t *testing.T) { emergencyCall(t, ctx, fx) })

	gw.Restart(t)
	assertRefusal(t, runSIPp(t, ctx, "uac-expect-403", fx.rep(quick)), 403, "suspended")
	if ss := suspensions(t, gw, false); len(ss) != 1 || ss[0].User != fxRep {
		t.Fatalf("after a restart, suspension list: %+v, want alice's", ss)
	}

	if out := gw.CLI(t, "", "suspension", "lift", "--tenant", fxTenant, "--user", fxRep); !strings.Contains(out, "lifted 1") {
		t.Errorf("suspension lift: %q", out)
	}
	if ss := suspensions(t, gw, false); len(ss) != 0 {
		t.Errorf("suspensions in force after the lift: %+v", ss)
	}
	if ss := suspensions(t, gw, true); len(ss) != 1 || ss[0].LiftedAt == nil {
		t.Errorf("suspension history after the lift: %+v, want one, lifted", ss)
	}
	if evs := auditEvents(t, gw, fxTenant, "policy.lift"); len(evs) != 1 {
		t.Errorf("%d policy.lift audit events, want 1", len(evs))
	}
	carrier = startSIPp(t, ctx, "uas-answer", fx.carrier(SIPpOptions{}))
	runSIPp(t, ctx, "uac-call", fx.rep(quick)).RequireSuccess(t)
	carrier.RequireSuccess(t)
	assertIdle(t, gw)
}

// emergencyCall: alice, suspended, dials 911. The trunk receives it with
// her number as caller ID (for a call back), the parties are bridged at
// once: the carrier hears her 440 Hz and no announcement, and no consent
// event is stored.
func emergencyCall(t *testing.T, ctx context.Context, fx *callFixture) {
	consentBefore := fx.gw.Metrics(t).Sum("blackbox_consent_events_total")
	repPeer, carrierPeer := newRTPPeer(t), fx.carrierPeer(t)
	trunk := startSIPp(t, ctx, "uas-answer", fx.carrier(SIPpOptions{Keys: rtpKeys(carrierPeer)}))
	rep := startSIPp(t, ctx, "uac-call", fx.rep(SIPpOptions{Service: "911", Pause: 3 * time.Second, Keys: rtpKeys(repPeer)}))
	toTrunk := sdpOf(t, ctx, trunk, receivedInvite)
	toRep := sdpOf(t, ctx, rep, answered)
	repPeer.StartSending(t, toRep, toneStream(pcmu, 0x911, sine(sampleRate, 440, 8000, int(2.5*sampleRate))))
	rep.RequireSuccess(t)
	trunk.RequireSuccess(t)

	inv := invitesTo(t, trunk, "911")
	if len(inv) != 1 {
		t.Fatalf("the trunk got %d INVITEs for 911, want 1", len(inv))
	}
	assertPresented(t, inv[0], fxRepCallerID)
	heard := decodeRTP(carrierPeer.Received())
	assertRTPSource(t, carrierPeer.Received(), toTrunk.Addr(), int(toTrunk.Port()), int(toTrunk.Port()))
	if f := toneFraction(heard, sampleRate, 440); f < 0.5 {
		t.Errorf("the carrier heard %.2f of alice's 440 Hz: the emergency call was not bridged at once", f)
	}
	if f := toneFraction(heard, sampleRate, 2000); f > 0.02 {
		t.Errorf("the carrier heard %.2f of the 2 kHz announcement on an emergency call", f)
	}
	if after := fx.gw.Metrics(t).Sum("blackbox_consent_events_total"); after != consentBefore {
		t.Errorf("consent events %v -> %v: an emergency call is never announced", consentBefore, after)
	}
	if v, _ := fx.gw.Metrics(t).Get("blackbox_policy_decisions_total", "result", "allow", "reason", "emergency"); v != 1 {
		t.Errorf("blackbox_policy_decisions_total{result=allow,reason=emergency} = %v, want 1", v)
	}
	if evs := auditEvents(t, fx.gw, fxTenant, "policy.emergency"); len(evs) != 1 || evs[0].Object != "number:911" {
		t.Errorf("policy.emergency audit events: %+v, want one for number:911", evs)
	}
}

// reloadPolicy blocks one prefix; every variant has the same size, so an
// edit can keep the file's size and modification time (see the SIGHUP step).
func reloadPolicy(block string) string {
	return fmt.Sprintf("version: \"e2e-reload\"\ndefaults:\n  prefixes:\n    block: [%q]\n", block)
}

// reloadInvalid would unblock +1212555021 and block +1212555022, but a zero
// limit makes it invalid.
const reloadInvalid = "version: \"e2e-reload\"\ndefaults:\n  prefixes:\n    block: [\"+1212555022\"]\n" +
	"  rate_limits:\n    user:\n      calls_per_minute: 0\n"

// replaceFile writes data next to path and renames it over path, as
// editors do, with the modification time mtime (zero: now).
func replaceFile(t *testing.T, path, data string, mtime time.Time) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestGatewayPolicyReload: an invalid edit is refused and counted while the
// old policy keeps deciding calls; a valid edit decides calls within 2 s;
// an edit the file watcher cannot notice is taken on SIGHUP.
func TestGatewayPolicyReload(t *testing.T) {
	t.Parallel()
	pol := filepath.Join(workDir(t), "policy.yaml")
	old := time.Now().Add(-time.Hour)
	replaceFile(t, pol, reloadPolicy("+1212555021"), old)
	fx := newCallFixture(t, GatewayOptions{Configure: func(c *config.Config) { c.Policy.File = pol }})
	gw := fx.gw
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fx.answeringCarrier(t, ctx)
	quick := SIPpOptions{Pause: 200 * time.Millisecond, Timeout: 20 * time.Second}
	blocked := func(callee string) {
		t.Helper()
		assertRefusal(t, runSIPp(t, ctx, "uac-expect-403", fx.rep(SIPpOptions{Service: callee, Timeout: quick.Timeout})), 403, "prefix_blocked")
	}
	passes := func(callee string) {
		t.Helper()
		o := quick
		o.Service = callee
		runSIPp(t, ctx, "uac-call", fx.rep(o)).RequireSuccess(t)
	}
	reloads := func(result string) float64 {
		v, _ := gw.Metrics(t).Get("blackbox_policy_reloads_total", "result", result)
		return v
	}
	blocked("+12125550211")
	passes("+12125550221")
	okBefore := reloads("ok")

	replaceFile(t, pol, reloadInvalid, time.Time{})
	if !eventually(3*time.Second, func() bool { return reloads("error") == 1 }) {
		t.Fatalf("blackbox_policy_reloads_total{result=error} = %v after an invalid edit, want 1", reloads("error"))
	}
	res, err := gw.RunBare("", "policy", "check", pol)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 1 || !strings.Contains(res.Stderr, pol+":7:") || !strings.Contains(res.Stderr, "calls_per_minute") {
		t.Errorf("policy check of the invalid file: exit %d, stderr %q; want 1 and file:line:column of calls_per_minute", res.ExitCode, res.Stderr)
	}
	blocked("+12125550212") // still the old file's rule...
	passes("+12125550222")  // ...and not the invalid file's
	if v := reloads("ok"); v != okBefore {
		t.Errorf("reloads ok %v -> %v after an invalid edit", okBefore, v)
	}

	replaceFile(t, pol, reloadPolicy("+1212555022"), old.Add(time.Minute))
	edited := time.Now()
	if !eventually(2*time.Second, func() bool { return reloads("ok") == okBefore+1 }) {
		t.Fatalf("a valid edit was not loaded within 2 s (reloads ok %v)", reloads("ok"))
	}
	t.Logf("valid edit loaded %v after the rename", time.Since(edited).Round(time.Millisecond))
	blocked("+12125550223")
	passes("+12125550213")

	// Same size and modification time as the file it replaces: only a
	// SIGHUP, which reads the file whatever its stamp, takes this edit.
	sighup := reloadPolicy("+1212555023")
	replaceFile(t, pol, sighup, old.Add(time.Minute))
	gw.Signal(t, syscall.SIGHUP)
	sum := sha256.Sum256([]byte(sighup))
	if !eventually(2*time.Second, func() bool {
		return strings.Contains(gw.Logs(), "SIGHUP: policy reloaded") && strings.Contains(gw.Logs(), hex.EncodeToString(sum[:]))
	}) {
		t.Fatal("no \"SIGHUP: policy reloaded\" with the new file's hash in the log")
	}
	blocked("+12125550231")
	passes("+12125550224")
	if v := reloads("error"); v != 1 {
		t.Errorf("reloads error %v, want the 1 invalid edit", v)
	}
	assertIdle(t, gw)
}
