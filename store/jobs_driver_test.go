package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestJobsSchema: Open leaves River's tables migrated, reopening is a
// no-op, and a River schema newer than the binary is refused like ours.
func TestJobsSchema(t *testing.T) {
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "bb.db")
	db, err := Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatal(err)
	}
	jdb, err := db.JobsDB()
	if err != nil || jdb.SQLite == nil || jdb.Postgres != nil {
		t.Fatalf("jobs handle %+v %v", jdb, err)
	}
	var tables int
	if err := jdb.SQLite.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table'
		AND name IN ('river_job', 'river_leader', 'river_queue', 'river_migration')`).Scan(&tables); err != nil || tables != 4 {
		t.Fatalf("river tables: %d %v", tables, err)
	}
	var applied int
	if err := jdb.SQLite.QueryRowContext(ctx, `SELECT count(*) FROM river_migration WHERE line = 'main'`).Scan(&applied); err != nil || applied < 6 {
		t.Fatalf("river migrations applied: %d %v", applied, err)
	}
	db.Close()

	db, err = Open(ctx, dsn, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	jdb, _ = db.JobsDB()
	if _, err := jdb.SQLite.ExecContext(ctx, `INSERT INTO river_migration (line, version) VALUES ('main', 999)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(ctx, dsn, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("open with a newer job queue schema: %v", err)
	}
}
