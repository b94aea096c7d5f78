package store

import (
	"context"
	"fmt"
	"time"
)

// Number is a DID owned by a tenant: it rings its user inbound, and the user
// may present it as caller ID.
type Number struct {
	Number    string // E.164
	TenantID  string
	UserID    string
	Username  string
	CreatedAt time.Time
}

// AddNumber assigns a DID to a user of the tenant. A number belongs to one
// tenant gateway-wide.
func (s *Scope) AddNumber(ctx context.Context, number, username string) (Number, error) {
	if !ValidE164(number) {
		return Number{}, invalidf("number %q: want E.164 such as +14155550100", number)
	}
	n := Number{Number: number, TenantID: s.p.tenantID, Username: username, CreatedAt: s.db.now().UTC()}
	err := s.write(ctx, func(q querier) error {
		if err := q.QueryRow(ctx, `SELECT id FROM users WHERE tenant_id = $1 AND username = $2`, s.p.tenantID, username).Scan(&n.UserID); err != nil {
			return fmt.Errorf("user %s: %w", username, err)
		}
		if _, err := q.Exec(ctx, `INSERT INTO numbers (number, tenant_id, user_id, created_at) VALUES ($1, $2, $3, $4)`,
			n.Number, n.TenantID, n.UserID, ms(n.CreatedAt)); err != nil {
			return err
		}
		return s.audit(ctx, q, "number.add", "number:"+number, map[string]any{"user": username})
	})
	if err != nil {
		return Number{}, fmt.Errorf("add number %s: %w", number, err)
	}
	return n, nil
}

const numberSelect = `SELECT n.number, n.tenant_id, n.user_id, u.username, n.created_at FROM numbers n JOIN users u ON u.id = n.user_id`

func scanNumber(r row) (Number, error) {
	var n Number
	var created int64
	err := r.Scan(&n.Number, &n.TenantID, &n.UserID, &n.Username, &created)
	n.CreatedAt = fromMS(created)
	return n, err
}

// Numbers lists the tenant's DIDs.
func (s *Scope) Numbers(ctx context.Context) ([]Number, error) {
	var out []Number
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanNumber, numberSelect+` WHERE n.tenant_id = $1 ORDER BY n.number`, s.p.tenantID)
		return err
	})
	return out, err
}

// NumbersOf lists the DIDs of one user: the caller IDs it may present.
func (s *Scope) NumbersOf(ctx context.Context, userID string) ([]Number, error) {
	var out []Number
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, scanNumber, numberSelect+` WHERE n.tenant_id = $1 AND n.user_id = $2 ORDER BY n.number`, s.p.tenantID, userID)
		return err
	})
	return out, err
}

// Number finds one of the tenant's DIDs.
func (s *Scope) Number(ctx context.Context, number string) (Number, error) {
	var n Number
	err := s.read(ctx, func(q querier) error {
		var err error
		n, err = scanNumber(q.QueryRow(ctx, numberSelect+` WHERE n.tenant_id = $1 AND n.number = $2`, s.p.tenantID, number))
		return err
	})
	if err != nil {
		return Number{}, fmt.Errorf("number %s: %w", number, err)
	}
	return n, nil
}

// NumberExists reports whether any tenant owns the DID. Unscoped: the SIP
// layer uses it only to refuse an unauthenticated INVITE to a DID from an
// address that is no trunk's (403) instead of challenging it.
func (db *DB) NumberExists(ctx context.Context, number string) (bool, error) {
	var n int64
	err := db.sysRead(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT COUNT(*) FROM numbers WHERE number = $1`, number).Scan(&n)
	})
	return n > 0, err
}
