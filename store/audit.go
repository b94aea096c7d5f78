package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// AuditEvent is one append-only record of who did what.
type AuditEvent struct {
	ID       string
	TenantID string
	Actor    string
	Action   string
	Object   string
	Details  map[string]any
	At       time.Time
}

func insertAudit(ctx context.Context, q querier, now time.Time, tenantID, actor, action, object string, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	body, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	_, err = q.Exec(ctx, `INSERT INTO audit_events (id, tenant_id, actor, action, object, details, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		newID(), tenantID, actor, action, object, string(body), ms(now))
	return err
}

// audit records an event inside the caller's transaction, so the change and
// its record commit together or not at all.
func (s *Scope) audit(ctx context.Context, q querier, action, object string, details map[string]any) error {
	return insertAudit(ctx, q, s.db.now(), s.p.tenantID, s.p.Actor(), action, object, details)
}

// Audit records an event on its own (policy denials, emergency calls, ...).
func (s *Scope) Audit(ctx context.Context, action, object string, details map[string]any) error {
	return s.write(ctx, func(q querier) error { return s.audit(ctx, q, action, object, details) })
}

// AuditFilter narrows AuditEvents.
type AuditFilter struct {
	Action string // exact action, "" for all
	Limit  int    // default 100
}

// AuditEvents lists the tenant's events, newest first.
func (s *Scope) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	var out []AuditEvent
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanAudit,
			`SELECT id, tenant_id, actor, action, object, details, at FROM audit_events
			 WHERE tenant_id = $1 AND ($2 = '' OR action = $2) ORDER BY at DESC, id DESC LIMIT $3`,
			s.p.tenantID, f.Action, f.Limit)
		return err
	})
	return out, err
}

func scanAudit(r row) (AuditEvent, error) {
	var e AuditEvent
	var details string
	var at int64
	if err := r.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.Object, &details, &at); err != nil {
		return e, err
	}
	e.At = fromMS(at)
	if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
		return e, fmt.Errorf("audit %s details: %w", e.ID, err)
	}
	return e, nil
}
