package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotPermitted means the principal's role may not do what it asked.
var ErrNotPermitted = errors.New("not permitted")

// Suspension stops a user's (or, with UserID "", a whole tenant's) outbound
// calling after an anomaly rule tripped. Emergency calls still pass.
type Suspension struct {
	ID        string
	TenantID  string
	UserID    string // "" = the tenant
	Username  string
	Cause     string // attempts, spread_countries, spread_prefixes, failures
	Detail    string
	CreatedAt time.Time
	LiftedAt  time.Time // zero while in force
	LiftedBy  string
}

// Active reports whether the suspension is in force.
func (s Suspension) Active() bool { return s.LiftedAt.IsZero() }

const suspensionCols = `id, tenant_id, user_id, username, cause, detail, created_at, lifted_at, lifted_by`

func scanSuspension(r row) (Suspension, error) {
	var s Suspension
	var created, lifted int64
	err := r.Scan(&s.ID, &s.TenantID, &s.UserID, &s.Username, &s.Cause, &s.Detail, &created, &lifted, &s.LiftedBy)
	s.CreatedAt, s.LiftedAt = fromMS(created), fromMS(lifted)
	return s, err
}

func suspendedDetail(s *Suspension) string {
	who := "tenant"
	if s.UserID != "" {
		who = "user " + s.Username
	}
	return fmt.Sprintf("%s suspended since %s (%s: %s)", who, s.CreatedAt.Format(time.RFC3339), s.Cause, s.Detail)
}

// activeSuspension finds a suspension in force for the user or its tenant.
func activeSuspension(ctx context.Context, q querier, tenantID, userID string) (*Suspension, error) {
	s, err := scanSuspension(q.QueryRow(ctx, `SELECT `+suspensionCols+` FROM policy_suspensions
		WHERE tenant_id = $1 AND lifted_at = 0 AND (user_id = '' OR user_id = $2) ORDER BY created_at LIMIT 1`, tenantID, userID))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read suspensions: %w", err)
	}
	return &s, nil
}

func (s *Scope) insertSuspension(ctx context.Context, q querier, sp *Suspension) error {
	_, err := q.Exec(ctx, `INSERT INTO policy_suspensions (`+suspensionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, '')`,
		sp.ID, s.p.tenantID, sp.UserID, sp.Username, sp.Cause, sp.Detail, ms(sp.CreatedAt))
	if err != nil {
		return fmt.Errorf("store suspension: %w", err)
	}
	return s.audit(ctx, q, "policy.suspend", subjectObject(sp.Username), map[string]any{
		"suspension": sp.ID, "cause": sp.Cause, "detail": sp.Detail})
}

func subjectObject(username string) string {
	if username == "" {
		return "tenant"
	}
	return "user:" + username
}

// SuspensionFilter narrows Suspensions.
type SuspensionFilter struct {
	Username string // one user's; "" for all
	Lifted   bool   // include lifted ones (history)
}

// Suspensions lists the tenant's suspensions, newest first.
func (s *Scope) Suspensions(ctx context.Context, f SuspensionFilter) ([]Suspension, error) {
	var out []Suspension
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanSuspension, `SELECT `+suspensionCols+` FROM policy_suspensions
			WHERE tenant_id = $1 AND ($2 = '' OR username = $2) AND ($3 OR lifted_at = 0)
			ORDER BY created_at DESC, id DESC LIMIT 1000`, s.p.tenantID, f.Username, f.Lifted)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list suspensions: %w", err)
	}
	return out, nil
}

// LiftSuspensions lifts the suspensions in force of one user, or with
// username "" those of the whole tenant. Only an owner or manager (or an
// operator) may; each lift is audited. It returns what it lifted.
func (s *Scope) LiftSuspensions(ctx context.Context, username string) ([]Suspension, error) {
	if !s.p.Role().AtLeast(RoleManager) {
		return nil, fmt.Errorf("lift suspension: %w: owners and managers only", ErrNotPermitted)
	}
	now := s.db.now()
	var out []Suspension
	err := s.write(ctx, func(q querier) error {
		userID := ""
		if username != "" {
			if err := q.QueryRow(ctx, `SELECT id FROM users WHERE tenant_id = $1 AND username = $2`, s.p.tenantID, username).Scan(&userID); err != nil {
				return fmt.Errorf("user %s: %w", username, err)
			}
		}
		if err := s.db.lockTenant(ctx, q, s.p.tenantID); err != nil {
			return err
		}
		var err error
		out, err = collect(ctx, q, scanSuspension, `SELECT `+suspensionCols+` FROM policy_suspensions
			WHERE tenant_id = $1 AND user_id = $2 AND lifted_at = 0 ORDER BY created_at`, s.p.tenantID, userID)
		if err != nil {
			return err
		}
		for i := range out {
			if _, err := q.Exec(ctx, `UPDATE policy_suspensions SET lifted_at = $1, lifted_by = $2 WHERE tenant_id = $3 AND id = $4`,
				ms(now), s.p.Actor(), s.p.tenantID, out[i].ID); err != nil {
				return err
			}
			out[i].LiftedAt, out[i].LiftedBy = fromMS(ms(now)), s.p.Actor()
			if err := s.audit(ctx, q, "policy.lift", subjectObject(username), map[string]any{
				"suspension": out[i].ID, "cause": out[i].Cause, "suspended_at": out[i].CreatedAt.Format(time.RFC3339)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lift suspension: %w", err)
	}
	return out, nil
}
