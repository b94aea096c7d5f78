package store

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	Admitted   bool        // a slot was taken (SlotID)
	Limit      PolicyLimit // first counted limit that failed ("" none)
	Detail     string
	RetryAfter time.Duration // when a rate window will have room
	SlotID     string
	Reserved   int64
	// Suspension is set when this attempt tripped an anomaly rule (in dry
	// run it is reported but not stored).
	Suspension *Suspension
}

// lockTenant serialises one tenant's policy transactions: a no-op cost on
// SQLite (one writer), the cross-node row lock on Postgres.
func lockTenant(ctx context.Context, q querier, tenantID string) error {
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
		if err := lockTenant(ctx, q, a.TenantID); err != nil {
			return err
		}
		if err := admitChecks(ctx, q, a, &v); err != nil {
			return err
		}
		reason := a.Denied
		if reason == "" {
			reason = string(v.Limit)
		}
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
		detail := v.Detail
		if a.Denied != "" {
			detail = ""
		}
		return s.audit(ctx, q, action, "number:"+a.Number, map[string]any{
			"user": a.Username, "call_id": a.CallID, "reason": reason, "detail": detail, "policy": a.PolicyHash})
	})
	if err != nil {
		return PolicyVerdict{}, fmt.Errorf("policy admit %s: %w", a.CallID, err)
	}
	return v, nil
}

// admitChecks fills v.Limit with the first counted limit that fails, in the
// order an admin reads them: suspension, anomaly, concurrency, rate, spend.
// A call already denied by the policy is only checked for anomalies.
func admitChecks(ctx context.Context, q querier, a PolicyAdmission, v *PolicyVerdict) error {
	if susp, err := activeSuspension(ctx, q, a.TenantID, a.UserID); err != nil {
		return err
	} else if susp != nil {
		v.Limit, v.Detail = LimitSuspended, suspendedDetail(susp)
		return nil
	}
	for _, subj := range []struct {
		user string
		rule AnomalyRule
	}{{a.UserID, a.Anomaly.User}, {"", a.Anomaly.Tenant}} {
		cause, detail, err := attemptAnomaly(ctx, q, a, subj.user, subj.rule)
		if err != nil {
			return err
		}
		if cause != "" {
			v.Limit, v.Detail = LimitSuspended, detail
			v.Suspension = &Suspension{ID: newID(), TenantID: a.TenantID, UserID: subj.user, Cause: cause, Detail: detail, CreatedAt: a.At.UTC()}
			if subj.user != "" {
				v.Suspension.Username = a.Username
			}
			return nil
		}
	}
	if a.Denied != "" && !a.DryRun {
		return nil
	}
	return limitChecks(ctx, q, a, v)
}

func limitChecks(ctx context.Context, q querier, a PolicyAdmission, v *PolicyVerdict) error {
	now := ms(a.At)
	l := a.Limits
	if l.UserConcurrent > 0 {
		n, err := countActive(ctx, q, a.TenantID, a.UserID, now, l.UserConcurrent)
		if err != nil {
			return err
		}
		if n >= l.UserConcurrent {
			v.Limit, v.Detail = LimitConcurrent, fmt.Sprintf("user already has %d active calls (limit %d)", n, l.UserConcurrent)
			return nil
		}
	}
	if l.TenantConcurrent > 0 {
		n, err := countActive(ctx, q, a.TenantID, "", now, l.TenantConcurrent)
		if err != nil {
			return err
		}
		if n >= l.TenantConcurrent {
			v.Limit, v.Detail = LimitConcurrent, fmt.Sprintf("tenant already has %d active calls (limit %d)", n, l.TenantConcurrent)
			return nil
		}
	}
	for _, w := range []struct {
		user   string
		limit  int
		window time.Duration
		what   string
	}{
		{a.UserID, l.UserPerMinute, time.Minute, "user calls per minute"},
		{a.UserID, l.UserPerHour, time.Hour, "user calls per hour"},
		{"", l.TenantPerSecond, time.Second, "tenant calls per second"},
	} {
		if w.limit <= 0 {
			continue
		}
		retry, full, err := windowFull(ctx, q, a.TenantID, w.user, a.At, w.window, w.limit)
		if err != nil {
			return err
		}
		if full {
			v.Limit, v.RetryAfter = LimitRate, retry
			v.Detail = fmt.Sprintf("%s limit %d reached; room again in %s", w.what, w.limit, retry)
			return nil
		}
	}
	if a.Reserve > 0 && a.Spend.capped() {
		head, which, err := spendHeadroom(ctx, q, a.TenantID, a.UserID, a.Spend)
		if err != nil {
			return err
		}
		if head < a.Reserve {
			v.Limit = LimitSpend
			v.Detail = fmt.Sprintf("%s: %d left, this call reserves %d", which, max(head, 0), a.Reserve)
		}
	}
	return nil
}

