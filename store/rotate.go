package store

import (
	"context"
	"fmt"

	"github.com/blackbox-gw/blackbox/store/secrets"
)

// sealedColumn is a column holding Fernet tokens. Every secret the store
// keeps is listed here, so that rotation reaches it; a test fails when a
// column named *_sealed is missing from the list.
type sealedColumn struct {
	table  string
	column string
	object string // audit/error prefix of a row, e.g. "trunk"
}

var sealedColumns = []sealedColumn{
	{table: "trunks", column: "password_sealed", object: "trunk"},
}

// RotateResult counts what RotateSecrets did.
type RotateResult struct {
	Tenants  int // tenants visited
	Resealed int // secrets re-encrypted under the newest key
	Current  int // secrets already under the newest key
}

// RotateSecrets re-encrypts every sealed secret of every tenant under the
// keyring's first key, one transaction per tenant, and records a
// secrets.rotate audit event in each. Running it again reseals nothing. A
// secret no configured key opens stops the rotation with ErrUndecryptable
// naming it; tenants done before stay done, and their secrets stay readable
// while the old keys are still configured, so it is safe to fix and rerun.
func (db *DB) RotateSecrets(ctx context.Context) (RotateResult, error) {
	var res RotateResult
	if db.keys == nil {
		return res, fmt.Errorf("rotate secrets: %w", secrets.ErrNoKey)
	}
	tenants, err := db.Tenants(ctx)
	if err != nil {
		return res, fmt.Errorf("rotate secrets: %w", err)
	}
	for _, t := range tenants {
		resealed, current, err := db.rotateTenant(ctx, t)
		if err != nil {
			return res, fmt.Errorf("rotate secrets of tenant %s: %w", t.Name, err)
		}
		res.Tenants++
		res.Resealed += resealed
		res.Current += current
	}
	return res, nil
}

func (db *DB) rotateTenant(ctx context.Context, t Tenant) (resealed, current int, err error) {
	s := db.In(Principal{tenantID: t.ID, kind: KindAdmin})
	err = s.write(ctx, func(q querier) error {
		resealed, current = 0, 0 // a retried transaction starts over
		for _, c := range sealedColumns {
			type sealed struct{ id, token string }
			rows, err := collect(ctx, q, func(r row) (sealed, error) {
				var v sealed
				err := r.Scan(&v.id, &v.token)
				return v, err
			}, `SELECT id, `+c.column+` FROM `+c.table+` WHERE tenant_id = $1 AND `+c.column+` <> '' ORDER BY id`, t.ID)
			if err != nil {
				return err
			}
			for _, v := range rows {
				token, changed, err := db.keys.Reseal(v.token)
				if err != nil {
					return fmt.Errorf("%s %s: %w", c.object, v.id, err)
				}
				if !changed {
					current++
					continue
				}
				if _, err := q.Exec(ctx, `UPDATE `+c.table+` SET `+c.column+` = $1 WHERE tenant_id = $2 AND id = $3`,
					token, t.ID, v.id); err != nil {
					return fmt.Errorf("%s %s: %w", c.object, v.id, err)
				}
				resealed++
			}
		}
		return s.audit(ctx, q, "secrets.rotate", "tenant:"+t.Name, map[string]any{"resealed": resealed, "current": current})
	})
	return resealed, current, err
}
