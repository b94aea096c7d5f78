package store

import (
	"context"
)

// backend is what a database must provide for the shared queries: scoped
// transactions over a querier. Queries use $1-style placeholders and SQL that
// both SQLite and Postgres accept.
type backend interface {
	name() string
	// tx runs fn in one transaction confined to scope. Postgres also sets the
	// scope for its row-level security policies; SQLite relies on the queries.
	tx(ctx context.Context, scope txScope, write bool, fn func(q querier) error) error
	// migrations returns the backend's embedded, versioned schema steps.
	migrations() ([]migration, error)
	close() error
}

// txScope is the tenant a transaction runs in, or the system scope used only
// by the lookups that mint principals and by gateway-wide sweeps.
type txScope struct {
	tenant string
	system bool
}

// querier is the part of a transaction the queries use.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (int64, error)
	Query(ctx context.Context, sql string, args ...any) (rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) row
}

type row interface {
	Scan(dest ...any) error
}

type rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// collect runs a query and scans each row with scan.
func collect[T any](ctx context.Context, q querier, scan func(r row) (T, error), sql string, args ...any) ([]T, error) {
	rs, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []T
	for rs.Next() {
		v, err := scan(rs)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rs.Err()
}
