package store

import (
	"context"
	"fmt"
	"time"
)

// PolicyLimit names the counted limit an admission failed.
type PolicyLimit string

// Counted limits, named like the policy's reason codes.
const (
	LimitSuspended  PolicyLimit = "suspended"
	LimitConcurrent PolicyLimit = "concurrent_limit"
	LimitRate       PolicyLimit = "rate_limited"
	LimitSpend      PolicyLimit = "spend_cap"
)

// PolicyLimits are the counted limits of one admission; 0 means no limit.
type PolicyLimits struct {
	UserPerMinute    int
	UserPerHour      int
	UserConcurrent   int
	TenantConcurrent int
	TenantPerSecond  int
}

// PolicySpend locates the spend periods and caps (minor units; 0 = no cap).
type PolicySpend struct {
	// Day and Month are the starts of the current periods in the tenant's
	// time zone; settled spend is booked on the day the call was admitted.
	Day           time.Time
	Month         time.Time
	TenantDaily   int64
	TenantMonthly int64
	UserDaily     int64
	UserMonthly   int64
}

func (s PolicySpend) capped() bool {
	return s.TenantDaily > 0 || s.TenantMonthly > 0 || s.UserDaily > 0 || s.UserMonthly > 0
}

// AnomalyRule is when a user's (or a tenant's) outbound calling is suspended;
// a zero field disables its check.
type AnomalyRule struct {
	// More than MaxAttempts attempts (denied ones too) in AttemptsWindow.
	MaxAttempts    int
	AttemptsWindow time.Duration
	// Destinations spread over more than MaxCountries countries or
	// MaxPrefixes prefixes in SpreadWindow.
	MaxCountries int
	MaxPrefixes  int
	SpreadWindow time.Duration
	// More than MaxFailedPercent of at least MinCalls settled calls in
	// FailuresWindow unanswered or shorter than ShortCall.
	MaxFailedPercent int
	MinCalls         int
	ShortCall        time.Duration
	FailuresWindow   time.Duration
}

// PolicyAnomaly holds the rules for each user and for the tenant as a whole.
type PolicyAnomaly struct {
	User   AnomalyRule
	Tenant AnomalyRule
}

// PolicyAdmission is one outbound attempt to count and, when every limit
// passes, to admit: a slot is taken and Reserve set aside against the caps.
type PolicyAdmission struct {
	TenantID string
	UserID   string
	Username string
	CallID   string
	Node     string // the node holding the call; it renews the slot's lease
	At       time.Time
	Number   string // E.164, or what was dialled when it is not a number
	Country  string // ISO 3166 of the destination ("" unknown)
	Prefix   string // destination prefix for the spread rule ("" unknown)
	// Denied is a reason the policy already refused the call for (country,
	// prefix, caller ID, ...): the attempt is counted, nothing is reserved.
	Denied string
	// DeniedDetail explains Denied in the audit record.
	DeniedDetail string
	// DryRun admits whatever fails and reports what would have been refused;
	// no suspension is stored.
	DryRun     bool
	Limits     PolicyLimits
	Spend      PolicySpend
	Reserve    int64 // estimate set aside while the call runs
	Anomaly    PolicyAnomaly
	Lease      time.Duration // the slot lapses unless its node renews it
	Deadline   time.Time     // the slot lapses then whatever happens
	PolicyHash string
}

// PolicyVerdict is what an admission decided.
type PolicyVerdict struct {
	Admitted bool        // a slot was taken (SlotID)
	Limit    PolicyLimit // first counted limit that failed ("" none)
	Detail   string      // explains Limit
	// Reason is what the attempt was recorded and audited under: Denied, or
	// Limit when Denied is empty or a suspension was already in force
	// (which explains a refusal best). "" when nothing failed.
	Reason       string
	ReasonDetail string
	RetryAfter   time.Duration // when a rate window will have room
	SlotID       string
	Reserved     int64
	// Suspension is set when this attempt tripped an anomaly rule (in dry
	// run it is reported but not stored).
	Suspension *Suspension
}

