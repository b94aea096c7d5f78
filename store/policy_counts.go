package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// counts gathers the reads of one policy transaction into a single SELECT
// of scalar subqueries. The SQLite driver prepares every statement afresh,
// so parsing, not reading, dominated a decision made of twenty statements.
// $1 is the tenant; the user gets a parameter only once a read needs it,
// since Postgres refuses a parameter it cannot type from its use.
type counts struct {
	cols    []string
	args    []any
	dest    []any
	userID  string
	userArg string
}

func newCounts(tenantID, userID string) *counts {
	return &counts{args: []any{tenantID}, userID: userID}
}

// who is the user's parameter, or for an empty userID the empty-string
// literal that marks the tenant's own rows.
func (c *counts) who(userID string) string {
	if userID == "" {
		return "''"
	}
	if c.userArg == "" {
		c.userArg = c.arg(c.userID)
	}
	return c.userArg
}

// scope narrows a read to the user, or for userID "" to the whole tenant.
func (c *counts) scope(userID string) string {
	if userID == "" {
		return "1 = 1"
	}
	return "user_id = " + c.who(userID)
}

func (c *counts) arg(v any) string {
	c.args = append(c.args, v)
	return "$" + strconv.Itoa(len(c.args))
}

func (c *counts) add(dest any, expr string) {
	c.cols = append(c.cols, expr)
	c.dest = append(c.dest, dest)
}

// attempts adds a count of the subject's attempts matching where, stopping
// at limit so its cost stays bounded however busy the tenant is.
func (c *counts) attempts(dest *int, userID, where string, limit int) {
	c.add(dest, `(SELECT COUNT(*) FROM (SELECT 1 FROM policy_attempts WHERE tenant_id = $1 AND `+c.scope(userID)+
		` AND `+where+` LIMIT `+c.arg(limit)+`) t)`)
}

func (c *counts) run(ctx context.Context, q querier) error {
	if len(c.cols) == 0 {
		return nil
	}
	return c.runFrom(ctx, q, "")
}

// runFrom reads the columns from one row of from ("" = no table);
// ErrNotFound when there is no such row.
func (c *counts) runFrom(ctx context.Context, q querier, from string) error {
	sql := `SELECT ` + strings.Join(c.cols, ", ")
	if from != "" {
		sql += ` FROM ` + from
	}
	if err := q.QueryRow(ctx, sql, c.args...).Scan(c.dest...); err != nil {
		return fmt.Errorf("read policy counters: %w", err)
	}
	return nil
}

// headroom adds the reads for the spend caps and returns what computes,
// after run, the room left under the tightest cap (cap minus settled spend
// minus every unsettled reservation) and that cap's name.
func (c *counts) headroom(sp PolicySpend) func() (int64, string) {
	type capRead struct {
		cap             int64
		name            string
		spent, reserved *int64
	}
	var caps []capRead
	var reservedT, reservedU int64
	if sp.TenantDaily > 0 || sp.TenantMonthly > 0 {
		c.add(&reservedT, `(SELECT COALESCE(SUM(reserved), 0) FROM policy_attempts WHERE tenant_id = $1 AND state = 'active')`)
	}
	if sp.UserDaily > 0 || sp.UserMonthly > 0 {
		c.add(&reservedU, `(SELECT COALESCE(SUM(reserved), 0) FROM policy_attempts WHERE tenant_id = $1 AND state = 'active' AND `+c.scope(c.userID)+`)`)
	}
	for _, k := range []struct {
		cap   int64
		user  bool
		month bool
		name  string
	}{
		{sp.TenantDaily, false, false, "tenant daily spend cap"},
		{sp.TenantMonthly, false, true, "tenant monthly spend cap"},
		{sp.UserDaily, true, false, "user daily spend cap"},
		{sp.UserMonthly, true, true, "user monthly spend cap"},
	} {
		if k.cap <= 0 {
			continue
		}
		r := capRead{cap: k.cap, name: k.name, spent: new(int64), reserved: &reservedT}
		who := "''"
		if k.user {
			who, r.reserved = c.who(c.userID), &reservedU
		}
		var day string
		if k.month {
			day = "day >= " + c.arg(ms(sp.Month))
		} else {
			day = "day = " + c.arg(ms(sp.Day))
		}
		c.add(r.spent, `(SELECT COALESCE(SUM(amount), 0) FROM policy_spend WHERE tenant_id = $1 AND user_id = `+who+` AND `+day+`)`)
		caps = append(caps, r)
	}
	return func() (int64, string) {
		head, which := int64(math.MaxInt64), ""
		for _, r := range caps {
			if h := r.cap - *r.spent - *r.reserved; h < head {
				head, which = h, r.name
			}
		}
		return head, which
	}
}

// spendHeadroom reads the room under the caps on its own (Extend).
func spendHeadroom(ctx context.Context, q querier, tenantID, userID string, sp PolicySpend) (int64, string, error) {
	c := newCounts(tenantID, userID)
	head := c.headroom(sp)
	if err := c.run(ctx, q); err != nil {
		return 0, "", err
	}
	h, which := head()
	return h, which, nil
}

