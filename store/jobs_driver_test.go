package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/blackbox-gw/blackbox/store/pgtest"
)

// TestJobsSchema: Open leaves River's tables migrated and usable by the
// gateway's own role, reopening is a no-op, and a River schema newer than
// the binary is refused like ours. On both backends.
func TestJobsSchema(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testJobsSchema(t, "sqlite:"+filepath.Join(t.TempDir(), "bb.db"), "") })
	t.Run("postgres", func(t *testing.T) {
		pg := pgtest.New(t)
		testJobsSchema(t, pg.DSN, pg.AppDSN)
	})
}

// testJobsSchema runs on dsn; appDSN, if set, is the gateway role alone (no
// migrate_as), which may open a database the owner has migrated.
func testJobsSchema(t *testing.T, dsn, appDSN string) {
	ctx := context.Background()
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// exec runs one statement on the job queue's own handle (on Postgres,
	// the gateway role's pool: River runs with no more rights than that).
	exec := func(db *DB, sql string, scan ...any) error {
		jdb, err := db.JobsDB()
		if err != nil {
			return err
		}
		if (jdb.SQLite == nil) == (jdb.Postgres == nil) {
			t.Fatalf("jobs handle %+v: want exactly one", jdb)
		}
		if jdb.SQLite != nil {
			if len(scan) > 0 {
				return jdb.SQLite.QueryRowContext(ctx, sql).Scan(scan...)
			}
			_, err = jdb.SQLite.ExecContext(ctx, sql)
			return err
		}
		if len(scan) > 0 {
			return jdb.Postgres.QueryRow(ctx, sql).Scan(scan...)
		}
		_, err = jdb.Postgres.Exec(ctx, sql)
		return err
	}
	var applied int
	if err := exec(db, `SELECT count(*) FROM river_migration WHERE line = 'main'`, &applied); err != nil || applied < 6 {
		t.Fatalf("river migrations applied: %d %v", applied, err)
	}
	for _, table := range []string{"river_job", "river_leader", "river_queue"} {
		var n int
		if err := exec(db, `SELECT count(*) FROM `+table, &n); err != nil {
			t.Fatalf("%s not readable by the gateway: %v", table, err)
		}
	}
	db.Close()
	if appDSN != "" {
		db, err = Open(ctx, appDSN, Options{})
		if err != nil {
			t.Fatalf("gateway role on a migrated database: %v", err)
		}
		db.Close()
	}

	db, err = Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := exec(db, `INSERT INTO river_migration (line, version) VALUES ('main', 999)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, dsn, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open with a newer job queue schema: %v", err)
	}
}
