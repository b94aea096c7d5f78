package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

// JobsDB is the database handle the durable job queue (store/jobs, on
// River) runs on: exactly one field is set.
//
// On SQLite it is the store's single writer connection. River's queries then
// queue behind SIP writes in database/sql's connection wait list instead of
// contending for the file lock from a second connection, where SQLite's busy
// handler would make a SIP write sleep in steps of milliseconds.
type JobsDB struct {
	SQLite   *sql.DB
	Postgres *pgxpool.Pool
}

// jobsHost is implemented by backends that can hold River's tables.
type jobsHost interface {
	jobsDB() JobsDB
}

// ErrJobsUnsupported means the backend cannot host the job queue.
var ErrJobsUnsupported = errors.New("backend cannot host the job queue")

// JobsDB returns the handle for the job queue. It stays owned by the store:
// close the store only after every River client on it has stopped.
func (db *DB) JobsDB() (JobsDB, error) {
	h, ok := db.b.(jobsHost)
	if !ok {
		return JobsDB{}, fmt.Errorf("%w: %s", ErrJobsUnsupported, db.b.name())
	}
	return h.jobsDB(), nil
}

func (b *sqliteBackend) jobsDB() JobsDB { return JobsDB{SQLite: b.writer} }

// On Postgres River has the gateway role's pool; its tables are plain ones
// (no tenant in them, so no row-level security), granted to that role by
// the migration.
func (b *pgBackend) jobsDB() JobsDB { return JobsDB{Postgres: b.pool} }

// riverMigrationLock keeps nodes starting together on one Postgres database
// from applying River's steps twice (ours use 4242424242).
const riverMigrationLock = 4242424243

// migrateJobs brings River's own tables (river_job, river_leader, ...) to
// the version this binary carries, after the store's migrations and through
// the same migrator (on Postgres the owner role), so that every Open (serve,
// blackbox migrate, the CLI) leaves a database the job queue can use. Like
// ours, a River schema newer than the binary is refused.
func migrateJobs(ctx context.Context, b backend) error {
	h, ok := b.(jobsHost)
	if !ok {
		return nil // a backend without a job queue has nothing to migrate
	}
	jdb := h.jobsDB()
	switch {
	case jdb.SQLite != nil:
		// One writer per file: SQLite serialises the steps itself.
		_, err := riverMigrate(ctx, riversqlite.New(jdb.SQLite), nil)
		return err
	case jdb.Postgres != nil:
		return migrateJobsPostgres(ctx, b, jdb.Postgres)
	}
	return fmt.Errorf("migrate jobs: %w: no database handle", ErrJobsUnsupported)
}

func migrateJobsPostgres(ctx context.Context, b backend, pool *pgxpool.Pool) error {
	applied, err := riverMigrate(ctx, riverpgxv5.New(pool), func(ctx context.Context) (func(), error) {
		// The lock's session is a connection of its own: the pool may
		// have just one (pool_max_conns=1), which River needs.
		conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig.Copy())
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(riverMigrationLock)); err != nil {
			conn.Close(ctx)
			return nil, err
		}
		return func() { conn.Close(context.WithoutCancel(ctx)) }, nil // ending the session releases the lock
	})
	if mapped := mapPGErr(err); mapped != err {
		return fmt.Errorf("migrate jobs: %w", mapped) // e.g. ErrDenied: the role may not change the schema
	}
	if err != nil {
		return err
	}
	// River knows nothing of our roles: tables it just created are the
	// owner's until granted. A database already current is left alone, so
	// a gateway role without DDL rights starts once the owner migrated.
	if g, ok := b.(interface {
		grantApp(ctx context.Context, prefix string) error
	}); ok && applied > 0 {
		if err := g.grantApp(ctx, "river_"); err != nil {
			return fmt.Errorf("migrate jobs: %w", err)
		}
	}
	return nil
}

// riverMigrate applies River's pending steps, holding lock (if any) while
// it does, and says how many it applied. A database already current is
// only read.
func riverMigrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], lock func(context.Context) (unlock func(), err error)) (int, error) {
	// River logs every applied step at info; our migrate command reports
	// the outcome itself.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet})
	if err != nil {
		return 0, fmt.Errorf("migrate jobs: %w", err)
	}
	pending, err := riverPending(ctx, driver.GetExecutor(), m.AllVersions())
	if err != nil || pending == 0 {
		return 0, err
	}
	if lock != nil {
		unlock, err := lock(ctx)
		if err != nil {
			return 0, fmt.Errorf("migrate jobs: lock: %w", err)
		}
		defer unlock()
	}
	// Migrate reads the applied steps again: another node may have
	// applied them while this one waited for the lock.
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate jobs: %w", err)
	}
	return len(res.Versions), nil
}

// riverPending counts the steps of known not applied yet, and refuses a
// database with a step this binary does not know (a newer River).
func riverPending(ctx context.Context, exec riverdriver.Executor, known []rivermigrate.Migration) (int, error) {
	newest := 0
	for _, v := range known {
		newest = max(newest, v.Version)
	}
	exists, err := exec.TableExists(ctx, &riverdriver.TableExistsParams{Table: "river_migration"})
	if err != nil {
		return 0, fmt.Errorf("migrate jobs: %w", err)
	}
	if !exists {
		return len(known), nil
	}
	applied, err := exec.MigrationGetByLine(ctx, &riverdriver.MigrationGetByLineParams{Line: riverdriver.MigrationLineMain})
	if err != nil {
		return 0, fmt.Errorf("migrate jobs: %w", err)
	}
	done := map[int]bool{}
	for _, a := range applied {
		if a.Version > newest {
			return 0, fmt.Errorf("migrate jobs: %w: job queue schema is at version %d, this binary knows up to %d; upgrade blackbox",
				ErrSchemaTooNew, a.Version, newest)
		}
		done[a.Version] = true
	}
	pending := 0
	for _, v := range known {
		if !done[v.Version] {
			pending++
		}
	}
	return pending, nil
}
