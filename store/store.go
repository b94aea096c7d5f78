// Package store holds Blackbox's metadata: tenants, users, trunks, numbers,
// registrations, calls, audit events. One implementation of the queries runs
// on two backends (embedded SQLite and Postgres) behind the backend interface;
// every tenant query goes through a Scope minted from an authenticated
// Principal, so the tenant never comes from what a client sent.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/blackbox-gw/blackbox/store/secrets"
)

// Sentinel errors callers decide on.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
	// ErrSchemaTooNew means the database was migrated by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrDenied means the database itself refused: a row-level security
	// policy, a missing privilege, or an append-only table.
	ErrDenied = errors.New("denied by the database")
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Options configures Open.
type Options struct {
	// Keyring seals secrets (trunk passwords) at rest. Required to write or
	// read a secret; nil is allowed for tools that never touch one.
	Keyring *secrets.Keyring
	// Now is the clock (tests).
	Now func() time.Time
}

// DB is the metadata store.
type DB struct {
	b    backend
	keys *secrets.Keyring
	now  func() time.Time
}

// Open connects to dsn (sqlite:PATH or postgres://...) and migrates the
// schema, the job queue's (River's) tables included, to this binary's version.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	var (
		b   backend
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		b, err = openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		b, err = openPostgres(ctx, dsn)
	default:
		return nil, fmt.Errorf("open store: %w: dsn must be sqlite:PATH or postgres://...", ErrInvalid)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db := &DB{b: b, keys: opts.Keyring, now: opts.Now}
	if db.now == nil {
		db.now = time.Now
	}
	if err := migrateWith(ctx, b, migrate, migrateJobs); err != nil {
		b.close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	return db, nil
}

// migrator is a backend that migrates through another connection: Postgres
// runs DDL as the role owning the tables, not as the gateway's role.
type migrator interface {
	migrator(ctx context.Context) (backend, error)
}

// migrateWith runs the schema steps (ours, then any library's) through the
// backend's migrator.
func migrateWith(ctx context.Context, b backend, steps ...func(context.Context, backend) error) error {
	mb := b
	if m, ok := b.(migrator); ok {
		var err error
		if mb, err = m.migrator(ctx); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		if mb != b {
			defer mb.close()
		}
	}
	for _, step := range steps {
		err := step(ctx, mb)
		if errors.Is(err, ErrDenied) && mb == b && b.name() == "postgres" {
			return fmt.Errorf("%w (the DSN's role may not change the schema: name the owner role with ?%s=ROLE, "+
				"or run `blackbox migrate` with the owner's DSN first)", err, dsnMigrateAs)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Close releases the connections.
func (db *DB) Close() error { return db.b.close() }

// Backend names the backend ("sqlite" or "postgres").
func (db *DB) Backend() string { return db.b.name() }

// Ping checks the database answers (readiness).
func (db *DB) Ping(ctx context.Context) error {
	return db.b.tx(ctx, txScope{system: true}, false, func(q querier) error {
		var one int
		return q.QueryRow(ctx, `SELECT 1`).Scan(&one)
	})
}

// Scope is a tenant-scoped handle: every method reads and writes only rows of
// the principal's tenant.
type Scope struct {
	db *DB
	p  Principal
}

// In returns the scope of an authenticated principal. It panics on the zero
// Principal: that is a programming error, never a client's doing.
func (db *DB) In(p Principal) *Scope {
	if !p.Valid() {
		panic("store: scope from an unauthenticated principal")
	}
	return &Scope{db: db, p: p}
}

// Principal is the scope's principal.
func (s *Scope) Principal() Principal { return s.p }

func (s *Scope) read(ctx context.Context, fn func(q querier) error) error {
	return s.db.b.tx(ctx, txScope{tenant: s.p.tenantID}, false, fn)
}

func (s *Scope) write(ctx context.Context, fn func(q querier) error) error {
	return s.db.b.tx(ctx, txScope{tenant: s.p.tenantID}, true, fn)
}

func (db *DB) sysRead(ctx context.Context, fn func(q querier) error) error {
	return db.b.tx(ctx, txScope{system: true}, false, fn)
}

func (db *DB) sysWrite(ctx context.Context, fn func(q querier) error) error {
	return db.b.tx(ctx, txScope{system: true}, true, fn)
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// ms converts to the stored form: Unix milliseconds, 0 for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}