// countActive counts live slots of a user ("" = the whole tenant), stopping
// at limit so the cost stays bounded however many calls run.
func countActive(ctx context.Context, q querier, tenantID, userID string, now int64, limit int) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM policy_attempts
		WHERE tenant_id = $1 AND state = 'active' AND `+subject(userID)+` AND expires_at > $3 AND deadline_at > $3
		LIMIT $4) t`, tenantID, userID, now, limit).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count active calls: %w", err)
	}
	return n, nil
}

// windowFull reports whether limit admitted attempts already sit in the
// sliding window, and when the oldest of them leaves it.
func windowFull(ctx context.Context, q querier, tenantID, userID string, at time.Time, window time.Duration, limit int) (time.Duration, bool, error) {
	var oldest int64
	var err error
	if userID != "" {
		err = q.QueryRow(ctx, `SELECT at FROM policy_attempts WHERE tenant_id = $1 AND user_id = $2 AND at > $3 AND admitted = 1
			ORDER BY at DESC LIMIT 1 OFFSET $4`, tenantID, userID, ms(at.Add(-window)), limit-1).Scan(&oldest)
	} else {
		err = q.QueryRow(ctx, `SELECT at FROM policy_attempts WHERE tenant_id = $1 AND at > $2 AND admitted = 1
			ORDER BY at DESC LIMIT 1 OFFSET $3`, tenantID, ms(at.Add(-window)), limit-1).Scan(&oldest)
	}
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("count window: %w", err)
	}
	retry := time.UnixMilli(oldest).Add(window).Sub(at)
	// SIP Retry-After counts whole seconds; round up so a retry then passes.
	retry = ((retry + time.Second - 1) / time.Second) * time.Second
	return max(retry, time.Second), true, nil
}

// spendHeadroom is what the tightest cap still allows: cap minus settled
// spend minus every unsettled reservation. It names that cap.
func spendHeadroom(ctx context.Context, q querier, tenantID, userID string, sp PolicySpend) (int64, string, error) {
	head, which := int64(math.MaxInt64), ""
	for _, c := range []struct {
		user  string
		cap   int64
		month bool
		name  string
	}{
		{"", sp.TenantDaily, false, "tenant daily spend cap"},
		{"", sp.TenantMonthly, true, "tenant monthly spend cap"},
		{userID, sp.UserDaily, false, "user daily spend cap"},
		{userID, sp.UserMonthly, true, "user monthly spend cap"},
	} {
		if c.cap <= 0 {
			continue
		}
		var spent, reserved int64
		var err error
		if c.month {
			err = q.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM policy_spend WHERE tenant_id = $1 AND user_id = $2 AND day >= $3`,
				tenantID, c.user, ms(sp.Month)).Scan(&spent)
		} else {
			err = q.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM policy_spend WHERE tenant_id = $1 AND user_id = $2 AND day = $3`,
				tenantID, c.user, ms(sp.Day)).Scan(&spent)
		}
		if err != nil {
			return 0, "", fmt.Errorf("read spend: %w", err)
		}
		err = q.QueryRow(ctx, `SELECT COALESCE(SUM(reserved), 0) FROM policy_attempts
			WHERE tenant_id = $1 AND state = 'active' AND `+subject(c.user), tenantID, c.user).Scan(&reserved)
		if err != nil {
			return 0, "", fmt.Errorf("read reservations: %w", err)
		}
		if h := c.cap - spent - reserved; h < head {
			head, which = h, c.name
		}
	}
	return head, which, nil
}

// addSpend books a settled amount on the tenant's and the user's day.
func addSpend(ctx context.Context, q querier, tenantID, userID string, day, amount int64) error {
	if amount <= 0 {
		return nil
	}
	for _, u := range []string{"", userID} {
		_, err := q.Exec(ctx, `INSERT INTO policy_spend (tenant_id, user_id, day, amount) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, user_id, day) DO UPDATE SET amount = policy_spend.amount + excluded.amount`,
			tenantID, u, day, amount)
		if err != nil {
			return fmt.Errorf("book spend: %w", err)
		}
	}
	return nil
}

// subject narrows a query to one user, or (userID "") to the whole tenant.
// It is spelled out per case rather than ($2 = ” OR user_id = $2) so the
// planner can use the user index; $2 stays bound either way.
func subject(userID string) string {
	if userID == "" {
		return "$2 = ''"
	}
	return "user_id = $2"
}
