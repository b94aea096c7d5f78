package store

import (
	"context"
	"errors"
)

// Test-only hooks for the isolation proofs: they run deliberately careless
// SQL the way a store method would, inside a scope's own transaction. They
// live in a _test.go file so no binary ever carries them.

// RawStrings runs sql in the scope's transaction and returns the first
// column of every row.
func (s *Scope) RawStrings(ctx context.Context, sql string, args ...any) ([]string, error) {
	var out []string
	err := s.read(ctx, func(q querier) error {
		var err error
		out, err = collect(ctx, q, func(r row) (string, error) {
			var v string
			err := r.Scan(&v)
			return v, err
		}, sql, args...)
		return err
	})
	return out, err
}

// RawExec runs a statement in the scope's write transaction and returns the
// rows it affected.
func (s *Scope) RawExec(ctx context.Context, sql string, args ...any) (int64, error) {
	var n int64
	err := s.write(ctx, func(q querier) error {
		var err error
		n, err = q.Exec(ctx, sql, args...)
		return err
	})
	return n, err
}

// RawUnscoped runs a query on a pooled Postgres connection outside any
// store transaction (no scope set) and returns the first column as text.
func (db *DB) RawUnscoped(ctx context.Context, sql string) (string, error) {
	b, ok := db.b.(*pgBackend)
	if !ok {
		return "", errors.New("RawUnscoped: not a postgres store")
	}
	var v string
	err := b.pool.QueryRow(ctx, sql).Scan(&v)
	return v, err
}

// RawUnscopedExec runs a statement like RawUnscoped.
func (db *DB) RawUnscopedExec(ctx context.Context, sql string) error {
	b, ok := db.b.(*pgBackend)
	if !ok {
		return errors.New("RawUnscopedExec: not a postgres store")
	}
	_, err := b.pool.Exec(ctx, sql)
	return err
}

// SealedColumns lists the columns rotation reaches, as table.column.
func SealedColumns() []string {
	out := make([]string, len(sealedColumns))
	for i, c := range sealedColumns {
		out[i] = c.table + "." + c.column
	}
	return out
}

// GrantAppForTest runs the Postgres backend's grantApp through dsn (the
// owner's) for the tables starting with prefix.
func GrantAppForTest(ctx context.Context, dsn, prefix string) error {
	b, err := dialPostgres(ctx, dsn)
	if err != nil {
		return err
	}
	defer b.close()
	return b.grantApp(ctx, prefix)
}