func (r AnomalyRule) attemptRules() bool {
	return r.MaxAttempts > 0 || r.MaxCountries > 0 || r.MaxPrefixes > 0
}

// anomalyReads are one subject's attempt-rule reads.
type anomalyReads struct {
	user                    string // "" = the tenant
	rule                    AnomalyRule
	lifted                  int64 // its last lift: windows never reach back past it
	attempts                int
	seenCountry, seenPrefix int
}

// admitChecks fills v.Limit with the first counted limit that fails, in the
// order an admin reads them: suspension, anomaly, concurrency, rate, spend.
// A call the policy already refused is only checked for anomalies.
func admitChecks(ctx context.Context, q querier, a PolicyAdmission, v *PolicyVerdict) error {
	now := ms(a.At)
	c := newCounts(a.TenantID, a.UserID)
	var suspended int
	c.add(&suspended, `(SELECT COUNT(*) FROM policy_suspensions WHERE tenant_id = $1 AND user_id IN ('', `+c.who(a.UserID)+`) AND lifted_at = 0)`)

	var subjects []*anomalyReads
	for _, s := range []*anomalyReads{{user: a.UserID, rule: a.Anomaly.User}, {user: "", rule: a.Anomaly.Tenant}} {
		if !s.rule.attemptRules() {
			continue
		}
		subjects = append(subjects, s)
		c.add(&s.lifted, `(SELECT COALESCE(MAX(lifted_at), 0) FROM policy_suspensions WHERE tenant_id = $1 AND user_id = `+c.who(s.user)+`)`)
		if s.rule.MaxAttempts > 0 {
			c.attempts(&s.attempts, s.user, "at > "+c.arg(ms(a.At.Add(-s.rule.AttemptsWindow))), s.rule.MaxAttempts)
		}
		if s.rule.MaxCountries > 0 && a.Country != "" {
			c.attempts(&s.seenCountry, s.user, "country = "+c.arg(a.Country)+" AND at > "+c.arg(ms(a.At.Add(-s.rule.SpreadWindow))), 1)
		}
		if s.rule.MaxPrefixes > 0 && a.Prefix != "" {
			c.attempts(&s.seenPrefix, s.user, "prefix = "+c.arg(a.Prefix)+" AND at > "+c.arg(ms(a.At.Add(-s.rule.SpreadWindow))), 1)
		}
	}

	limits := a.Denied == "" || a.DryRun
	l := a.Limits
	var activeUser, activeTenant, perMinute, perHour, perSecond int
	var head func() (int64, string)
	if limits {
		nowArg := c.arg(now)
		live := "state = 'active' AND expires_at > " + nowArg + " AND deadline_at > " + nowArg
		if l.UserConcurrent > 0 {
			c.attempts(&activeUser, a.UserID, live, l.UserConcurrent)
		}
		if l.TenantConcurrent > 0 {
			c.attempts(&activeTenant, "", live, l.TenantConcurrent)
		}
		for _, w := range []struct {
			dest   *int
			user   string
			limit  int
			window time.Duration
		}{{&perMinute, a.UserID, l.UserPerMinute, time.Minute}, {&perHour, a.UserID, l.UserPerHour, time.Hour}, {&perSecond, "", l.TenantPerSecond, time.Second}} {
			if w.limit > 0 {
				c.attempts(w.dest, w.user, "at > "+c.arg(ms(a.At.Add(-w.window)))+" AND admitted = 1", w.limit)
			}
		}
		if a.Reserve > 0 && a.Spend.capped() {
			head = c.headroom(a.Spend)
		}
	}
	if err := c.run(ctx, q); err != nil {
		return err
	}

	if suspended > 0 {
		susp, err := activeSuspension(ctx, q, a.TenantID, a.UserID)
		if err != nil || susp == nil {
			return err
		}
		v.Limit, v.Detail = LimitSuspended, suspendedDetail(susp)
		return nil
	}
	for _, s := range subjects {
		cause, detail, err := s.check(ctx, q, a)
		if err != nil {
			return err
		}
		if cause != "" {
			v.Limit, v.Detail = LimitSuspended, detail
			v.Suspension = &Suspension{ID: newID(), TenantID: a.TenantID, UserID: s.user, Cause: cause, Detail: detail, CreatedAt: a.At.UTC()}
			if s.user != "" {
				v.Suspension.Username = a.Username
			}
			return nil
		}
	}
	if !limits {
		return nil
	}
	switch {
	case l.UserConcurrent > 0 && activeUser >= l.UserConcurrent:
		v.Limit, v.Detail = LimitConcurrent, fmt.Sprintf("user already has %d active calls (limit %d)", activeUser, l.UserConcurrent)
		return nil
	case l.TenantConcurrent > 0 && activeTenant >= l.TenantConcurrent:
		v.Limit, v.Detail = LimitConcurrent, fmt.Sprintf("tenant already has %d active calls (limit %d)", activeTenant, l.TenantConcurrent)
		return nil
	}
	for _, w := range []struct {
		n, limit int
		user     string
		window   time.Duration
		what     string
	}{
		{perMinute, l.UserPerMinute, a.UserID, time.Minute, "user calls per minute"},
		{perHour, l.UserPerHour, a.UserID, time.Hour, "user calls per hour"},
		{perSecond, l.TenantPerSecond, "", time.Second, "tenant calls per second"},
	} {
		if w.limit <= 0 || w.n < w.limit {
			continue
		}
		retry, err := retryAfter(ctx, q, a.TenantID, w.user, a.At, w.window, w.limit)
		if err != nil {
			return err
		}
		v.Limit, v.RetryAfter = LimitRate, retry
		v.Detail = fmt.Sprintf("%s limit %d reached; room again in %s", w.what, w.limit, retry)
		return nil
	}
	if head != nil {
		if h, which := head(); h < a.Reserve {
			v.Limit = LimitSpend
			v.Detail = fmt.Sprintf("%s: %d left, this call reserves %d", which, max(h, 0), a.Reserve)
		}
	}
	return nil
}

