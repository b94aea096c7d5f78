package policy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// DecideOutbound decides a rep's call before any INVITE leaves toward a
// trunk. Static rules (number, prefix, country, type, caller ID, rate deck)
// are decided here; the counted ones (suspension, anomaly, concurrency, rate
// windows, spend) in one store transaction that also takes the call's slot.
// On a store error the call is refused with policy_error and the error
// returned: the guard fails closed, except for emergency calls, which never
// touch the store's counters.
func (e *Engine) DecideOutbound(ctx context.Context, r OutboundRequest) (Decision, error) {
	started := time.Now()
	snap := e.cur.Load()
	t := snap.tenant(r.TenantName)
	u := t.userOf(r.Username)
	at := r.Time
	if at.IsZero() {
		at = e.now()
	}
	d := Decision{Recording: true, RetentionDays: t.retentionDays, PolicyVersion: snap.version, PolicyHash: snap.hash}
	dest, perr := ParseDestination(r.Dialled, r.DefaultCountry)
	d.Destination = dest
	if perr == nil && dest.Emergency {
		return e.emergency(ctx, r, t, u, d), nil
	}

	var reason Reason
	var detail string
	if perr != nil {
		reason, detail = ReasonInvalidNumber, perr.Error()
	} else {
		reason, detail = u.destinationCheck(dest)
	}
	cid, corrected, refusal := t.presentCallerID(u, r)
	d.CallerID, d.CallerIDCorrected = cid, corrected
	if reason == "" && refusal != "" {
		reason, detail = ReasonCallerIDNotAllowed, refusal
	}
	var rt rate
	rated := false
	if len(t.spend.rates) > 0 && dest.E164 != "" {
		_, rt, rated = longest(t.spend.rates, strings.TrimPrefix(dest.E164, "+"))
		if !rated && t.spend.refuseUnrated && reason == "" {
			reason, detail = ReasonNoRate, fmt.Sprintf("no rate in the deck prices %s", dest.E164)
		}
	}
	var reserve int64
	if rated {
		reserve = rt.cost(max(t.spend.reserve, rt.minimum))
	}

	number := dest.E164
	if number == "" {
		number = truncate(dest.Dialled, 32)
	}
	v, err := e.counters.PolicyAdmit(ctx, store.PolicyAdmission{
		TenantID: r.TenantID, UserID: r.UserID, Username: r.Username, CallID: r.CallID, Node: e.node, At: at,
		Number: number, Country: dest.Region, Prefix: spreadPrefix(dest.E164, t.prefixDigits),
		Denied: string(reason), DeniedDetail: detail, DryRun: t.dryRun,
		Limits: store.PolicyLimits{UserPerMinute: u.perMinute, UserPerHour: u.perHour, UserConcurrent: u.concurrent,
			TenantConcurrent: t.concurrent, TenantPerSecond: t.perSecond},
		Spend: t.spendOf(u, at), Reserve: reserve, Anomaly: t.anomaly,
		Lease: e.lease, Deadline: at.Add(t.maxCall + ringAllowance), PolicyHash: snap.hash,
	})
	if err != nil {
		d.Reason, d.Detail = ReasonPolicyError, "policy counters unavailable"
		e.m.decisions.WithLabelValues(resultError, string(ReasonPolicyError)).Inc()
		e.log.Error("policy decision failed; refusing the call", "tenant", r.TenantName, "user", r.Username,
			"call_id", r.CallID, "number", number, "err", err)
		return d, fmt.Errorf("decide outbound %s: %w", r.CallID, err)
	}
	if v.Suspension != nil {
		e.suspended(r.TenantName, v.Suspension, t.dryRun)
	}
	// The store decides which failing rule names the refusal (see
	// PolicyVerdict.Reason), so the audit record and the answer agree.
	if v.Reason != string(reason) {
		reason, detail = Reason(v.Reason), v.ReasonDetail
	}
	if reason == ReasonRateLimited {
		d.RetryAfter = v.RetryAfter
	}
	d.Reason, d.Detail = reason, detail
	d.Allow = reason == "" || t.dryRun
	d.DryRun = t.dryRun && reason != ""
	if d.Allow {
		if refusal != "" { // dry run: present what the rep asked for, or its default
			if n := NormalizeCallerID(r.CallerID, r.DefaultCountry); n != "" {
				d.CallerID, d.CallerIDCorrected = n, false
			} else if def := defaultCallerID(r); def != "" {
				d.CallerID, d.CallerIDCorrected = def, true
			}
		}
		d.Mode, d.ConsentBasis = t.consentMode("callee", dest.Territory, u.location)
		d.MaxDuration = t.maxCall
		if rated && t.spend.endOnCap && t.capped(u) {
			d.MaxDuration = min(d.MaxDuration, rt.covered(v.Reserved))
		}
		d.Ticket = Ticket{ID: v.SlotID, CallID: r.CallID, TenantID: r.TenantID, UserID: r.UserID, Username: r.Username,
			Reserved: v.Reserved, Currency: t.spend.currency, MaxDuration: d.MaxDuration, PolicyHash: snap.hash,
			tenant: t, rate: rt, rated: rated}
	}
	e.m.latency.Observe(time.Since(started).Seconds())
	e.record(r, d)
	return d, nil
}

