package sip_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
)

// The policy's refusals reach the rep as SIP: 403 with the reason code in
// Reason and Warning, 503 with Retry-After for rate limits; and nothing
// reaches the trunk.
func TestPolicyRefusals(t *testing.T) {
	g := startGateway(t, gatewayOptions{rtpPorts: [2]int{32600, 32699}, policy: `version: "1"
defaults:
  countries:
    allow: [US]
  rate_limits:
    user:
      calls_per_minute: 2
`})
	tr := newTrunk(t, "127.0.0.2")
	g.provisionOutbound(t, tr)
	p := newPhone(t)
	refused := func(number string) *sipgo.ErrDialogResponse {
		t.Helper()
		d, err := p.dial(t, g, "alice", "alice-secret-pw", number, newRTPPeer(t, "127.0.0.1"))
		var dr *sipgo.ErrDialogResponse
		if !errors.As(err, &dr) {
			t.Fatalf("call to %s: want a refusal, got %v", number, err)
		}
		_ = d
		return dr
	}
	dr := refused("+442071838750")
	if dr.Res.StatusCode != 403 || !strings.Contains(dr.Res.GetHeader("Reason").Value(), "country_not_allowed") ||
		!strings.Contains(dr.Res.GetHeader("Warning").Value(), "country_not_allowed") {
		t.Fatalf("+44 under a US-only policy: %s\n%s", dr.Res.StartLine(), dr.Res)
	}
	for i := 0; i < 2; i++ {
		d, err := p.dial(t, g, "alice", "alice-secret-pw", "+12125550123", newRTPPeer(t, "127.0.0.1"))
		if err != nil {
			t.Fatalf("call %d within the limit: %v", i+1, err)
		}
		ctx, cancel := contextWithTimeout(5e9)
		d.Bye(ctx)
		cancel()
	}
	dr = refused("+12125550123")
	if dr.Res.StatusCode != 503 || dr.Res.GetHeader("Retry-After") == nil || !strings.Contains(dr.Res.GetHeader("Reason").Value(), "rate_limited") {
		t.Fatalf("third call in a minute: %s\n%s", dr.Res.StartLine(), dr.Res)
	}
	tr.mu.Lock()
	n := len(tr.invites)
	tr.mu.Unlock()
	if n != 2 {
		t.Fatalf("the trunk got %d INVITEs, want only the 2 allowed calls", n)
	}
}
