package store

import (
	"context"
	"fmt"
	"time"
)

// PolicyExtension asks for more reservation on a running call whose first
// reservation is used up (the policy ends calls at a spend cap).
type PolicyExtension struct {
	TenantID string
	UserID   string
	SlotID   string
	At       time.Time
	Want     int64
	Spend    PolicySpend
}

// PolicyExtend reserves up to Want more for an active slot, as much as the
// tightest cap leaves; 0 means the cap is reached and the call should end.
func (db *DB) PolicyExtend(ctx context.Context, x PolicyExtension) (int64, error) {
	s, err := db.policyScope(x.TenantID)
	if err != nil {
		return 0, err
	}
	var granted int64
	err = s.write(ctx, func(q querier) error {
		granted = 0
		if err := db.lockTenant(ctx, q, x.TenantID); err != nil {
			return err
		}
		var state string
		if err := q.QueryRow(ctx, `SELECT state FROM policy_attempts WHERE tenant_id = $1 AND id = $2`, x.TenantID, x.SlotID).Scan(&state); err != nil {
			return fmt.Errorf("slot %s: %w", x.SlotID, err)
		}
		if state != "active" {
			return fmt.Errorf("slot %s is %s: %w", x.SlotID, state, ErrNotFound)
		}
		granted = x.Want
		if x.Spend.capped() {
			head, _, err := spendHeadroom(ctx, q, x.TenantID, x.UserID, x.Spend)
			if err != nil {
				return err
			}
			granted = min(granted, max(head, 0))
		}
		if granted <= 0 {
			return nil
		}
		_, err := q.Exec(ctx, `UPDATE policy_attempts SET reserved = reserved + $1 WHERE tenant_id = $2 AND id = $3`, granted, x.TenantID, x.SlotID)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("policy extend: %w", err)
	}
	return granted, nil
}

// PolicySettlement ends an admitted call.
type PolicySettlement struct {
	TenantID string
	UserID   string
	Username string
	SlotID   string
	At       time.Time
	Answered bool
	Talk     time.Duration // billed duration
	Cost     int64         // from the rate deck, minor units
	DryRun   bool          // report a tripped failure rule without storing it
	Anomaly  PolicyAnomaly
}

// PolicySettled is what settling did.
type PolicySettled struct {
	Charged int64 // booked now
	// Already is set when the slot was settled before (Finish twice).
	Already    bool
	Suspension *Suspension
}

// PolicySettle releases a slot, books the call's cost in place of its
// reservation and checks the failure-share rule. A slot a sweep already
// lapsed is charged only what the sweep's charge fell short of.
func (db *DB) PolicySettle(ctx context.Context, st PolicySettlement) (PolicySettled, error) {
	s, err := db.policyScope(st.TenantID)
	if err != nil {
		return PolicySettled{}, err
	}
	if st.Cost < 0 || st.Talk < 0 {
		return PolicySettled{}, invalidf("policy settle: negative cost or duration")
	}
	var out PolicySettled
	err = s.write(ctx, func(q querier) error {
		out = PolicySettled{}
		if err := db.lockTenant(ctx, q, st.TenantID); err != nil {
			return err
		}
		c := newCounts(st.TenantID, st.UserID)
		var state, userID string
		var charged, day, at int64
		c.add(&state, "a.state")
		c.add(&userID, "a.user_id")
		c.add(&charged, "a.charged")
		c.add(&day, "a.day")
		c.add(&at, "a.at")
		var subjects []*failureReads
		for _, f := range []*failureReads{{user: st.UserID, name: st.Username, rule: st.Anomaly.User}, {rule: st.Anomaly.Tenant}} {
			if f.rule.MaxFailedPercent > 0 {
				f.add(c, st.At)
				subjects = append(subjects, f)
			}
		}
		if err := c.runFrom(ctx, q, "policy_attempts a WHERE a.tenant_id = $1 AND a.id = "+c.arg(st.SlotID)); err != nil {
			return fmt.Errorf("slot %s: %w", st.SlotID, err)
		}
		if userID != st.UserID {
			return invalidf("slot %s belongs to another user", st.SlotID)
		}
		switch state {
		case "done":
			out.Already = true
			return nil
		case "denied":
			return invalidf("slot %s was never admitted", st.SlotID)
		case "active":
			out.Charged = st.Cost
		case "lapsed":
			out.Charged = max(st.Cost-charged, 0)
		}
		answered := 0
		if st.Answered {
			answered = 1
		}
		if _, err := q.Exec(ctx, `UPDATE policy_attempts SET state = 'done', reserved = 0, charged = charged + $1, ended_at = $2,
			answered = $3, talk_ms = $4 WHERE tenant_id = $5 AND id = $6`,
			out.Charged, ms(st.At), answered, st.Talk.Milliseconds(), st.TenantID, st.SlotID); err != nil {
			return fmt.Errorf("settle slot: %w", err)
		}
		if err := addSpend(ctx, q, st.TenantID, userID, day, out.Charged); err != nil {
			return err
		}
		for _, f := range subjects {
			cause, detail, err := f.check(ctx, q, st, at)
			if err != nil {
				return err
			}
			if cause == "" {
				continue
			}
			out.Suspension = &Suspension{ID: newID(), TenantID: st.TenantID, UserID: f.user, Username: f.name,
				Cause: cause, Detail: detail, CreatedAt: st.At.UTC()}
			if st.DryRun {
				return nil
			}
			return s.insertSuspension(ctx, q, out.Suspension)
		}
		return nil
	})
	if err != nil {
		return PolicySettled{}, fmt.Errorf("policy settle %s: %w", st.SlotID, err)
	}
	return out, nil
}

// failureReads are one subject's failure-share reads at settle time.
type failureReads struct {
	user, name string // user "" = the tenant
	rule       AnomalyRule
	start      int64
	lifted     int64
	suspended  int
	total, bad int
}

func (f *failureReads) add(c *counts, at time.Time) {
	f.start = ms(at.Add(-f.rule.FailuresWindow))
	who := c.who(f.user)
	c.add(&f.suspended, `(SELECT COUNT(*) FROM policy_suspensions WHERE tenant_id = $1 AND lifted_at = 0 AND user_id IN ('', `+who+`))`)
	c.add(&f.lifted, `(SELECT COALESCE(MAX(lifted_at), 0) FROM policy_suspensions WHERE tenant_id = $1 AND user_id = `+who+`)`)
	window := `FROM policy_attempts WHERE tenant_id = $1 AND ` + c.scope(f.user) + ` AND state = 'done' AND at > ` + c.arg(f.start)
	c.add(&f.total, `(SELECT COUNT(*) `+window+`)`)
	c.add(&f.bad, `(SELECT COUNT(*) `+window+` AND (answered = 0 OR talk_ms < `+c.arg(f.rule.ShortCall.Milliseconds())+`))`)
}

// check applies the failure-share rule with the call being settled
// (admitted at callAt) counted. A subject already stopped needs no second
// suspension; a lift inside the window restarts it there.
func (f *failureReads) check(ctx context.Context, q querier, st PolicySettlement, callAt int64) (string, string, error) {
	if f.suspended > 0 {
		return "", "", nil
	}
	since := max(f.start, f.lifted)
	if f.lifted > f.start {
		err := q.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN answered = 0 OR talk_ms < $4 THEN 1 ELSE 0 END), 0)
			FROM policy_attempts WHERE tenant_id = $1 AND `+subject(f.user)+` AND at > $3 AND state = 'done'`,
			st.TenantID, f.user, since, f.rule.ShortCall.Milliseconds()).Scan(&f.total, &f.bad)
		if err != nil {
			return "", "", fmt.Errorf("count failures: %w", err)
		}
	}
	total, nbad := f.total, f.bad
	if callAt > since { // this call was still active when the window was read
		total++
		if !st.Answered || st.Talk < f.rule.ShortCall {
			nbad++
		}
	}
	if total < max(f.rule.MinCalls, 1) || nbad*100 <= f.rule.MaxFailedPercent*total {
		return "", "", nil
	}
	who := "user " + f.name
	if f.user == "" {
		who = "tenant"
	}
	return "failures", fmt.Sprintf("%s: %d of %d calls in %s failed or lasted under %s (limit %d%%)",
		who, nbad, total, f.rule.FailuresWindow, f.rule.ShortCall, f.rule.MaxFailedPercent), nil
}

// PolicyRenew extends the lease of every live slot a node holds; a node
// renews well within the lease, so only a dead node's slots lapse.
func (db *DB) PolicyRenew(ctx context.Context, node string, at, until time.Time) (int64, error) {
	if node == "" {
		return 0, invalidf("policy renew: node is required")
	}
	var n int64
	err := db.sysWrite(ctx, func(q querier) error {
		var err error
		n, err = q.Exec(ctx, `UPDATE policy_attempts SET expires_at = $1 WHERE node = $2 AND state = 'active' AND expires_at > $3`,
			ms(until), node, ms(at))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("policy renew %s: %w", node, err)
	}
	return n, nil
}

// PolicySweepResult counts what a sweep did.
type PolicySweepResult struct {
	Lapsed int64 // slots whose lease or deadline ran out, reservation charged
	Pruned int64 // attempts older than every window, deleted
}

// PolicySweep lapses slots whose lease or deadline has passed, charging
// their reservation (a call whose node died may well have run: charging the
// estimate errs on the side of the cap), and prunes old attempts and spend.
func (db *DB) PolicySweep(ctx context.Context, at time.Time, keep time.Duration) (PolicySweepResult, error) {
	var res PolicySweepResult
	type slot struct {
		id, tenant, user string
		reserved, day    int64
	}
	err := db.sysWrite(ctx, func(q querier) error {
		res = PolicySweepResult{}
		slots, err := collect(ctx, q, func(r row) (slot, error) {
			var s slot
			return s, r.Scan(&s.id, &s.tenant, &s.user, &s.reserved, &s.day)
		}, `SELECT id, tenant_id, user_id, reserved, day FROM policy_attempts
			WHERE state = 'active' AND (expires_at <= $1 OR deadline_at <= $1) LIMIT 1000`, ms(at))
		if err != nil {
			return err
		}
		for _, s := range slots {
			if err := db.lockTenant(ctx, q, s.tenant); err != nil {
				return err
			}
			if _, err := q.Exec(ctx, `UPDATE policy_attempts SET state = 'lapsed', charged = reserved, reserved = 0, ended_at = $1
				WHERE tenant_id = $2 AND id = $3 AND state = 'active'`, ms(at), s.tenant, s.id); err != nil {
				return err
			}
			if err := addSpend(ctx, q, s.tenant, s.user, s.day, s.reserved); err != nil {
				return err
			}
		}
		res.Lapsed = int64(len(slots))
		// Prune per tenant over the (tenant_id, at) index and in batches, so
		// the writer is never held for a scan of the whole table.
		tenants, err := collect(ctx, q, func(r row) (string, error) {
			var id string
			return id, r.Scan(&id)
		}, `SELECT id FROM tenants`)
		if err != nil {
			return err
		}
		for _, t := range tenants {
			n, err := q.Exec(ctx, `DELETE FROM policy_attempts WHERE id IN (SELECT id FROM policy_attempts
				WHERE tenant_id = $1 AND at < $2 AND state <> 'active' LIMIT 5000)`, t, ms(at.Add(-keep)))
			if err != nil {
				return err
			}
			res.Pruned += n
		}
		// Spend older than a year and a bit serves no cap.
		_, err = q.Exec(ctx, `DELETE FROM policy_spend WHERE day < $1`, ms(at.Add(-400*24*time.Hour)))
		return err
	})
	if err != nil {
		return PolicySweepResult{}, fmt.Errorf("policy sweep: %w", err)
	}
	return res, nil
}

// PolicyAudit records a policy event of a tenant on its own (emergency
// calls, which never touch the counters).
func (db *DB) PolicyAudit(ctx context.Context, tenantID, action, object string, details map[string]any) error {
	s, err := db.policyScope(tenantID)
	if err != nil {
		return err
	}
	return s.Audit(ctx, action, object, details)
}

// PolicySpent is the settled spend of one user (or with userID "" the whole
// tenant) on the days starting at or after from, in minor units.
func (s *Scope) PolicySpent(ctx context.Context, userID string, from time.Time) (int64, error) {
	var n int64
	err := s.read(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0) FROM policy_spend WHERE tenant_id = $1 AND user_id = $2 AND day >= $3`,
			s.p.tenantID, userID, ms(from)).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("policy spent: %w", err)
	}
	return n, nil
}
