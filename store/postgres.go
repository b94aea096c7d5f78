package store

import (
	"context"
	"errors"
)

// errPostgresPending: the Postgres backend lands with the production-store
// work; until then a postgres:// DSN is refused up front rather than half-run.
var errPostgresPending = errors.New("postgres backend is not built into this version yet; use sqlite:PATH")

func openPostgres(ctx context.Context, dsn string) (backend, error) {
	return nil, errPostgresPending
}
