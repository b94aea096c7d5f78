package store

import (
	"context"
	"fmt"
	"time"
)

// Direction of a call as seen from the tenant.
type Direction string

// Call directions.
const (
	Outbound Direction = "outbound" // rep to carrier
	Inbound  Direction = "inbound"  // carrier to rep
)

// Call is the record every call leaves. Leg a is the dialog that reached
// Blackbox, leg b the one Blackbox created.
type Call struct {
	ID        string
	TenantID  string
	UserID    string
	Direction Direction
	Caller    string // E.164 where known
	Callee    string
	TrunkID   string
	ACallID   string
	BCallID   string
	InviteAt  time.Time
	RingingAt time.Time
	AnswerAt  time.Time
	EndAt     time.Time
	EndReason string // e.g. bye, cancel, rtp_timeout, busy, no_answer, trunk_unreachable, policy:<code>
	ACode     int    // final response code sent on leg a
	BCode     int    // final response code received on leg b
	HangupBy  string // caller, callee, system
	Node      string
}

// NewCallID returns a fresh call id (time-ordered).
func NewCallID() string { return newID() }

const callCols = `id, tenant_id, user_id, direction, caller, callee, trunk_id, a_call_id, b_call_id,
	invite_at, ringing_at, answer_at, end_at, end_reason, a_code, b_code, hangup_by, node`

func callArgs(c Call) []any {
	return []any{c.ID, c.TenantID, c.UserID, string(c.Direction), c.Caller, c.Callee, c.TrunkID, c.ACallID, c.BCallID,
		ms(c.InviteAt), ms(c.RingingAt), ms(c.AnswerAt), ms(c.EndAt), c.EndReason, c.ACode, c.BCode, c.HangupBy, c.Node}
}

func scanCall(r row) (Call, error) {
	var c Call
	var dir string
	var inv, ring, ans, end int64
	err := r.Scan(&c.ID, &c.TenantID, &c.UserID, &dir, &c.Caller, &c.Callee, &c.TrunkID, &c.ACallID, &c.BCallID,
		&inv, &ring, &ans, &end, &c.EndReason, &c.ACode, &c.BCode, &c.HangupBy, &c.Node)
	c.Direction = Direction(dir)
	c.InviteAt, c.RingingAt, c.AnswerAt, c.EndAt = fromMS(inv), fromMS(ring), fromMS(ans), fromMS(end)
	return c, err
}

// InsertCall records a call as soon as it is accepted for processing, so a
// crash mid-call still leaves its record.
func (s *Scope) InsertCall(ctx context.Context, c Call) error {
	if c.ID == "" {
		return invalidf("call id is required")
	}
	c.TenantID = s.p.tenantID
	err := s.write(ctx, func(q querier) error {
		_, err := q.Exec(ctx, `INSERT INTO calls (`+callCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
			callArgs(c)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("insert call %s: %w", c.ID, err)
	}
	return nil
}

// UpdateCall rewrites a call's mutable fields.
func (s *Scope) UpdateCall(ctx context.Context, c Call) error {
	err := s.write(ctx, func(q querier) error {
		n, err := q.Exec(ctx, `UPDATE calls SET user_id = $3, caller = $4, callee = $5, trunk_id = $6, b_call_id = $7,
			ringing_at = $8, answer_at = $9, end_at = $10, end_reason = $11, a_code = $12, b_code = $13, hangup_by = $14
			WHERE tenant_id = $1 AND id = $2`,
			s.p.tenantID, c.ID, c.UserID, c.Caller, c.Callee, c.TrunkID, c.BCallID,
			ms(c.RingingAt), ms(c.AnswerAt), ms(c.EndAt), c.EndReason, c.ACode, c.BCode, c.HangupBy)
		if err == nil && n == 0 {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("update call %s: %w", c.ID, err)
	}
	return nil
}

// Call finds one call of the tenant.
func (s *Scope) Call(ctx context.Context, id string) (Call, error) {
	var c Call
	err := s.read(ctx, func(q querier) error {
		var err error
		c, err = scanCall(q.QueryRow(ctx, `SELECT `+callCols+` FROM calls WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, id))
		return err
	})
	if err != nil {
		return Call{}, fmt.Errorf("call %s: %w", id, err)
	}
	return c, nil
}

// CallFilter narrows Calls. Before is a cursor: the id of the last call of
// the previous page (ids are time-ordered).
type CallFilter struct {
	UserID string
	Before string
	Limit  int // default 100, max 1000
}

// Calls lists the tenant's calls, newest first.
func (s *Scope) Calls(ctx context.Context, f CallFilter) ([]Call, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	var out []Call
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanCall, `SELECT `+callCols+` FROM calls
			WHERE tenant_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = '' OR id < $3)
			ORDER BY id DESC LIMIT $4`, s.p.tenantID, f.UserID, f.Before, f.Limit)
		return err
	})
	return out, err
}
