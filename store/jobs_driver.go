package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"

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

// migrateJobs brings River's own tables (river_job, river_leader, ...) to
// the version this binary carries, after the store's migrations, so that
// every Open (serve, blackbox migrate, the CLI) leaves a database the job
// queue can use. Like ours, a River schema newer than the binary is refused.
func migrateJobs(ctx context.Context, b backend) error {
	h, ok := b.(jobsHost)
	if !ok {
		return nil // a backend without a job queue has nothing to migrate
	}
	jdb := h.jobsDB()
	switch {
	case jdb.SQLite != nil:
		return riverMigrate(ctx, riversqlite.New(jdb.SQLite))
	case jdb.Postgres != nil:
		return riverMigrate(ctx, riverpgxv5.New(jdb.Postgres))
	}
	return fmt.Errorf("migrate jobs: %w: no database handle", ErrJobsUnsupported)
}

func riverMigrate[TTx any](ctx context.Context, driver riverdriver.Driver[TTx]) error {
	// River logs every applied step at info; our migrate command reports
	// the outcome itself.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	m, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet})
	if err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	known := 0
	for _, v := range m.AllVersions() {
		known = max(known, v.Version)
	}
	exec := driver.GetExecutor()
	exists, err := exec.TableExists(ctx, &riverdriver.TableExistsParams{Table: "river_migration"})
	if err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	if exists {
		applied, err := exec.MigrationGetByLine(ctx, &riverdriver.MigrationGetByLineParams{Line: riverdriver.MigrationLineMain})
		if err != nil {
			return fmt.Errorf("migrate jobs: %w", err)
		}
		for _, a := range applied {
			if a.Version > known {
				return fmt.Errorf("migrate jobs: %w: job queue schema is at version %d, this binary knows up to %d; upgrade blackbox",
					ErrSchemaTooNew, a.Version, known)
			}
		}
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	return nil
}
