package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrOnHold means a legal hold forbids the deletion asked for.
var ErrOnHold = errors.New("under legal hold")

// MaxReasonLen bounds the free-text reasons of holds and deletions.
const MaxReasonLen = 1000

// Hold is a legal hold on a call: while it is in force nothing of the call
// (its metadata, its recordings) is deleted, by retention or by anyone.
type Hold struct {
	ID            string
	TenantID      string
	CallID        string
	Reason        string
	PlacedBy      string
	PlacedAt      time.Time
	ReleasedAt    time.Time // zero while in force
	ReleasedBy    string
	ReleaseReason string
}

// Active reports whether the hold is in force.
func (h Hold) Active() bool { return h.ReleasedAt.IsZero() }

// require refuses a principal below min: the API's role table decides
// first, and the store holds the line again for any other caller.
func (s *Scope) require(min Role, what string) error {
	if !s.p.Role().AtLeast(min) {
		return fmt.Errorf("%s: %w: the %s role is needed", what, ErrNotPermitted, min)
	}
	return nil
}

func checkReason(what, reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", invalidf("%s: a reason is required", what)
	case len(reason) > MaxReasonLen:
		return "", invalidf("%s: reason longer than %d bytes", what, MaxReasonLen)
	}
	return reason, nil
}

const holdCols = `id, tenant_id, call_id, reason, placed_by, placed_at, released_at, released_by, release_reason`

func scanHold(r row) (Hold, error) {
	var h Hold
	var placed, released int64
	err := r.Scan(&h.ID, &h.TenantID, &h.CallID, &h.Reason, &h.PlacedBy, &placed, &released, &h.ReleasedBy, &h.ReleaseReason)
	h.PlacedAt, h.ReleasedAt = fromMS(placed), fromMS(released)
	return h, err
}

// callKnown finds whether the tenant knows a call: its row, or (once its
// metadata was deleted) a recording of it.
func (s *Scope) callKnown(ctx context.Context, q querier, callID string) error {
	var n int64
	err := q.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM calls WHERE tenant_id = $1 AND id = $2) +
		(SELECT COUNT(*) FROM recordings WHERE tenant_id = $1 AND call_id = $2)`, s.p.tenantID, callID).Scan(&n)
	if err == nil && n == 0 {
		err = ErrNotFound
	}
	return err
}

// PlaceHold puts a call under legal hold (owners only). A call already held is
// ErrConflict. Deletions that began before the hold (their object may
// already be gone) are not undone; every later one is refused.
func (s *Scope) PlaceHold(ctx context.Context, callID, reason string) (Hold, error) {
	if err := s.require(RoleOwner, "place legal hold"); err != nil {
		return Hold{}, err
	}
	reason, err := checkReason("legal hold", reason)
	if err != nil {
		return Hold{}, err
	}
	h := Hold{ID: newID(), TenantID: s.p.tenantID, CallID: callID, Reason: reason, PlacedBy: s.p.Actor(), PlacedAt: fromMS(ms(s.db.now()))}
	err = s.write(ctx, func(q querier) error {
		if err := s.callKnown(ctx, q, callID); err != nil {
			return err
		}
		if _, err := q.Exec(ctx, `INSERT INTO legal_holds (`+holdCols+`) VALUES ($1, $2, $3, $4, $5, $6, 0, '', '')`,
			h.ID, h.TenantID, h.CallID, h.Reason, h.PlacedBy, ms(h.PlacedAt)); err != nil {
			if errors.Is(err, ErrConflict) {
				return fmt.Errorf("%w: call is already on hold", ErrConflict)
			}
			return err
		}
		return s.audit(ctx, q, "hold.place", "call:"+callID, map[string]any{"hold": h.ID, "reason": reason})
	})
	if err != nil {
		return Hold{}, fmt.Errorf("place hold on call %s: %w", callID, err)
	}
	return h, nil
}

// ReleaseHold lifts the hold in force on a call (owners only); ErrNotFound
// if there is none.
func (s *Scope) ReleaseHold(ctx context.Context, callID, reason string) (Hold, error) {
	if err := s.require(RoleOwner, "release legal hold"); err != nil {
		return Hold{}, err
	}
	reason, err := checkReason("release of legal hold", reason)
	if err != nil {
		return Hold{}, err
	}
	var h Hold
	err = s.write(ctx, func(q querier) error {
		var err error
		h, err = scanHold(q.QueryRow(ctx, `SELECT `+holdCols+` FROM legal_holds WHERE tenant_id = $1 AND call_id = $2 AND released_at = 0`,
			s.p.tenantID, callID))
		if err != nil {
			return err
		}
		h.ReleasedAt, h.ReleasedBy, h.ReleaseReason = fromMS(ms(s.db.now())), s.p.Actor(), reason
		if _, err := q.Exec(ctx, `UPDATE legal_holds SET released_at = $3, released_by = $4, release_reason = $5 WHERE tenant_id = $1 AND id = $2`,
			s.p.tenantID, h.ID, ms(h.ReleasedAt), h.ReleasedBy, reason); err != nil {
			return err
		}
		return s.audit(ctx, q, "hold.release", "call:"+callID, map[string]any{"hold": h.ID, "reason": reason})
	})
	if err != nil {
		return Hold{}, fmt.Errorf("release hold on call %s: %w", callID, err)
	}
	return h, nil
}

// HoldFilter narrows Holds.
type HoldFilter struct {
	CallID   string // one call's; "" for all
	Released bool   // include released holds (history)
}

// Holds lists the tenant's holds, newest first.
func (s *Scope) Holds(ctx context.Context, f HoldFilter) ([]Hold, error) {
	var out []Hold
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanHold, `SELECT `+holdCols+` FROM legal_holds
			WHERE tenant_id = $1 AND ($2 = '' OR call_id = $2) AND ($3 = 1 OR released_at = 0)
			ORDER BY placed_at DESC, id DESC LIMIT 1000`, s.p.tenantID, f.CallID, boolInt(f.Released))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list holds: %w", err)
	}
	return out, nil
}

// onHold reports ErrOnHold when a hold is in force on callID.
func (s *Scope) onHold(ctx context.Context, q querier, callID string) error {
	var n int64
	if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM legal_holds WHERE tenant_id = $1 AND call_id = $2 AND released_at = 0`,
		s.p.tenantID, callID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("call %s: %w", callID, ErrOnHold)
	}
	return nil
}