// check applies one subject's attempt rules, this attempt included. A lift
// inside a window is rare; then the window is read again from the lift.
func (s *anomalyReads) check(ctx context.Context, q querier, a PolicyAdmission) (string, string, error) {
	who := "user " + a.Username
	if s.user == "" {
		who = "tenant"
	}
	r := s.rule
	if r.MaxAttempts > 0 {
		n := s.attempts
		if start := ms(a.At.Add(-r.AttemptsWindow)); s.lifted > start {
			var err error
			if n, err = countSince(ctx, q, a.TenantID, s.user, "", "", s.lifted, r.MaxAttempts); err != nil {
				return "", "", err
			}
		}
		if n+1 > r.MaxAttempts {
			return "attempts", fmt.Sprintf("%s made more than %d call attempts in %s", who, r.MaxAttempts, r.AttemptsWindow), nil
		}
	}
	since := max(ms(a.At.Add(-r.SpreadWindow)), s.lifted)
	for _, sp := range []struct {
		col, value, cause, what string
		limit, seen             int
	}{
		{"country", a.Country, "spread_countries", "countries", r.MaxCountries, s.seenCountry},
		{"prefix", a.Prefix, "spread_prefixes", "prefixes", r.MaxPrefixes, s.seenPrefix},
	} {
		if sp.limit <= 0 || sp.value == "" {
			continue
		}
		seen := sp.seen
		if s.lifted > ms(a.At.Add(-r.SpreadWindow)) {
			var err error
			if seen, err = countSince(ctx, q, a.TenantID, s.user, sp.col, sp.value, since, 1); err != nil {
				return "", "", err
			}
		}
		// The distinct count can only grow when this value is new in the
		// window; only then is the expensive count needed.
		if seen > 0 {
			continue
		}
		var n int
		err := q.QueryRow(ctx, `SELECT COUNT(DISTINCT `+sp.col+`) FROM policy_attempts WHERE tenant_id = $1
			AND `+subject(s.user)+` AND at > $3 AND `+sp.col+` <> ''`, a.TenantID, s.user, since).Scan(&n)
		if err != nil {
			return "", "", fmt.Errorf("count spread: %w", err)
		}
		if n+1 > sp.limit {
			return sp.cause, fmt.Sprintf("%s called more than %d %s in %s", who, sp.limit, sp.what, r.SpreadWindow), nil
		}
	}
	return "", "", nil
}

// countSince counts a subject's attempts after since (col = value when col
// is set), up to limit.
func countSince(ctx context.Context, q querier, tenantID, userID, col, value string, since int64, limit int) (int, error) {
	c := newCounts(tenantID, userID)
	var n int
	where := "at > " + c.arg(since)
	if col != "" {
		where += " AND " + col + " = " + c.arg(value)
	}
	c.attempts(&n, userID, where, limit)
	return n, c.run(ctx, q)
}

// retryAfter is when the oldest of the limit newest admitted attempts in
// the window leaves it, in whole seconds (SIP Retry-After), at least 1 s.
func retryAfter(ctx context.Context, q querier, tenantID, userID string, at time.Time, window time.Duration, limit int) (time.Duration, error) {
	var oldest int64
	err := q.QueryRow(ctx, `SELECT at FROM policy_attempts WHERE tenant_id = $1 AND `+subject(userID)+` AND at > $3 AND admitted = 1
		ORDER BY at DESC LIMIT 1 OFFSET $4`, tenantID, userID, ms(at.Add(-window)), limit-1).Scan(&oldest)
	if errors.Is(err, ErrNotFound) {
		return time.Second, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read rate window: %w", err)
	}
	retry := time.UnixMilli(oldest).Add(window).Sub(at)
	retry = (retry + time.Second - 1) / time.Second * time.Second
	return max(retry, time.Second), nil
}
