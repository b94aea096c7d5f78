package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The Postgres DSN is the gateway's own connection (user blackbox_app, or a
// role that is a member of it), with two optional parameters of ours:
//
//	postgres://blackbox_app:APP_PW@db:5432/blackbox?sslmode=verify-full&migrate_as=blackbox_owner&migrate_password=OWNER_PW
//
// migrate_as names the role that owns the tables; migrations (at `blackbox
// migrate` and at every start) connect as it, to the same host and database.
// Without migrate_password pgx looks the owner's password up in ~/.pgpass
// (or PGPASSFILE). Without migrate_as the DSN's own role migrates, which
// works only once the schema is current (an operator ran `blackbox migrate`
// with the owner's DSN) or when that role owns the tables. Every pgx and
// pgxpool parameter (pool_max_conns, sslmode, ...) passes through.

//go:embed migrations/postgres/*.sql
var postgresMigrations embed.FS

// DSN query parameters Blackbox reads itself and strips before pgx sees the
// URL (pgx would send unknown ones to the server as settings).
const (
	// dsnMigrateAs names the role that owns the tables and runs migrations;
	// the DSN's own user is the gateway's (blackbox_app).
	dsnMigrateAs = "migrate_as"
	// dsnMigratePassword is that role's password; without it pgx looks in
	// the password file (~/.pgpass or PGPASSFILE), which matches per user.
	dsnMigratePassword = "migrate_password"
)

// pgBackend runs every transaction on a pgxpool connection with the scope
// set for the row-level security policies of the migrations: a query that
// forgot its tenant filter still sees only its tenant's rows.
type pgBackend struct {
	pool *pgxpool.Pool
	// migrateDSN connects as the owner role (migrate_as), "" to migrate
	// through the pool itself.
	migrateDSN string
}

func openPostgres(ctx context.Context, dsn string) (*pgBackend, error) {
	appDSN, migrateDSN, err := splitPostgresDSN(dsn)
	if err != nil {
		return nil, err
	}
	b, err := dialPostgres(ctx, appDSN)
	if err != nil {
		return nil, err
	}
	b.migrateDSN = migrateDSN
	if err := b.checkRole(ctx); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// splitPostgresDSN returns the gateway's DSN without our parameters and, with
// migrate_as, the same DSN for the owner role.
func splitPostgresDSN(dsn string) (app, migrate string, err error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", "", fmt.Errorf("postgres dsn: %w", err)
	}
	q := u.Query()
	role, pw, hasPW := q.Get(dsnMigrateAs), q.Get(dsnMigratePassword), q.Has(dsnMigratePassword)
	q.Del(dsnMigrateAs)
	q.Del(dsnMigratePassword)
	u.RawQuery = q.Encode()
	app = u.String()
	switch {
	case role == "" && hasPW:
		return "", "", fmt.Errorf("postgres dsn: %w: %s without %s", ErrInvalid, dsnMigratePassword, dsnMigrateAs)
	case role == "":
		return app, "", nil
	case hasPW:
		u.User = url.UserPassword(role, pw)
	default:
		u.User = url.User(role)
	}
	return app, u.String(), nil
}

func dialPostgres(ctx context.Context, dsn string) (*pgBackend, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres dsn: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "blackbox"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s@%s/%s: %w", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Database, err)
	}
	return &pgBackend{pool: pool}, nil
}

