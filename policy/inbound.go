package policy

import (
	"context"
)

// DecideInbound decides how a carrier's call to a rep is announced and
// recorded: recording is always on, and the consent mode is the stricter of
// the caller's territory and the rep's location. Inbound calls are not
// refused by the policy; a caller ID that is not a number only makes the
// caller's territory unknown.
func (e *Engine) DecideInbound(ctx context.Context, r InboundRequest) (Decision, error) {
	snap := e.cur.Load()
	t := snap.tenant(r.TenantName)
	u := t.userOf(r.Username)
	d := Decision{Allow: true, Recording: true, RetentionDays: t.retentionDays, MaxDuration: t.maxCall,
		PolicyVersion: snap.version, PolicyHash: snap.hash}
	if caller, err := ParseDestination(r.Caller, r.DefaultCountry); err == nil {
		d.Caller = caller
	}
	d.Mode, d.ConsentBasis = t.consentMode("caller", d.Caller.Territory, u.location)
	d.Ticket = Ticket{CallID: r.CallID, TenantID: r.TenantID, UserID: r.UserID, Username: r.Username, PolicyHash: snap.hash}
	e.m.decisions.WithLabelValues(resultAllow, reasonInbound).Inc()
	e.log.DebugContext(ctx, "inbound call", "tenant", r.TenantName, "user", r.Username, "call_id", r.CallID,
		"caller", d.Caller.E164, "mode", d.Mode, "basis", d.ConsentBasis)
	return d, nil
}