func (e *Engine) record(r OutboundRequest, d Decision) {
	attrs := []any{"tenant", r.TenantName, "user", r.Username, "role", r.Role, "call_id", r.CallID, "number", d.Destination.E164,
		"policy", short(d.PolicyHash)}
	switch {
	case d.Reason == "":
		e.m.decisions.WithLabelValues(resultAllow, reasonOK).Inc()
		e.log.Debug("call allowed", append(attrs, "mode", d.Mode, "caller_id", d.CallerID, "corrected", d.CallerIDCorrected)...)
	case d.DryRun:
		e.m.decisions.WithLabelValues(resultDryRun, string(d.Reason)).Inc()
		e.log.Info("dry run: call would have been refused", append(attrs, "reason", d.Reason, "detail", d.Detail)...)
	default:
		e.m.decisions.WithLabelValues(resultDeny, string(d.Reason)).Inc()
		e.log.Info("call refused", append(attrs, "reason", d.Reason, "detail", d.Detail)...)
	}
}

func (e *Engine) suspended(tenant string, s *store.Suspension, dryRun bool) {
	subject := "user"
	if s.UserID == "" {
		subject = "tenant"
	}
	if dryRun {
		e.log.Warn("dry run: anomaly rule would have suspended outbound calling", "tenant", tenant, "subject", subject,
			"user", s.Username, "cause", s.Cause, "detail", s.Detail)
		return
	}
	e.m.suspensions.WithLabelValues(subject, s.Cause).Inc()
	e.log.Warn("outbound calling suspended by anomaly rule", "tenant", tenant, "subject", subject, "user", s.Username,
		"cause", s.Cause, "detail", s.Detail, "suspension", s.ID)
}

// emergency lets a 911/112/933 call through whatever the policy, counters
// or suspensions say, presents a caller ID the PSAP can call back, plays no
// announcement and audits the call. A failed audit write is logged loudly
// but never holds the call.
func (e *Engine) emergency(ctx context.Context, r OutboundRequest, t *tenantRules, u *userRules, d Decision) Decision {
	d.Allow, d.Emergency, d.Mode, d.ConsentBasis = true, true, ModeNone, "emergency call"
	cid, corrected, refusal := t.presentCallerID(u, r)
	if refusal != "" { // never refuse: fall back to whatever the rep sent
		cid, corrected = NormalizeCallerID(r.CallerID, r.DefaultCountry), false
	}
	d.CallerID, d.CallerIDCorrected = cid, corrected
	d.Ticket = Ticket{CallID: r.CallID, TenantID: r.TenantID, UserID: r.UserID, Username: r.Username, PolicyHash: d.PolicyHash}
	e.m.decisions.WithLabelValues(resultAllow, reasonEmergency).Inc()
	e.log.Warn("emergency call", "tenant", r.TenantName, "user", r.Username, "call_id", r.CallID,
		"number", d.Destination.E164, "caller_id", d.CallerID)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), emergencyAuditTimeout)
	defer cancel()
	err := e.counters.PolicyAudit(actx, r.TenantID, "policy.emergency", "number:"+d.Destination.E164, map[string]any{
		"user": r.Username, "call_id": r.CallID, "dialled": d.Destination.Dialled, "caller_id": d.CallerID, "policy": d.PolicyHash})
	if err != nil {
		e.log.LogAttrs(ctx, slog.LevelError, "emergency call passed but its audit record failed",
			slog.String("tenant", r.TenantName), slog.String("call_id", r.CallID), slog.Any("err", err))
	}
	return d
}