// checkRole refuses a role that row-level security does not apply to: with
// it, every tenant's rows would be one forgotten WHERE clause away.
func (b *pgBackend) checkRole(ctx context.Context) error {
	var user string
	var bypass bool
	err := b.pool.QueryRow(ctx, `SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&user, &bypass)
	if err != nil {
		return fmt.Errorf("postgres: check role: %w", err)
	}
	if bypass {
		return fmt.Errorf("postgres: %w: role %s is a superuser or has BYPASSRLS, so row-level security would not isolate tenants; "+
			"connect as blackbox_app and migrate as the owner role with ?%s=ROLE", ErrInvalid, user, dsnMigrateAs)
	}
	return nil
}

func (b *pgBackend) name() string { return "postgres" }

func (b *pgBackend) close() error {
	b.pool.Close()
	return nil
}

func (b *pgBackend) migrations() ([]migration, error) {
	return readMigrations(postgresMigrations, "migrations/postgres")
}

// migrator connects as the owner role when the DSN names one.
func (b *pgBackend) migrator(ctx context.Context) (backend, error) {
	if b.migrateDSN == "" {
		return b, nil
	}
	m, err := dialPostgres(ctx, b.migrateDSN)
	if err != nil {
		return nil, fmt.Errorf("connect as %s: %w", dsnMigrateAs, err)
	}
	return m, nil
}

// appRole is the role the migrations grant the gateway's privileges to.
const appRole = "blackbox_app"

// grantApp gives blackbox_app read and write on the tables and sequences
// whose names start with prefix: for a library's schema (River's river_*),
// which knows nothing of our roles. Tables under row-level security are
// ours and keep the grants their migration chose. Run it on the migrator.
func (b *pgBackend) grantApp(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("grant %s: %w: empty table prefix", appRole, ErrInvalid)
	}
	rows, err := b.pool.Query(ctx, `SELECT c.relname, c.relkind = 'S' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'S') AND NOT c.relrowsecurity
		  AND starts_with(c.relname, $1) ORDER BY c.relname`, prefix)
	if err != nil {
		return fmt.Errorf("grant %s: %w", appRole, mapPGErr(err))
	}
	type rel struct {
		name string
		seq  bool
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
		var v rel
		return v, r.Scan(&v.name, &v.seq)
	})
	if err != nil {
		return fmt.Errorf("grant %s: %w", appRole, mapPGErr(err))
	}
	for _, r := range rels {
		stmt := `GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO ` + appRole
		if r.seq {
			stmt = `GRANT USAGE, SELECT, UPDATE ON SEQUENCE %s TO ` + appRole
		}
		if _, err := b.pool.Exec(ctx, fmt.Sprintf(stmt, pgx.Identifier{r.name}.Sanitize())); err != nil {
			return fmt.Errorf("grant %s on %s: %w", appRole, r.name, mapPGErr(err))
		}
	}
	return nil
}

// migrationLock serialises nodes that start together on one database.
func (b *pgBackend) migrationLock() string {
	return `SELECT pg_advisory_xact_lock(4242424242)`
}

// maxTxAttempts bounds retries of a transaction that lost a deadlock or a
// serialisation conflict to another node; the whole transaction reruns.
const maxTxAttempts = 4

func (b *pgBackend) tx(ctx context.Context, scope txScope, write bool, fn func(q querier) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = b.tryTx(ctx, scope, write, fn)
		if !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
	return err
}

func (b *pgBackend) tryTx(ctx context.Context, scope txScope, write bool, fn func(q querier) error) error {
	opts := pgx.TxOptions{AccessMode: pgx.ReadWrite}
	if !write {
		opts.AccessMode = pgx.ReadOnly
	}
	tx, err := b.pool.BeginTx(ctx, opts)
	if err != nil {
		return mapPGErr(err)
	}
	defer tx.Rollback(ctx) // no-op after Commit
	if err := setScope(ctx, tx, scope); err != nil {
		return err
	}
	if err := fn(pgTx{tx}); err != nil {
		return err
	}
	return mapPGErr(tx.Commit(ctx))
}

// setScope sets what the row-level security policies read, local to the
// transaction so a pooled connection never carries a tenant into the next
// one. The tenant travels as a bound parameter, never spliced into SQL.
func setScope(ctx context.Context, tx pgx.Tx, scope txScope) error {
	var err error
	switch {
	case scope.system:
		_, err = tx.Exec(ctx, `SELECT set_config('app.scope', 'system', true), set_config('app.tenant_id', '', true)`)
	case scope.tenant != "":
		_, err = tx.Exec(ctx, `SELECT set_config('app.scope', '', true), set_config('app.tenant_id', $1, true)`, scope.tenant)
	default:
		return errors.New("postgres: transaction without a tenant or system scope")
	}
	if err != nil {
		return fmt.Errorf("postgres: set scope: %w", mapPGErr(err))
	}
	return nil
}

type pgTx struct{ tx pgx.Tx }

// bind returns the SQL and arguments to send. The shared queries may leave an
// argument unreferenced (SQLite ignores it, and the policy counters pass the
// user to every read); Postgres cannot type a parameter nothing uses and
// refuses more arguments than its statement has. Such a query is sent with
// its placeholders renumbered to the arguments it uses.
func bind(q string, args []any) (string, []any) {
	if len(args) == 0 {
		return q, args
	}
	used := make([]bool, len(args))
	forEachParam(q, func(n int) {
		if n <= len(used) {
			used[n-1] = true
		}
	})
	renum := make([]int, len(args))
	var kept []any
	for i, u := range used {
		if u {
			kept = append(kept, args[i])
			renum[i] = len(kept)
		}
	}
	if len(kept) == len(args) {
		return q, args
	}
	var b strings.Builder
	last := 0
	forEachParamAt(q, func(start, end, n int) {
		if n <= len(renum) {
			b.WriteString(q[last:start])
			b.WriteString("$" + strconv.Itoa(renum[n-1]))
			last = end
		}
	})
	b.WriteString(q[last:])
	return b.String(), kept
}

func forEachParam(q string, fn func(n int)) {
	forEachParamAt(q, func(_, _, n int) { fn(n) })
}

// forEachParamAt calls fn with the span and number of every $N in q. The
// shared queries hold no string literal or comment with a '$' in it.
func forEachParamAt(q string, fn func(start, end, n int)) {
	for i := 0; i < len(q); i++ {
		if q[i] != '$' {
			continue
		}
		j, n := i+1, 0
		for j < len(q) && q[j] >= '0' && q[j] <= '9' && n < 1<<16 {
			n = n*10 + int(q[j]-'0')
			j++
		}
		if n > 0 {
			fn(i, j, n)
			i = j - 1
		}
	}
}

func (t pgTx) Exec(ctx context.Context, q string, args ...any) (int64, error) {
	q, args = bind(q, args)
	tag, err := t.tx.Exec(ctx, q, args...)
	if err != nil {
		return 0, mapPGErr(err)
	}
	return tag.RowsAffected(), nil
}

func (t pgTx) Query(ctx context.Context, q string, args ...any) (rows, error) {
	q, args = bind(q, args)
	rs, err := t.tx.Query(ctx, q, args...)
	if err != nil {
		return nil, mapPGErr(err)
	}
	return pgRows{rs}, nil
}

func (t pgTx) QueryRow(ctx context.Context, q string, args ...any) row {
	q, args = bind(q, args)
	return pgRow{t.tx.QueryRow(ctx, q, args...)}
}

type pgRows struct{ pgx.Rows }

func (r pgRows) Scan(d ...any) error { return mapPGErr(r.Rows.Scan(d...)) }
func (r pgRows) Err() error          { return mapPGErr(r.Rows.Err()) }

type pgRow struct{ r pgx.Row }

func (r pgRow) Scan(d ...any) error { return mapPGErr(r.r.Scan(d...)) }

// Postgres error codes we decide on.
const (
	pgUniqueViolation      = "23505"
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgInsufficientPriv     = "42501"
)

func mapPGErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case pgUniqueViolation:
			detail := pe.Detail
			if detail == "" {
				detail = pe.ConstraintName
			}
			return fmt.Errorf("%w: %s: %s", ErrConflict, pe.TableName, detail)
		case pgInsufficientPriv:
			return fmt.Errorf("%w: %s", ErrDenied, pe.Message)
		}
	}
	return err
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected)
}
