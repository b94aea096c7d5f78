package policy

import (
	"time"

	"github.com/blackbox-gw/blackbox/store"
)

// Reason is why a call was refused (or, in dry run, would have been). The
// SIP layer carries it in a Reason or Warning header.
type Reason string

// Reason codes.
const (
	ReasonNone               Reason = ""
	ReasonInvalidNumber      Reason = "invalid_number"
	ReasonPrefixBlocked      Reason = "prefix_blocked"
	ReasonCountryNotAllowed  Reason = "country_not_allowed"
	ReasonPremiumNumber      Reason = "premium_number"
	ReasonCallerIDNotAllowed Reason = "caller_id_not_allowed"
	ReasonNoRate             Reason = "no_rate"
	ReasonSuspended          Reason = Reason(store.LimitSuspended)
	ReasonConcurrentLimit    Reason = Reason(store.LimitConcurrent)
	ReasonRateLimited        Reason = Reason(store.LimitRate)
	ReasonSpendCap           Reason = Reason(store.LimitSpend)
	// ReasonPolicyError: the counters could not be reached; the call is
	// refused (fail closed) with a 503.
	ReasonPolicyError Reason = "policy_error"
)

// Reasons lists every code (metrics pre-declare them; docs list them).
var Reasons = []Reason{ReasonInvalidNumber, ReasonPrefixBlocked, ReasonCountryNotAllowed, ReasonPremiumNumber,
	ReasonCallerIDNotAllowed, ReasonNoRate, ReasonSuspended, ReasonConcurrentLimit, ReasonRateLimited, ReasonSpendCap,
	ReasonPolicyError}

// OutboundRequest is a rep's call to decide. Every field comes from the
// server side (authentication and the store), except Dialled and CallerID,
// which are what the rep's INVITE said.
type OutboundRequest struct {
	TenantID       string
	TenantName     string // the policy file keys tenants by name
	UserID         string
	Username       string // and users by username
	Role           store.Role
	DefaultCountry string // the tenant's, for national numbers
	// Dialled is the Request-URI user part.
	Dialled string
	// CallerID is the From / P-Asserted-Identity user part the rep presented;
	// it may be empty or garbage.
	CallerID string
	// UserNumbers are the user's own DIDs (E.164), which it may present.
	UserNumbers []string
	// DefaultCallerID is the user's configured default ("" = first number).
	DefaultCallerID string
	CallID          string
	Time            time.Time // zero = the engine's clock
}

// InboundRequest is a carrier's call to one of a tenant's DIDs.
type InboundRequest struct {
	TenantID       string
	TenantName     string
	UserID         string // the rep the DID rings
	Username       string
	DefaultCountry string
	Caller         string // From / P-Asserted-Identity user part
	Callee         string // the DID
	CallID         string
	Time           time.Time
}

// Decision is the policy's answer for one call.
type Decision struct {
	// Allow: bridge the call. In dry run a call is allowed whatever its
	// Reason says.
	Allow bool
	// Reason is why the call was refused, or in dry run would have been.
	Reason Reason
	// Detail explains the reason for logs and audit, in words.
	Detail string
	// RetryAfter is set for rate_limited: answer 503 with Retry-After.
	RetryAfter time.Duration
	// Destination is the callee normalised (outbound).
	Destination Destination
	// Caller is the caller normalised (inbound).
	Caller Destination
	// CallerID is the E.164 number to present toward the trunk.
	CallerID string
	// CallerIDCorrected: CallerID differs from what the rep presented.
	CallerIDCorrected bool
	// Emergency calls pass every rule, are never announced and are audited.
	Emergency bool
	// DryRun: the tenant is in dry run and the call would have been refused.
	DryRun bool
	// Mode is the consent announcement for this call (none for emergency).
	Mode ConsentMode
	// ConsentBasis says which territory decided Mode ("callee US-CA").
	ConsentBasis string
	// Recording is always true: no header, rep setting or client turns it off.
	Recording bool
	// RetentionDays is how long the tenant keeps recordings.
	RetentionDays int
	// MaxDuration bounds talk time from answer: the policy's longest call,
	// or less when the spend reservation runs out first and the policy ends
	// calls at the cap (then call Engine.Extend when it elapses). 0: no limit.
	MaxDuration time.Duration
	// Ticket is handed back to Finish when the call ends.
	Ticket Ticket
	// PolicyVersion and PolicyHash identify the policy file decided under.
	PolicyVersion string
	PolicyHash    string
}

// Ticket is what an allowed call holds in the counters: its slot and its
// reservation, and the policy it was admitted under, which Finish and Extend
// keep using after a reload.
type Ticket struct {
	ID          string // slot id; "" when nothing is held (refused, emergency)
	CallID      string
	TenantID    string
	UserID      string
	Username    string
	Reserved    int64 // minor units set aside
	Currency    string
	MaxDuration time.Duration
	PolicyHash  string

	tenant *tenantRules
	rate   rate
	rated  bool
}

// Outcome is how a call ended.
type Outcome struct {
	Answered bool
	// Talk is the billed duration, answer to hangup.
	Talk time.Duration
	// At is when the call ended; zero = the engine's clock.
	At time.Time
}