// destinationCheck applies the static destination rules in the order they
// are explained: an explicit block, an unassigned number, the country
// allowlist (lifted by an explicit allow prefix), the high-risk types.
func (u *userRules) destinationCheck(d Destination) (Reason, string) {
	digits := strings.TrimPrefix(d.E164, "+")
	p, allow, matched := longest(u.prefixes, digits)
	if matched && !allow {
		return ReasonPrefixBlocked, fmt.Sprintf("%s matches blocked prefix +%s", d.E164, p)
	}
	if !d.Valid {
		return ReasonInvalidNumber, fmt.Sprintf("%s is not an assigned number in any numbering plan", d.E164)
	}
	if !(matched && allow) && !u.countries[d.Region] {
		region := d.Region
		if region == "" {
			region = "no country (non-geographic)"
		}
		return ReasonCountryNotAllowed, fmt.Sprintf("%s is in %s, not in countries.allow", d.E164, region)
	}
	if highRisk[d.Type] && !u.types[d.Type] {
		return ReasonPremiumNumber, fmt.Sprintf("%s is a %s number; allow it in number_types.allow", d.E164, d.Type)
	}
	return "", ""
}

// presentCallerID picks the caller ID toward the trunk. A rep may present
// its own numbers, its default and the numbers the policy grants; anything
// else is corrected to the default or refused, as the policy says.
func (t *tenantRules) presentCallerID(u *userRules, r OutboundRequest) (cid string, corrected bool, refusal string) {
	def := defaultCallerID(r)
	presented := NormalizeCallerID(r.CallerID, r.DefaultCountry)
	if presented != "" && (presented == r.DefaultCallerID || u.callerIDs[presented] || contains(r.UserNumbers, presented)) {
		return presented, false, ""
	}
	if strings.TrimSpace(r.CallerID) == "" {
		if def == "" {
			return "", false, "no caller ID presented and the user has no number to present"
		}
		return def, true, ""
	}
	if u.onForeign == CallerIDRefuse {
		return "", false, fmt.Sprintf("caller ID %q is not a number this user may present", truncate(r.CallerID, 32))
	}
	if def == "" {
		return "", false, fmt.Sprintf("caller ID %q is not a number this user may present, and it has none to present instead", truncate(r.CallerID, 32))
	}
	return def, true, ""
}

// defaultCallerID is the user's configured default, else its first number.
func defaultCallerID(r OutboundRequest) string {
	if r.DefaultCallerID != "" {
		return r.DefaultCallerID
	}
	if len(r.UserNumbers) > 0 {
		return r.UserNumbers[0]
	}
	return ""
}

// consentMode picks the stricter of the remote party's and the rep's
// territory, and says which one decided.
func (t *tenantRules) consentMode(party, remote, location string) (ConsentMode, string) {
	mode, basis := t.modeFor(remote), party+" "+orUnknown(remote)
	if location != "" {
		if m := t.modeFor(location); m == ModeAnnounceDTMF && mode != ModeAnnounceDTMF {
			mode, basis = m, "rep "+location
		}
	}
	return mode, basis
}

func (t *tenantRules) modeFor(territory string) ConsentMode {
	codes := splitTerritory(territory)
	if len(codes) == 0 {
		return t.consent.unknown
	}
	for _, c := range codes {
		if t.consent.dtmf[c] || t.consent.dtmf[country(c)] {
			return ModeAnnounceDTMF
		}
	}
	// Inside NANP, consent law is set by state or province: a number whose
	// subdivision is unknown (toll-free, non-geographic) is unknown.
	if c := codes[0]; (c == "US" || c == "CA") && len(codes) == 1 {
		return t.consent.unknown
	}
	return t.consent.def
}

func country(territory string) string {
	c, _, _ := strings.Cut(territory, "-")
	return c
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// spreadPrefix is the destination prefix the spread rule counts.
func spreadPrefix(e164 string, digits int) string {
	p := strings.TrimPrefix(e164, "+")
	if len(p) > digits {
		p = p[:digits]
	}
	return p
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