// lockTenant serialises one tenant's policy transactions across nodes. On
// Postgres the upsert takes the tenant's policy_locks row lock until commit,
// so two nodes' check-and-reserve of one tenant run one after the other.
// SQLite needs none: every write transaction is BEGIN IMMEDIATE, which
// already serialises writers, across processes too.
func (db *DB) lockTenant(ctx context.Context, q querier, tenantID string) error {
	if db.b.name() == "sqlite" {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO policy_locks (tenant_id, seq) VALUES ($1, 1)
		ON CONFLICT (tenant_id) DO UPDATE SET seq = policy_locks.seq + 1`, tenantID)
	if err != nil {
		return fmt.Errorf("lock tenant: %w", err)
	}
	return nil
}

func (db *DB) policyScope(tenantID string) (*Scope, error) {
	if tenantID == "" {
		return nil, invalidf("policy: tenant id is required")
	}
	return db.In(System(tenantID)), nil
}

// PolicyAdmit counts an attempt and admits it if no counted limit fails, in
// one transaction: windows, active slots, spend and suspensions are read and
// the attempt, slot and reservation written under the tenant's lock, so two
// nodes deciding at once cannot both pass a limit. A refusal is audited in
// the same transaction.
func (db *DB) PolicyAdmit(ctx context.Context, a PolicyAdmission) (PolicyVerdict, error) {
	s, err := db.policyScope(a.TenantID)
	if err != nil {
		return PolicyVerdict{}, err
	}
	if a.UserID == "" || a.At.IsZero() {
		return PolicyVerdict{}, invalidf("policy admission: user id and time are required")
	}
	if a.Reserve < 0 {
		return PolicyVerdict{}, invalidf("policy admission: negative reservation %d", a.Reserve)
	}
	var v PolicyVerdict
	err = s.write(ctx, func(q querier) error {
		v = PolicyVerdict{}
		if err := db.lockTenant(ctx, q, a.TenantID); err != nil {
			return err
		}
		if err := admitChecks(ctx, q, a, &v); err != nil {
			return err
		}
		v.Reason, v.ReasonDetail = a.Denied, a.DeniedDetail
		if v.Limit != "" && (a.Denied == "" || (v.Limit == LimitSuspended && v.Suspension == nil)) {
			v.Reason, v.ReasonDetail = string(v.Limit), v.Detail
		}
		reason := v.Reason
		v.Admitted = a.DryRun || reason == ""
		if v.Suspension != nil && !a.DryRun {
			if err := s.insertSuspension(ctx, q, v.Suspension); err != nil {
				return err
			}
		}
		id := newID()
		state, admitted, reserved := "denied", 0, int64(0)
		var expires, deadline int64
		if v.Admitted {
			state, admitted, reserved = "active", 1, a.Reserve
			expires, deadline = ms(a.At.Add(a.Lease)), ms(a.Deadline)
			v.SlotID, v.Reserved = id, reserved
		}
		_, err := q.Exec(ctx, `INSERT INTO policy_attempts (id, tenant_id, user_id, call_id, node, at, number, country, prefix,
			reason, admitted, state, reserved, day, expires_at, deadline_at, policy_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			id, a.TenantID, a.UserID, a.CallID, a.Node, ms(a.At), a.Number, a.Country, a.Prefix,
			reason, admitted, state, reserved, ms(a.Spend.Day), expires, deadline, a.PolicyHash)
		if err != nil {
			return fmt.Errorf("record attempt: %w", err)
		}
		if reason == "" {
			return nil
		}
		action := "policy.deny"
		if a.DryRun {
			action = "policy.dry_run"
		}
		return s.audit(ctx, q, action, "number:"+a.Number, map[string]any{
			"user": a.Username, "call_id": a.CallID, "reason": reason, "detail": v.ReasonDetail, "policy": a.PolicyHash})
	})
	if err != nil {
		return PolicyVerdict{}, fmt.Errorf("policy admit %s: %w", a.CallID, err)
	}
	return v, nil
}

// addSpend books a settled amount on the tenant's and the user's day.
func addSpend(ctx context.Context, q querier, tenantID, userID string, day, amount int64) error {
	if amount <= 0 {
		return nil
	}
	_, err := q.Exec(ctx, `INSERT INTO policy_spend (tenant_id, user_id, day, amount) VALUES ($1, '', $3, $4), ($1, $2, $3, $4)
		ON CONFLICT (tenant_id, user_id, day) DO UPDATE SET amount = policy_spend.amount + excluded.amount`,
		tenantID, userID, day, amount)
	if err != nil {
		return fmt.Errorf("book spend: %w", err)
	}
	return nil
}

// subject narrows a query whose $2 is the subject to one user, or (userID
// empty) to the whole tenant. It is spelled out per case rather than as one
// OR of both, so the planner can use the user index.
func subject(userID string) string {
	if userID == "" {
		return "$2 = ''"
	}
	return "user_id = $2"
}
