package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrOutOfOrder means a REGISTER repeated or preceded one already applied
// (same Call-ID, CSeq not higher): RFC 3261 section 10.3 step 7.
var ErrOutOfOrder = errors.New("register out of order")

// Binding is one registered contact of a user, with where its REGISTER came
// from, so Blackbox reaches a phone behind NAT at its real address.
type Binding struct {
	ID        string
	TenantID  string
	UserID    string
	Contact   string // Contact URI as the phone sent it
	Source    string // IP:port the REGISTER arrived from
	Transport string // udp or tcp
	CallID    string
	CSeq      uint32
	UserAgent string
	Node      string // the node whose socket the phone reached
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// ContactUpdate adds, refreshes or (Expires 0) removes one contact.
type ContactUpdate struct {
	Contact string
	Expires time.Duration
}

// Registration is one REGISTER request to apply atomically.
type Registration struct {
	UserID      string
	CallID      string
	CSeq        uint32
	Source      string
	Transport   string
	UserAgent   string
	Node        string
	RemoveAll   bool // Contact: * with Expires: 0
	Updates     []ContactUpdate
	MaxContacts int // beyond it the least recently refreshed binding goes
}

const bindingCols = `id, tenant_id, user_id, contact, source, transport, call_id, cseq, user_agent, node, expires_at, updated_at`

func scanBinding(r row) (Binding, error) {
	var b Binding
	var cseq, exp, upd int64
	err := r.Scan(&b.ID, &b.TenantID, &b.UserID, &b.Contact, &b.Source, &b.Transport, &b.CallID, &cseq, &b.UserAgent, &b.Node, &exp, &upd)
	b.CSeq, b.ExpiresAt, b.UpdatedAt = uint32(cseq), fromMS(exp), fromMS(upd)
	return b, err
}

// Register applies one REGISTER in a single transaction and returns the
// user's live bindings afterwards. A query (no updates) only reads.
func (s *Scope) Register(ctx context.Context, r Registration) ([]Binding, error) {
	now := s.db.now()
	var out []Binding
	err := s.write(ctx, func(q querier) error {
		// The user must be the tenant's: otherwise the binding would be this
		// tenant's row pointing at another tenant's user.
		var one int
		if err := q.QueryRow(ctx, `SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, r.UserID).Scan(&one); err != nil {
			return fmt.Errorf("user %s: %w", r.UserID, err)
		}
		current, err := collect(ctx, q, scanBinding, `SELECT `+bindingCols+` FROM bindings
			WHERE tenant_id = $1 AND user_id = $2 AND expires_at > $3`, s.p.tenantID, r.UserID, ms(now))
		if err != nil {
			return err
		}
		// Step 7: a stale retransmission must not resurrect or shorten a binding.
		for _, b := range current {
			if b.CallID == r.CallID && r.CSeq <= b.CSeq && (r.RemoveAll || touches(r.Updates, b.Contact)) {
				return fmt.Errorf("contact %s: %w (cseq %d <= %d)", b.Contact, ErrOutOfOrder, r.CSeq, b.CSeq)
			}
		}
		if r.RemoveAll {
			if _, err := q.Exec(ctx, `DELETE FROM bindings WHERE tenant_id = $1 AND user_id = $2`, s.p.tenantID, r.UserID); err != nil {
				return err
			}
		}
		for _, u := range r.Updates {
			if u.Expires <= 0 {
				if _, err := q.Exec(ctx, `DELETE FROM bindings WHERE tenant_id = $1 AND user_id = $2 AND contact = $3`,
					s.p.tenantID, r.UserID, u.Contact); err != nil {
					return err
				}
				continue
			}
			_, err := q.Exec(ctx, `INSERT INTO bindings (`+bindingCols+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (user_id, contact) DO UPDATE SET source = excluded.source, transport = excluded.transport,
					call_id = excluded.call_id, cseq = excluded.cseq, user_agent = excluded.user_agent, node = excluded.node,
					expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
				newID(), s.p.tenantID, r.UserID, u.Contact, r.Source, r.Transport, r.CallID, int64(r.CSeq), r.UserAgent, r.Node,
				ms(now.Add(u.Expires)), ms(now))
			if err != nil {
				return err
			}
		}
		out, err = collect(ctx, q, scanBinding, `SELECT `+bindingCols+` FROM bindings
			WHERE tenant_id = $1 AND user_id = $2 AND expires_at > $3 ORDER BY updated_at DESC, id DESC`, s.p.tenantID, r.UserID, ms(now))
		if err != nil {
			return err
		}
		if r.MaxContacts > 0 && len(out) > r.MaxContacts {
			for _, b := range out[r.MaxContacts:] {
				if _, err := q.Exec(ctx, `DELETE FROM bindings WHERE tenant_id = $1 AND id = $2`, s.p.tenantID, b.ID); err != nil {
					return err
				}
			}
			out = out[:r.MaxContacts]
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register %s: %w", s.p.username, err)
	}
	return out, nil
}

func touches(us []ContactUpdate, contact string) bool {
	for _, u := range us {
		if u.Contact == contact {
			return true
		}
	}
	return false
}

// Bindings lists a user's live bindings, most recently refreshed first.
func (s *Scope) Bindings(ctx context.Context, userID string) ([]Binding, error) {
	var out []Binding
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanBinding, `SELECT `+bindingCols+` FROM bindings
			WHERE tenant_id = $1 AND user_id = $2 AND expires_at > $3 ORDER BY updated_at DESC, id DESC`,
			s.p.tenantID, userID, ms(s.db.now()))
		return err
	})
	return out, err
}

// SweepBindings deletes expired bindings of every tenant.
func (db *DB) SweepBindings(ctx context.Context) (int64, error) {
	var n int64
	err := db.sysWrite(ctx, func(q querier) error {
		var err error
		n, err = q.Exec(ctx, `DELETE FROM bindings WHERE expires_at <= $1`, ms(db.now()))
		return err
	})
	return n, err
}

// ActiveBindings counts live bindings across tenants (a gauge).
func (db *DB) ActiveBindings(ctx context.Context) (int64, error) {
	var n int64
	err := db.sysRead(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COUNT(*) FROM bindings WHERE expires_at > $1`, ms(db.now())).Scan(&n)
	})
	return n, err
}

// HasBindingFrom reports whether a live registration came from ip (any
// port): a phone that registered may place calls from there.
func (db *DB) HasBindingFrom(ctx context.Context, ip netip.Addr) (bool, error) {
	prefix := netip.AddrPortFrom(ip.Unmap(), 0).String()
	prefix = prefix[:len(prefix)-1] // "1.2.3.4:" or "[::1]:"
	var n int64
	err := db.sysRead(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COUNT(*) FROM bindings WHERE expires_at > $1 AND substr(source, 1, $2) = $3`,
			ms(db.now()), len(prefix), prefix).Scan(&n)
	})
	return n > 0, err
}
